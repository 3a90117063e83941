"""Small, accessible inline SVG charts for the staff analytics dashboard.

The dashboard runs inside the Django admin on machines without internet access and without a
JavaScript build, so charts are drawn here, on the server, as self-contained SVG strings. The
module is pure (no ORM, settings or I/O): the caller hands it plain numbers and wraps the result
in `mark_safe`, which is why every piece of text that reaches the SVG goes through `html.escape`.

Conventions shared by the three charts:

- Values are non-negative metrics (counts, seconds): negatives are drawn as 0, NaN and infinity
  as 0 in bars and as "no data" in lines.
- Text uses `currentColor`, so the charts follow the admin's light and dark themes; the series
  colours come from the Okabe-Ito palette, which stays distinguishable for colour-blind readers.
- Every data mark carries `data-label`, `data-series` and `data-value` attributes (for tests and
  for any script that wants them) and a `<title>` tooltip with the exact value.
- Output is deterministic: coordinates are rounded to one decimal and text widths are estimated
  from character counts, never measured.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_X_LABELS",
    "NO_DATA_TEXT",
    "PALETTE",
    "bar_chart",
    "format_number",
    "horizontal_bars",
    "line_chart",
    "nice_max",
    "thin_labels",
]

NO_DATA_TEXT = "No data for this range"
MAX_X_LABELS = 12
# Okabe-Ito, in the order the dashboard passes its series: processed (blue), failed (vermillion),
# then the rest. Yellow and black are left out: too faint on white and invisible on dark.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9")

_FONT_SIZE = 11
_CHAR_PX = 6.6  # average advance of an 11px sans-serif glyph; an estimate keeps output stable
_MAX_X_LABEL_CHARS = 16
_MAX_ROW_LABEL_CHARS = 40
_EMPTY_HEIGHT = 60
_ROW_HEIGHT = 24
_SUFFIXES = ("", "k", "M", "G", "T")
# (leading digit, gridline intervals): each keeps the tick step a round number.
_NICE_STEPS = ((1.0, 5), (2.0, 4), (2.5, 5), (5.0, 5), (10.0, 5))
# Characters XML 1.0 forbids even when escaped; a label holding one would break the page.
_INVALID_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^n at or above `value`; 1 when nothing is positive.

    A rounded top keeps the axis labels short and the gridlines on round numbers, so 12 becomes
    20 (not 15: 1.5 is not a step) and 180 becomes 200.
    """
    return _nice_scale(value)[0]


def format_number(value: float) -> str:
    """Three significant digits with a k/M/G/T suffix: 999 -> "999", 1200 -> "1.2k".

    Axis labels must stay narrow; decimals appear only when they carry information (2.5, 0.25),
    and exact figures live in the tooltips instead.
    """
    if not math.isfinite(value):
        return "n/a"
    magnitude, power = abs(value), 0
    text = _significant(magnitude, max_decimals=3)
    # Rounding can carry into the next unit (999.7 -> "1000"), hence a loop, not a log10.
    while float(text) >= 1000 and power < len(_SUFFIXES) - 1:
        power += 1
        text = _significant(magnitude / 1000**power, max_decimals=1)
    if float(text) == 0:
        return "0"
    return ("-" if value < 0 else "") + text + _SUFFIXES[power]


def thin_labels(count: int, max_labels: int = MAX_X_LABELS) -> list[int]:
    """Indices of the x labels to show: evenly spaced, at most `max_labels`, first and last kept.

    Every gap between two shown labels is at least the thinning step, so labels that fit once
    per step never overlap, including the last one (which replaces the regular label before it).
    """
    if count <= 0:
        return []
    max_labels = max(2, max_labels)
    if count <= max_labels:
        return list(range(count))
    step = math.ceil((count - 1) / (max_labels - 1))
    shown = list(range(0, count, step))
    shown[-1] = count - 1
    return shown


