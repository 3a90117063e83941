"""The monthly usage report files: exact CSV rows, exact totals, and PDF text read back."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pymupdf
import pytest

from analytics.report_files import (
    CSV_HEADER,
    METRICS,
    UsageReportData,
    UsageRow,
    agent_totals,
    daily_totals,
    period_label,
    render_csv,
    render_pdf,
    report_filename,
    report_totals,
)

NOVEMBER = date(2026, 11, 1)
GENERATED = datetime(2026, 12, 1, 3, 4, 5, tzinfo=UTC)
ZERO = dict.fromkeys(METRICS, 0)


def _data(
    rows: list[UsageRow],
    agents: list[tuple[str, str]] | None = None,
    *,
    name: str = "Acme Corp",
    month: date = NOVEMBER,
    generated_at: datetime = GENERATED,
) -> UsageReportData:
    if agents is None:
        agents = list({row.agent_slug: row.agent_name for row in rows}.items())
    return UsageReportData(name, "acme", month, generated_at, agents, rows)


@pytest.fixture
def sample() -> UsageReportData:
    """Two active agents over three days, one idle agent, rows given out of order."""
    return _data(
        [
            UsageRow(date(2026, 11, 2), "beta", "Beta", 5, 4, 1, 40, 400, 7, 1_000),
            UsageRow(date(2026, 11, 1), "alpha", "Alpha", 10, 9, 1, 100, 1_000, 3, 500_000),
            UsageRow(date(2026, 11, 30), "alpha", "Alpha", 2, 2, 0, 7, 70, 0, 734),
            UsageRow(date(2026, 11, 2), "alpha", "Alpha", 1, 0, 1, 0, 0, 1, 0),
        ],
        [("beta", "Beta"), ("idle", "Idle agent"), ("alpha", "Alpha")],
    )


def _pdf(data: UsageReportData) -> pymupdf.Document:
    return pymupdf.open(stream=render_pdf(data), filetype="pdf")


def _texts(doc: pymupdf.Document) -> list[str]:
    return [page.get_text() for page in doc]


def _row_words(page: pymupdf.Page, label: str) -> list[str]:
    """The words on the table row whose first cell is `label`, left to right."""
    words = sorted(page.get_text("words"), key=lambda word: (word[5], word[6], word[7]))
    wanted = label.split()
    (start, *_) = (
        index
        for index in range(len(words))
        if [word[4] for word in words[index : index + len(wanted)]] == wanted
    )
    middle = (words[start][1] + words[start][3]) / 2
    row = [word for word in words if word[1] < middle < word[3]]
    return [word[4] for word in sorted(row, key=lambda word: word[0])]


def _csv_rows(data: UsageReportData) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(render_csv(data).decode("utf-8"))))


# --- Totals ------------------------------------------------------------------------------------


def test_report_totals_sum_every_row(sample: UsageReportData) -> None:
    assert report_totals(sample) == {
        "documents_uploaded": 18,
        "documents_processed": 15,
        "documents_failed": 3,
        "pages": 147,
        "chunks": 1_470,
        "interactions": 11,
        "tokens_used": 501_734,
    }


def test_agent_totals_list_every_agent_by_name_with_zeros_for_idle_ones(
    sample: UsageReportData,
) -> None:
    assert agent_totals(sample) == [
        (
            "alpha",
            "Alpha",
            {
                "documents_uploaded": 13,
                "documents_processed": 11,
                "documents_failed": 2,
                "pages": 107,
                "chunks": 1_070,
                "interactions": 4,
                "tokens_used": 500_734,
            },
        ),
        (
            "beta",
            "Beta",
            {
                "documents_uploaded": 5,
                "documents_processed": 4,
                "documents_failed": 1,
                "pages": 40,
                "chunks": 400,
                "interactions": 7,
                "tokens_used": 1_000,
            },
        ),
        ("idle", "Idle agent", ZERO),
    ]


def test_agent_totals_keep_an_agent_only_known_from_its_rows() -> None:
    data = _data([UsageRow(NOVEMBER, "gone", "Deleted agent", pages=3)], [("kept", "Kept")])

    assert [(slug, name, values["pages"]) for slug, name, values in agent_totals(data)] == [
        ("gone", "Deleted agent", 3),
        ("kept", "Kept", 0),
    ]


def test_daily_totals_cover_every_day_of_the_month(sample: UsageReportData) -> None:
    days = daily_totals(sample)

    assert [day for day, _ in days] == [NOVEMBER + timedelta(days=n) for n in range(30)]
    by_day = dict(days)
    assert by_day[date(2026, 11, 2)] == {
        "documents_uploaded": 6,
        "documents_processed": 4,
        "documents_failed": 2,
        "pages": 40,
        "chunks": 400,
        "interactions": 8,
        "tokens_used": 1_000,
    }
    assert by_day[date(2026, 11, 3)] == ZERO
    assert by_day[date(2026, 11, 30)]["tokens_used"] == 734


def test_daily_totals_follow_the_calendar() -> None:
    assert len(daily_totals(_data([], month=date(2028, 2, 1)))) == 29
    assert len(daily_totals(_data([], month=date(2026, 12, 1)))) == 31


def test_period_label_names_the_first_and_last_utc_day() -> None:
    assert period_label(NOVEMBER) == "1 November 2026 \u2013 30 November 2026 (UTC)"
    assert period_label(date(2028, 2, 1)) == "1 February 2028 \u2013 29 February 2028 (UTC)"


def test_report_filename() -> None:
    assert report_filename(_data([]), "csv") == "usage-acme-2026-11.csv"
    assert report_filename(_data([]), ".pdf") == "usage-acme-2026-11.pdf"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"month": date(2026, 11, 2)}, "first day"),
        ({"generated_at": datetime(2026, 12, 1)}, "aware"),  # noqa: DTZ001
        ({"rows": [UsageRow(date(2026, 12, 1), "alpha", "Alpha")]}, "outside"),
        ({"rows": [UsageRow(NOVEMBER, "alpha", "Alpha")] * 2}, "more than one row"),
    ],
)
def test_inconsistent_data_is_refused(change: dict[str, object], message: str) -> None:
    data = replace(_data([], [("alpha", "Alpha")]), **change)

    for render in (render_csv, render_pdf, report_totals, agent_totals, daily_totals):
        with pytest.raises(ValueError, match=message):
            render(data)


# --- CSV ---------------------------------------------------------------------------------------


def test_csv_has_one_header_then_the_rows_by_date_and_agent(sample: UsageReportData) -> None:
    lines = render_csv(sample).decode("utf-8").splitlines()

    assert lines[0] == (
        "date,organization,agent_slug,agent_name,documents_uploaded,documents_processed,"
        "documents_failed,pages,chunks,interactions,tokens_used"
    )
    assert tuple(lines[0].split(",")) == CSV_HEADER
    assert len(lines) == 1 + len(sample.rows)
    assert _csv_rows(sample) == [
        {
            "date": "2026-11-01",
            "organization": "acme",
            "agent_slug": "alpha",
            "agent_name": "Alpha",
            "documents_uploaded": "10",
            "documents_processed": "9",
            "documents_failed": "1",
            "pages": "100",
            "chunks": "1000",
            "interactions": "3",
            "tokens_used": "500000",
        },
        {
            "date": "2026-11-02",
            "organization": "acme",
            "agent_slug": "alpha",
            "agent_name": "Alpha",
            "documents_uploaded": "1",
            "documents_processed": "0",
            "documents_failed": "1",
            "pages": "0",
            "chunks": "0",
            "interactions": "1",
            "tokens_used": "0",
        },
        {
            "date": "2026-11-02",
            "organization": "acme",
            "agent_slug": "beta",
            "agent_name": "Beta",
            "documents_uploaded": "5",
            "documents_processed": "4",
            "documents_failed": "1",
            "pages": "40",
            "chunks": "400",
            "interactions": "7",
            "tokens_used": "1000",
        },
        {
            "date": "2026-11-30",
            "organization": "acme",
            "agent_slug": "alpha",
            "agent_name": "Alpha",
            "documents_uploaded": "2",
            "documents_processed": "2",
            "documents_failed": "0",
            "pages": "7",
            "chunks": "70",
            "interactions": "0",
            "tokens_used": "734",
        },
    ]


def test_csv_without_rows_is_the_header_alone() -> None:
    assert render_csv(_data([], [("alpha", "Alpha")])) == (",".join(CSV_HEADER) + "\r\n").encode()


def test_csv_round_trips_names_with_commas_quotes_line_breaks_and_accents() -> None:
    name = 'Support, "tier 2"\nZürich \u2013 \u682a\u5f0f'
    rows = _csv_rows(_data([UsageRow(NOVEMBER, "support", name, pages=1)]))

    assert [row["agent_name"] for row in rows] == [name]


@pytest.mark.parametrize("prefix", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_disarms_formulas(prefix: str) -> None:
    name = f'{prefix}HYPERLINK("http://evil")'
    (row,) = _csv_rows(_data([UsageRow(NOVEMBER, f"{prefix}slug", name)]))

    assert row["agent_name"] == f"'{name}"
    assert row["agent_slug"] == f"'{prefix}slug"


def test_csv_leaves_ordinary_names_alone() -> None:
    (row,) = _csv_rows(_data([UsageRow(NOVEMBER, "a", "Sales = money")]))

    assert row["agent_name"] == "Sales = money"


# --- PDF ---------------------------------------------------------------------------------------


def test_pdf_shows_the_header_totals_and_every_agent(sample: UsageReportData) -> None:
    doc = _pdf(sample)
    text = "".join(_texts(doc))

    assert doc.page_count == 1
    assert doc.metadata["title"] == "Usage report: Acme Corp \u2013 November 2026"
    assert doc.metadata["author"] == "Docflow"
    assert doc[0].rect == pymupdf.paper_rect("a4")
    for expected in (
        "Usage report: Acme Corp",
        "1 November 2026 \u2013 30 November 2026 (UTC)",
        "Organization: acme",
        "Generated at: 2026-12-01T03:04:05+00:00",
        "Alpha",
        "Beta",
        "Idle agent",
        "Daily volume",
        "Beta (beta)",
        "Alpha (alpha)",
        "Page 1 of 1",
    ):
        assert expected in text
    assert _row_words(doc[0], "Total") == [
        "Total", "18", "15", "3", "147", "1,470", "11", "501,734"
    ]  # fmt: skip
    assert _row_words(doc[0], "Idle agent") == ["Idle", "agent", *["0"] * 7]


def test_pdf_tables_each_active_agent_by_active_day(sample: UsageReportData) -> None:
    text = _pdf(sample)[0].get_text()
    per_agent = text[text.index("Activity per agent") :]

    assert "Idle agent" not in per_agent
    assert per_agent.index("Alpha (alpha)") < per_agent.index("Beta (beta)")
    alpha = per_agent[per_agent.index("Alpha (alpha)") : per_agent.index("Beta (beta)")]
    assert [line for line in alpha.splitlines() if line.startswith("2026-")] == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-30",
    ]


def test_pdf_leaves_out_days_without_activity() -> None:
    data = _data(
        [
            UsageRow(NOVEMBER, "alpha", "Alpha", pages=1),
            UsageRow(date(2026, 11, 5), "alpha", "Alpha"),
        ]
    )
    text = _pdf(data)[0].get_text()

    assert "2026-11-01" in text
    assert "2026-11-05" not in text


def test_pdf_formats_large_totals_with_thousands_separators() -> None:
    data = _data([UsageRow(NOVEMBER, "alpha", "Alpha", chunks=1_234, tokens_used=9_876_543_210)])
    page = _pdf(data)[0]

    assert _row_words(page, "Total") == [
        "Total", "0", "0", "0", "0", "1,234", "0", "9,876,543,210"
    ]  # fmt: skip


def test_pdf_bar_chart_draws_one_bar_per_day_and_metric_with_activity() -> None:
    rows = [
        UsageRow(date(2026, 11, day), "alpha", "Alpha", documents_processed=day, documents_failed=1)
        for day in (1, 2, 3)
    ] + [UsageRow(date(2026, 11, 4), "alpha", "Alpha", documents_processed=7)]
    page = _pdf(_data(rows))[0]
    fills = [tuple(round(c, 2) for c in d["fill"]) for d in page.get_drawings() if d["fill"]]

    assert fills.count((0.2, 0.45, 0.75)) == 4 + 1  # processed bars and the legend swatch
    assert fills.count((0.85, 0.3, 0.25)) == 3 + 1  # failed bars and the legend swatch
    axis_labels = [
        span["text"]
        for block in page.get_text("dict")["blocks"]
        for line in block.get("lines", [])
        for span in line["spans"]
        if round(span["size"]) == 7 and span["bbox"][2] < 84  # right-aligned left of the plot
    ]
    assert axis_labels == ["10", "0"]  # a round maximum above the peak of 7


def test_pdf_without_rows_is_one_page_with_an_empty_chart_and_zero_totals() -> None:
    doc = _pdf(_data([], [("alpha", "Alpha")]))
    text = doc[0].get_text()

    assert doc.page_count == 1
    assert "Daily volume" in text
    assert "No documents were processed this month." in text
    assert "No agent had activity this month." in text
    assert _row_words(doc[0], "Total") == ["Total", *["0"] * 7]
    assert len(doc[0].get_drawings()) > 5  # axes, grid lines, legend


def test_pdf_without_agents_or_rows_still_renders() -> None:
    doc = _pdf(_data([], []))

    assert doc.page_count == 1
    assert "Agents: 0 (0 with activity)" in doc[0].get_text()


def test_pdf_cuts_long_names_with_an_ellipsis() -> None:
    name = "Extraordinarily verbose agent name " * 6
    text = _pdf(_data([], [("long", name)]))[0].get_text()
    (line,) = [line for line in text.splitlines() if line.startswith("Extraordinarily")]

    assert line.endswith("\u2026")
    assert name.strip() not in text


def test_pdf_drops_accents_and_replaces_letters_helvetica_lacks() -> None:
    text = _pdf(_data([], [("a", "Dvořák \u2013 Zürich \u682a")]))[0].get_text()

    assert "Dvorák \u2013 Zürich ?" in text


def test_pdf_paginates_the_agent_table_and_repeats_its_header() -> None:
    agents = [(f"agent-{n:03d}", f"Agent {n:03d}") for n in range(300)]
    doc = _pdf(_data([], agents))
    texts = _texts(doc)

    assert doc.page_count > 1
    assert texts[0].count("Processed") == 2  # the totals box and the table header
    for text in texts[1:]:
        assert text.count("Processed") == 1
        assert "Totals per agent, continued" in text
    joined = "".join(texts)
    assert all(name in joined for _, name in agents)
    assert f"Page {doc.page_count} of {doc.page_count}" in texts[-1]


def test_pdf_paginates_agent_tables_with_their_heading_and_header() -> None:
    agents = [(f"agent-{n:02d}", f"Agent {n:02d}") for n in range(40)]
    rows = [
        UsageRow(NOVEMBER + timedelta(days=day), slug, name, documents_processed=1)
        for slug, name in agents
        for day in range(30)
    ]
    texts = _texts(_pdf(_data(rows, agents)))

    continued = [text for text in texts if "), continued" in text]
    assert continued
    for text in continued:
        heading = text.index("), continued")
        assert text.index("Processed", heading) > heading
    joined = "".join(texts)
    assert joined.count("2026-11-") == 40 * 30
    assert all(f"{name} ({slug})" in joined for slug, name in agents)


def test_pdf_reports_generated_at_in_utc() -> None:
    paris = datetime(2026, 12, 1, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    text = _pdf(_data([], generated_at=paris))[0].get_text()

    assert "Generated at: 2026-12-01T03:04:05+00:00" in text
