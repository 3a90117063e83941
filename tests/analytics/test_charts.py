"""The dashboard's SVG charts: well-formed, escaped, exact in their marks, and safe on empty data.

Pure tests: no database, no settings. Output is parsed with ElementTree, so every assertion that
finds an element also proves the SVG is well-formed XML.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from itertools import pairwise

import pytest

from analytics.charts import (
    MAX_X_LABELS,
    NO_DATA_TEXT,
    PALETTE,
    bar_chart,
    format_number,
    horizontal_bars,
    line_chart,
    nice_max,
    thin_labels,
)

SVG = "{http://www.w3.org/2000/svg}"
DAYS = ["Mon", "Tue", "Wed"]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - our own output, not untrusted input


def data_rects(root: ET.Element) -> list[ET.Element]:
    return [rect for rect in root.iter(f"{SVG}rect") if "data-value" in rect.attrib]


def data_points(root: ET.Element) -> list[ET.Element]:
    return [c for c in root.iter(f"{SVG}circle") if "data-value" in c.attrib]


def tooltip(element: ET.Element) -> str:
    title = element.find(f"{SVG}title")
    assert title is not None
    return title.text or ""


def texts(root: ET.Element, css_class: str) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("class") == css_class]


def all_text(root: ET.Element) -> str:
    return " ".join("".join(element.itertext()) for element in root)


def height(rect: ET.Element) -> float:
    return float(rect.attrib["height"])


def test_bar_chart_root_is_an_accessible_svg() -> None:
    root = parse(bar_chart(DAYS, {"processed": [1, 2, 3]}, title="Processed per day"))

    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label") == "Processed per day"
    assert root.get("class", "").split()[0] == "docflow-chart"
    assert root.get("viewBox") == "0 0 720 220"
    assert (root.get("width"), root.get("height")) == ("720", "220")
    assert root.get("preserveAspectRatio") == "xMidYMid meet"
    assert root[0].tag == f"{SVG}title"
    assert root[0].text == "Processed per day"


@pytest.mark.parametrize(
    "svg",
    [
        line_chart(DAYS, {"p50": [1.0, None, 2.0]}, title="Latency", width=400, height=150),
        horizontal_bars([("timeout", 3)], title="Latency", width=400),
    ],
    ids=["line", "horizontal"],
)
def test_other_charts_are_accessible_svgs_too(svg: str) -> None:
    root = parse(svg)

    assert root.get("role") == "img"
    assert root.get("aria-label") == "Latency"
    assert root[0].tag == f"{SVG}title"
    assert "docflow-chart" in root.get("class", "").split()
    assert root.get("viewBox", "").startswith("0 0 400 ")


def test_bar_chart_draws_one_rect_per_positive_value() -> None:
    series = {"processed": [4, 0, 2], "failed": [1, -3, 0]}

    rects = data_rects(parse(bar_chart(DAYS, series, title="Documents")))

    assert [(r.get("data-label"), r.get("data-series"), r.get("data-value")) for r in rects] == [
        ("Mon", "processed", "4"),
        ("Mon", "failed", "1"),
        ("Wed", "processed", "2"),
    ]


def test_stacked_bar_heights_are_proportional_and_stack_upwards() -> None:
    processed, failed = data_rects(
        parse(bar_chart(["Mon"], {"processed": [1], "failed": [3]}, title="Documents"))
    )

    assert height(failed) / height(processed) == pytest.approx(3, rel=0.01)
    # The second series sits on top of the first.
    assert float(failed.attrib["y"]) + height(failed) == pytest.approx(float(processed.attrib["y"]))
    assert processed.get("fill") == PALETTE[0]
    assert failed.get("fill") == PALETTE[1]


def test_bar_tooltips_show_exact_values_with_unit_and_series_when_several() -> None:
    single = data_rects(parse(bar_chart(["Mon"], {"pages": [1234]}, title="Pages", unit="pages")))
    stacked = data_rects(
        parse(bar_chart(["Mon"], {"ok": [1_234_567], "failed": [2.5]}, title="t", unit="docs"))
    )

    assert [tooltip(r) for r in single] == ["Mon: 1,234 pages"]
    assert [tooltip(r) for r in stacked] == ["Mon · ok: 1,234,567 docs", "Mon · failed: 2.5 docs"]


def test_legend_only_when_several_series() -> None:
    single = parse(bar_chart(DAYS, {"processed": [1, 2, 3]}, title="t"))
    several = parse(bar_chart(DAYS, {"processed": [1, 2, 3], "failed": [0, 1, 0]}, title="t"))

    assert single.find(f".//{SVG}g[@class='docflow-chart-legend']") is None
    legend = several.find(f".//{SVG}g[@class='docflow-chart-legend']")
    assert legend is not None
    assert [t.text for t in legend.iter(f"{SVG}text")] == ["processed", "failed"]


def test_y_axis_has_a_nice_maximum_and_compact_labels_with_unit() -> None:
    root = parse(bar_chart(DAYS, {"documents": [1234, 1800, 900]}, title="t", unit="docs"))

    assert texts(root, "docflow-chart-tick") == [
        "0 docs",
        "500 docs",
        "1k docs",
        "1.5k docs",
        "2k docs",
    ]
    gridlines = [
        line for line in root.iter(f"{SVG}line") if line.get("class") == "docflow-chart-grid"
    ]
    assert 3 <= len(gridlines) <= 5


def test_whole_number_counts_never_get_fractional_ticks() -> None:
    root = parse(bar_chart(DAYS, {"failed": [0, 1, 0]}, title="t"))

    assert texts(root, "docflow-chart-tick") == ["0", "1", "2", "3", "4", "5"]


def test_percent_unit_is_attached_without_a_space() -> None:
    root = parse(line_chart(DAYS, {"rate": [12.5, 40, 80]}, title="t", unit="%"))

    assert texts(root, "docflow-chart-tick")[-1] == "100%"
    assert tooltip(data_points(root)[0]) == "Mon: 12.5%"


def test_text_is_escaped_and_the_svg_still_parses() -> None:
    evil = "<script>alert('x')</script>"
    svg = bar_chart(
        [evil, "Tue"],
        {'a & "b"': [1, 2], evil: [1, 0]},
        title=f"Documents {evil}",
        unit="<u>",
    )

    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    root = parse(svg)
    assert root.get("aria-label") == f"Documents {evil}"
    rects = data_rects(root)
    assert rects[0].get("data-label") == evil
    assert tooltip(rects[0]) == f'{evil} · a & "b": 1 <u>'
    assert tooltip(rects[1]) == f"{evil} · {evil}: 1 <u>"


def test_characters_xml_forbids_are_dropped() -> None:
    root = parse(horizontal_bars([("bad\x00\x1bname", 2)], title="t\x07"))

    assert root.get("aria-label") == "t"
    assert data_rects(root)[0].get("data-label") == "badname"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (-5, 1),
        (0, 1),
        (0.07, 0.1),
        (0.2, 0.2),
        (0.3, 0.5),
        (1, 1),
        (1.5, 2),
        (2.2, 2.5),
        (7, 10),
        (12, 20),
        (25, 25),
        (180, 200),
        (1000, 1000),
        (1001, 2000),
        (3_400_000, 5_000_000),
    ],
)
def test_nice_max(value: float, expected: float) -> None:
    assert nice_max(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, "0"),
        (7, "7"),
        (0.25, "0.25"),
        (0.1 + 0.2, "0.3"),
        (2.5, "2.5"),
        (12.5, "12.5"),
        (999, "999"),
        (1000, "1k"),
        (1200, "1.2k"),
        (12_345, "12.3k"),
        (123_456, "123k"),
        (999_999, "1M"),
        (3_400_000, "3.4M"),
        (2_000_000_000, "2G"),
        (-1200, "-1.2k"),
    ],
)
def test_format_number(value: float, expected: str) -> None:
    assert format_number(value) == expected


def test_thin_labels_keeps_first_and_last_and_at_most_twelve() -> None:
    shown = thin_labels(168)

    assert shown[0] == 0
    assert shown[-1] == 167
    assert len(shown) <= MAX_X_LABELS
    gaps = [b - a for a, b in pairwise(shown)]
    assert min(gaps) >= gaps[0]  # evenly spaced; the last gap is never the narrow one


@pytest.mark.parametrize(("count", "expected"), [(0, []), (1, [0]), (3, [0, 1, 2])])
def test_thin_labels_keeps_everything_that_fits(count: int, expected: list[int]) -> None:
    assert thin_labels(count) == expected


def test_hourly_week_shows_few_x_labels_including_first_and_last() -> None:
    labels = [f"d{day} {hour:02d}h" for day in range(7) for hour in range(24)]
    root = parse(bar_chart(labels, {"processed": [1.0] * 168}, title="Week"))

    shown = texts(root, "docflow-chart-xlabel")
    assert 2 <= len(shown) <= MAX_X_LABELS
    assert (shown[0], shown[-1]) == ("d0 00h", "d6 23h")
    assert len(data_rects(root)) == 168


@pytest.mark.parametrize(
    "svg",
    [
        bar_chart([], {}, title="t"),
        bar_chart([], {"processed": []}, title="t"),
        bar_chart(DAYS, {"processed": [0, 0, 0], "failed": [0, -1, 0]}, title="t"),
        bar_chart(DAYS, {}, title="t"),
        line_chart(DAYS, {"p50": [None, None, None]}, title="t"),
        line_chart(DAYS, {"p50": [0, None, 0]}, title="t"),
        line_chart([], {}, title="t"),
        horizontal_bars([], title="t"),
        horizontal_bars([("timeout", 0)], title="t"),
    ],
)
def test_empty_data_renders_the_no_data_message(svg: str) -> None:
    root = parse(svg)

    assert texts(root, "docflow-chart-empty") == [NO_DATA_TEXT]
    assert data_rects(root) == []
    assert data_points(root) == []


def test_line_chart_breaks_the_line_at_missing_values() -> None:
    root = parse(line_chart(list("abcde"), {"p95": [1, 2, None, 3, 4]}, title="t", unit="s"))

    paths = [p for p in root.iter(f"{SVG}path") if p.get("class") == "docflow-chart-line"]
    assert len(paths) == 2
    assert all(p.get("d", "").count("M") == 1 for p in paths)
    assert [(c.get("data-label"), c.get("data-value")) for c in data_points(root)] == [
        ("a", "1"),
        ("b", "2"),
        ("d", "3"),
        ("e", "4"),
    ]
    assert tooltip(data_points(root)[0]) == "a: 1 s"


def test_line_chart_isolated_point_gets_a_circle_but_no_path() -> None:
    root = parse(line_chart(list("abc"), {"p50": [None, 2.25, None], "p95": [1, 2, 3]}, title="t"))

    paths = [p.get("data-series") for p in root.iter(f"{SVG}path")]
    assert paths == ["p95"]
    points = data_points(root)
    assert len(points) == 4
    assert tooltip(points[0]) == "b · p50: 2.25"


@pytest.mark.parametrize("chart", [bar_chart, line_chart])
def test_mismatched_series_length_raises(chart: Callable[..., str]) -> None:
    with pytest.raises(ValueError, match="series 'failed' has 2 values but there are 3 labels"):
        chart(DAYS, {"processed": [1, 2, 3], "failed": [1, 2]}, title="t")


def test_horizontal_bars_keep_order_scale_to_the_largest_and_grow_with_items() -> None:
    items = [("timeout", 40), ("ocr <failed>", 10), ("empty", 0)]

    root = parse(horizontal_bars(items, title="Top failure reasons", unit="docs"))
    taller = parse(horizontal_bars([*items, ("other", 5)], title="t"))

    rects = data_rects(root)
    assert [r.get("data-label") for r in rects] == ["timeout", "ocr <failed>"]
    assert float(rects[0].attrib["width"]) / float(rects[1].attrib["width"]) == pytest.approx(
        4, rel=0.01
    )
    assert tooltip(rects[1]) == "ocr <failed>: 10 docs"
    assert texts(root, "docflow-chart-value") == ["40 docs", "10 docs", "0 docs"]
    assert int(taller.attrib["height"]) > int(root.attrib["height"])


def test_long_row_labels_are_shortened_with_the_full_label_as_tooltip() -> None:
    label = "Extraction failed: " + "x" * 80
    root = parse(horizontal_bars([(label, 1)], title="t"))

    (text,) = [t for t in root.iter(f"{SVG}text") if t.get("class") == "docflow-chart-label"]
    assert "".join(text.itertext()).endswith("…")
    assert tooltip(text) == label


def test_coordinates_are_rounded_to_one_decimal() -> None:
    svg = line_chart(
        [str(i) for i in range(7)],
        {"a": [1 / 3, 2 / 3, None, 1.0, 0.1, 0.7, 0.9], "b": [0.3] * 7},
        title="t",
        width=701,
        height=199,
    ) + bar_chart(["x", "y", "z"], {"a": [1 / 3, 1 / 7, 1 / 9]}, title="t", width=703)

    numbers = re.findall(r'\s(?:x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"', svg)
    numbers += [n for d in re.findall(r' d="([^"]*)"', svg) for n in re.findall(r"[\d.]+", d)]
    assert numbers
    assert all(re.fullmatch(r"-?\d+(\.\d)?", n) for n in numbers)


def test_output_is_deterministic() -> None:
    def render() -> str:
        return bar_chart(DAYS, {"processed": [1.5, 2, 3], "failed": [1, 0, 2]}, title="t")

    assert render() == render()


def test_no_data_is_the_only_text_of_an_empty_chart() -> None:
    root = parse(line_chart(DAYS, {"p50": [None] * 3}, title="Latency"))

    assert all_text(root) == f"Latency {NO_DATA_TEXT}"