def bar_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    unit: str = "",
    width: int = 720,
    height: int = 220,
) -> str:
    """Vertical bars, one column per label; several series are stacked in the given order.

    A segment is drawn only for a positive value, so the number of `rect[data-value]` elements
    is the number of positive (label, series) values.
    """
    _check_lengths(labels, series)
    columns = {str(name): [_bar_value(v) for v in values] for name, values in series.items()}
    totals = [sum(values[i] for values in columns.values()) for i in range(len(labels))]
    peak = max(totals, default=0.0)
    if peak <= 0:
        return _empty_chart("bar", title, width, height)

    values_flat = [v for values in columns.values() for v in values]
    frame, parts = _frame_and_axes(
        "bar",
        labels,
        list(columns),
        peak,
        values_flat,
        title=title,
        unit=unit,
        size=(width, height),
    )
    several = len(columns) > 1
    bar_width = frame.slot * 0.72
    for i, label in enumerate(labels):
        x = frame.slot_center(i) - bar_width / 2
        below = 0.0
        for colour, (name, values) in zip(_colours(), columns.items(), strict=False):
            value = values[i]
            if value <= 0:
                continue
            top, bottom = frame.y(below + value), frame.y(below)
            below += value
            parts.append(
                f'<rect class="docflow-chart-bar" x="{_c(x)}" y="{_c(top)}" '
                f'width="{_c(bar_width)}" height="{_c(bottom - top)}" fill="{colour}"'
                f"{_data_attrs(label, name, value)}>"
                f"<title>{_esc(_tooltip(label, name if several else None, value, unit))}</title>"
                "</rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    unit: str = "",
    width: int = 720,
    height: int = 220,
) -> str:
    """One line per series; `None` leaves a gap, so each unbroken run is its own `<path>`.

    Every present value (zero included) gets a `circle[data-value]` with a tooltip; a run of a
    single point has a circle but no path, since a one-point path draws nothing.
    """
    _check_lengths(labels, series)
    columns = {str(name): [_line_value(v) for v in values] for name, values in series.items()}
    present = [v for values in columns.values() for v in values if v is not None]
    peak = max(present, default=0.0)
    if peak <= 0:
        return _empty_chart("line", title, width, height)

    frame, parts = _frame_and_axes(
        "line", labels, list(columns), peak, present, title=title, unit=unit, size=(width, height)
    )
    several = len(columns) > 1
    radius = 3 if len(labels) <= 48 else 2
    points: list[str] = []
    for colour, (name, values) in zip(_colours(), columns.items(), strict=False):
        runs: list[list[tuple[float, float]]] = [[]]
        for i, value in enumerate(values):
            if value is None:
                runs.append([])
                continue
            cx, cy = frame.slot_center(i), frame.y(value)
            runs[-1].append((cx, cy))
            points.append(
                f'<circle class="docflow-chart-point" cx="{_c(cx)}" cy="{_c(cy)}" r="{radius}" '
                f'fill="{colour}"{_data_attrs(labels[i], name, value)}>'
                f"<title>{_esc(_tooltip(labels[i], name if several else None, value, unit))}"
                "</title></circle>"
            )
        for run in runs:
            if len(run) < 2:
                continue
            path = " ".join(
                f"{'M' if j == 0 else 'L'}{_c(x)} {_c(y)}" for j, (x, y) in enumerate(run)
            )
            parts.append(
                f'<path class="docflow-chart-line" d="{path}" fill="none" stroke="{colour}" '
                f'stroke-width="2" stroke-linejoin="round" stroke-linecap="round" '
                f'data-series="{_esc(name)}"/>'
            )
    # Points after every line, so no line covers another series' hover target.
    parts.extend(points)
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    width: int = 720,
) -> str:
    """One labelled row per item, in the order given; the longest bar spans the free width.

    Rows have a fixed height, so the chart grows with the number of items instead of squeezing
    them. Each row prints its compact value; a bar (`rect[data-value]`) is drawn only for a
    positive value. Long labels are shortened with an ellipsis and shown whole in a tooltip.
    """
    rows = [(str(label), _bar_value(value)) for label, value in items]
    peak = max((value for _, value in rows), default=0.0)
    if peak <= 0:
        return _empty_chart("hbar", title, width, _EMPTY_HEIGHT)

    max_chars = max(4, min(_MAX_ROW_LABEL_CHARS, int(width * 0.4 / _CHAR_PX)))
    shown = [_truncate(label, max_chars) for label, _ in rows]
    value_texts = [_with_unit(format_number(value), unit) for _, value in rows]
    bar_left = max(_text_px(s) for s in shown) + 16
    bar_span = max(1.0, width - bar_left - max(_text_px(s) for s in value_texts) - 16)
    top = 8
    height = top * 2 + _ROW_HEIGHT * len(rows)

    parts = [_svg_open("hbar", title, width, height)]
    for i, ((label, value), short, value_text) in enumerate(
        zip(rows, shown, value_texts, strict=True)
    ):
        row_top = top + i * _ROW_HEIGHT
        text_y = row_top + _ROW_HEIGHT / 2 + 4
        whole = f"<title>{_esc(label)}</title>" if short != label else ""
        parts.append(
            f'<text class="docflow-chart-label" x="{_c(bar_left - 8)}" y="{_c(text_y)}" '
            f'text-anchor="end" fill="currentColor">{whole}{_esc(short)}</text>'
        )
        bar_width = value / peak * bar_span
        if value > 0:
            parts.append(
                f'<rect class="docflow-chart-bar" x="{_c(bar_left)}" y="{_c(row_top + 5)}" '
                f'width="{_c(bar_width)}" height="{_ROW_HEIGHT - 10}" fill="{PALETTE[0]}"'
                f"{_data_attrs(label, None, value)}>"
                f"<title>{_esc(_tooltip(label, None, value, unit))}</title></rect>"
            )
        parts.append(
            f'<text class="docflow-chart-value" x="{_c(bar_left + bar_width + 6)}" '
            f'y="{_c(text_y)}" fill="currentColor">{_esc(value_text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class _Frame:
    """The plot area in SVG coordinates and the value at its top edge."""

    left: float
    top: float
    right: float
    bottom: float
    y_max: float
    count: int

    @property
    def slot(self) -> float:
        return (self.right - self.left) / self.count

    def slot_center(self, index: int) -> float:
        return self.left + (index + 0.5) * self.slot

    def y(self, value: float) -> float:
        return self.bottom - min(value, self.y_max) / self.y_max * (self.bottom - self.top)


def _frame_and_axes(
    kind: str,
    labels: Sequence[str],
    names: list[str],
    peak: float,
    values: Iterable[float],
    *,
    title: str,
    unit: str,
    size: tuple[int, int],
) -> tuple[_Frame, list[str]]:
    """Lay out legend, y gridlines and thinned x labels; return the frame and the SVG so far."""
    width, height = size
    y_max, intervals = _nice_scale(peak)
    if y_max < 5 and all(float(v).is_integer() for v in values):
        y_max, intervals = 5.0, 5  # whole numbers (counts) never get fractional ticks
    ticks = [y_max * i / intervals for i in range(intervals + 1)]
    tick_texts = [_with_unit(format_number(t), unit) for t in ticks]
    x_texts = [_truncate(str(label), _MAX_X_LABEL_CHARS) for label in labels]

    # Wide enough for the tick labels and for half the first x label, centred on its column.
    left = max(max(_text_px(t) for t in tick_texts) + 14, _text_px(x_texts[0]) / 2 + 4)
    right = width - max(12.0, _text_px(x_texts[-1]) / 2 + 4)
    legend, legend_height = _legend(names, left, right) if len(names) > 1 else ([], 0.0)
    top = 10 + legend_height
    bottom = height - 24
    frame = _Frame(left, top, max(right, left + 1), max(bottom, top + 1), y_max, len(labels))

    parts = [_svg_open(kind, title, width, height), *legend]
    for tick, text in zip(ticks, tick_texts, strict=True):
        y = frame.y(tick)
        opacity = "0.5" if tick == 0 else "0.15"
        css = "docflow-chart-axis" if tick == 0 else "docflow-chart-grid"
        parts.append(
            f'<line class="{css}" x1="{_c(frame.left)}" y1="{_c(y)}" x2="{_c(frame.right)}" '
            f'y2="{_c(y)}" stroke="currentColor" stroke-opacity="{opacity}"/>'
            f'<text class="docflow-chart-tick" x="{_c(frame.left - 6)}" y="{_c(y + 4)}" '
            f'text-anchor="end" fill="currentColor">{_esc(text)}</text>'
        )
    widest = max(_text_px(t) for t in x_texts)
    fits = int((frame.right - frame.left) // (widest + 12))
    for i in thin_labels(len(labels), min(MAX_X_LABELS, fits)):
        parts.append(
            f'<text class="docflow-chart-xlabel" x="{_c(frame.slot_center(i))}" '
            f'y="{_c(frame.bottom + 16)}" text-anchor="middle" fill="currentColor">'
            f"{_esc(x_texts[i])}</text>"
        )
    return frame, parts


def _legend(names: list[str], left: float, right: float) -> tuple[list[str], float]:
    """A swatch and name per series, wrapped onto as many rows as the width needs."""
    parts = ['<g class="docflow-chart-legend">']
    x, y = left, 4.0
    for colour, name in zip(_colours(), names, strict=False):
        advance = 14 + _text_px(name) + 16
        if x > left and x + advance - 16 > right:
            x, y = left, y + 16
        parts.append(
            f'<rect x="{_c(x)}" y="{_c(y + 1)}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{_c(x + 14)}" y="{_c(y + 10)}" fill="currentColor">{_esc(name)}</text>'
        )
        x += advance
    parts.append("</g>")
    return parts, y + 16 + 4


def _svg_open(kind: str, title: str, width: int, height: int) -> str:
    label = _esc(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="docflow-chart docflow-chart-{kind}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'preserveAspectRatio="xMidYMid meet" style="max-width:100%;height:auto" role="img" '
        f'aria-label="{label}" font-family="system-ui, -apple-system, Segoe UI, sans-serif" '
        f'font-size="{_FONT_SIZE}"><title>{label}</title>'
    )


def _empty_chart(kind: str, title: str, width: int, height: int) -> str:
    return (
        f"{_svg_open(kind, title, width, height)}"
        f'<text class="docflow-chart-empty" x="{_c(width / 2)}" y="{_c(height / 2 + 4)}" '
        f'text-anchor="middle" fill="currentColor" fill-opacity="0.7">{_esc(NO_DATA_TEXT)}</text>'
        "</svg>"
    )


def _nice_scale(value: float) -> tuple[float, int]:
    """`nice_max(value)` and the number of gridline intervals that keeps its ticks round."""
    if not math.isfinite(value) or value <= 0:
        return 1.0, 5
    exponent = math.floor(math.log10(value))
    for lead, intervals in _NICE_STEPS:
        # Dividing by an exact power of ten keeps 0.5 and 0.25 free of float noise.
        top = lead * 10**exponent if exponent >= 0 else lead / 10**-exponent
        if top >= value * (1 - 1e-9):
            return float(top), intervals
    return float(10 ** (exponent + 1)), 5  # log10 rounded down a whole decade: one more up


def _significant(value: float, *, max_decimals: int) -> str:
    """`value` (non-negative) to three significant digits, without trailing zeros."""
    if value == 0:
        return "0"
    decimals = min(max_decimals, max(0, 2 - math.floor(math.log10(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _format_exact(value: float) -> str:
    """The figure a tooltip shows: whole numbers with thousands separators, else 3 decimals."""
    if value.is_integer():
        return f"{int(value):,}"
    text = f"{value:,.3f}".rstrip("0").rstrip(".")
    return text if text.lstrip("-") != "0" else f"{value:.3g}"


def _tooltip(label: str, series: str | None, value: float, unit: str) -> str:
    where = f"{label} · {series}" if series is not None else str(label)
    return f"{where}: {_with_unit(_format_exact(value), unit)}"


def _with_unit(text: str, unit: str) -> str:
    if not unit:
        return text
    return f"{text}{unit}" if unit.startswith("%") else f"{text} {unit}"


def _data_attrs(label: str, series: str | None, value: float) -> str:
    number = str(int(value)) if value.is_integer() else repr(value)
    named = f' data-series="{_esc(series)}"' if series is not None else ""
    return f' data-label="{_esc(label)}"{named} data-value="{number}"'


def _check_lengths(labels: Sequence[str], series: Mapping[str, Sequence[object]]) -> None:
    for name, values in series.items():
        if len(values) != len(labels):
            raise ValueError(
                f"series {str(name)!r} has {len(values)} values but there are {len(labels)} "
                "labels; give exactly one value per label"
            )


def _bar_value(value: float | None) -> float:
    """A bar's height: negative, missing, NaN and infinite values count as 0."""
    if value is None:
        return 0.0
    number = float(value)
    return number if math.isfinite(number) and number > 0 else 0.0


def _line_value(value: float | None) -> float | None:
    """A line point: missing, NaN and infinite are gaps; negative values sit on the axis."""
    if value is None:
        return None
    number = float(value)
    return max(number, 0.0) if math.isfinite(number) else None


def _colours() -> Iterable[str]:
    """The palette, repeated as often as there are series."""
    while True:
        yield from PALETTE


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text_px(text: str) -> float:
    return len(text) * _CHAR_PX


def _esc(text: object) -> str:
    """Escape for both element text and attribute values, dropping characters XML forbids."""
    return html.escape(_INVALID_XML.sub("", str(text)), quote=True)


def _c(value: float) -> str:
    """A coordinate rounded to one decimal, without a trailing ".0"."""
    text = f"{value:.1f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text
