"""Parsing an "import agents" file: good rows, one error per bad column, or the whole file refused.

The module is pure, so these tests need no database and no Django: run them with
``-p no:django --noconftest``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest

from documents.agent_import import (
    AgentRow,
    ImportFileError,
    ParsedImport,
    RowError,
    parse_agent_file,
    slugify,
)

BOM = b"\xef\xbb\xbf"
ACCEPTED = (
    'Accepted: "organization", "name", "slug", "persona", "model", "temperature", "documents".'
)


def _csv(header: list[str], *rows: list[str]) -> bytes:
    """A CSV as a spreadsheet writes it: the csv module quotes what needs quoting."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _json(items: object) -> bytes:
    return json.dumps(items).encode()


def _one_row(**values: str) -> bytes:
    """A CSV with one data row (line 2): organization "acme" and name "Support" unless given."""
    fields = {"organization": "acme", "name": "Support", **values}
    return _csv(list(fields), list(fields.values()))


def _refusal(data: bytes, **options: object) -> str:
    with pytest.raises(ImportFileError) as caught:
        parse_agent_file(data, **options)  # type: ignore[arg-type]
    return str(caught.value)


# --- Good files ----------------------------------------------------------------------------------


def test_csv_and_json_give_the_same_agents() -> None:
    # Given the same two agents as CSV and as JSON
    csv_data = _csv(
        ["organization", "name", "slug", "persona", "model", "temperature", "documents"],
        [
            "acme",
            "Support Bot",
            "",
            "Be kind.",
            "gpt-4o",
            "0.2",
            "https://acme.test/faq|/srv/a.pdf",
        ],
        ["globex", "Sales", "sales-eu", "", "", "1.5", ""],
    )
    json_data = _json(
        [
            {
                "organization": "acme",
                "name": "Support Bot",
                "persona": "Be kind.",
                "model": "gpt-4o",
                "temperature": 0.2,
                "documents": ["https://acme.test/faq", "/srv/a.pdf"],
            },
            {"organization": "globex", "name": "Sales", "slug": "sales-eu", "temperature": 1.5},
        ]
    )

    # When both are parsed
    from_csv = parse_agent_file(csv_data, filename="agents.csv")
    from_json = parse_agent_file(json_data, filename="agents.json")

    # Then they hold the same agents; only the row numbers follow each format's convention
    expected = [
        AgentRow(
            row=1,
            organization="acme",
            name="Support Bot",
            slug="support-bot",
            persona="Be kind.",
            model="gpt-4o",
            temperature=0.2,
            documents=("https://acme.test/faq", "/srv/a.pdf"),
        ),
        AgentRow(
            row=2,
            organization="globex",
            name="Sales",
            slug="sales-eu",
            persona="",
            model="gpt-4o-mini",
            temperature=1.5,
            documents=(),
        ),
    ]
    assert from_json == ParsedImport(rows=expected, errors=[], format="json")
    assert from_csv == ParsedImport(
        rows=[replace(row, row=row.row + 1) for row in expected], errors=[], format="csv"
    )


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Support Bot", "support-bot"),
        ("Crème Brûlée", "creme-brulee"),
        ("Ünïcödé Ågent", "unicode-agent"),
        ("  Hello, World!  ", "hello-world"),
        ("R&D -- Team_2 (beta)", "r-d-team-2-beta"),
        ("Agent №5", "agent-no5"),
        ("a" * 99 + " bc", "a" * 99),  # cut at 100 characters, without a trailing hyphen
    ],
)
def test_slug_is_derived_from_the_name(name: str, slug: str) -> None:
    parsed = parse_agent_file(_one_row(name=name))

    assert parsed.errors == []
    assert [row.slug for row in parsed.rows] == [slug]
    assert slugify(name) == slug


def test_a_given_slug_is_kept_as_written() -> None:
    parsed = parse_agent_file(_one_row(name="Support", slug="  Support_V2  "))

    assert parsed.errors == []
    assert [row.slug for row in parsed.rows] == ["Support_V2"]


@pytest.mark.parametrize(
    "data",
    [
        _csv(["organization", "name"], ["acme", "Support"]),
        _csv(
            ["organization", "name", "slug", "persona", "model", "temperature", "documents"],
            ["acme", "Support", "", "  ", "", " ", " | "],
        ),
        _json([{"organization": "acme", "name": "Support"}]),
        _json(
            [
                {
                    "organization": "acme",
                    "name": "Support",
                    "slug": None,
                    "persona": None,
                    "model": "",
                    "temperature": None,
                    "documents": None,
                }
            ]
        ),
    ],
    ids=["csv-columns-absent", "csv-values-blank", "json-keys-absent", "json-values-null"],
)
def test_absent_or_blank_optional_values_take_the_defaults(data: bytes) -> None:
    parsed = parse_agent_file(data)

    assert parsed.errors == []
    assert [
        (row.slug, row.persona, row.model, row.temperature, row.documents) for row in parsed.rows
    ] == [("support", "", "gpt-4o-mini", 0.7, ())]


def test_whitespace_around_values_is_stripped() -> None:
    parsed = parse_agent_file(
        _one_row(
            organization=" acme ",
            name="\tSupport  ",
            persona="\n Be kind. \n",
            model=" gpt-4o ",
            temperature=" 1 ",
        )
    )

    assert parsed.rows == [
        AgentRow(
            row=2,
            organization="acme",
            name="Support",
            slug="support",
            persona="Be kind.",
            model="gpt-4o",
            temperature=1.0,
            documents=(),
        )
    ]


def test_header_names_ignore_case_and_surrounding_spaces() -> None:
    parsed = parse_agent_file(b" Organization , NAME \nacme,Support\n")

    assert [(row.organization, row.name) for row in parsed.rows] == [("acme", "Support")]


def test_quoted_csv_values_keep_commas_and_line_breaks() -> None:
    # Given a persona with commas, quotes and line breaks, then a second row
    data = (
        b"organization,name,persona\r\n"
        b'acme,Support,"Hello, I help.\r\nRules:\r\n- say ""please"", always"\r\n'
        b"acme,Sales,Sell.\r\n"
    )

    # When it is parsed
    parsed = parse_agent_file(data)

    # Then the persona is whole, and the second row is numbered by the line it starts on
    assert parsed.errors == []
    assert [(row.row, row.name, row.persona) for row in parsed.rows] == [
        (2, "Support", 'Hello, I help.\r\nRules:\r\n- say "please", always'),
        (5, "Sales", "Sell."),
    ]


def test_blank_lines_are_skipped_and_rows_keep_their_line_numbers() -> None:
    parsed = parse_agent_file(b"organization,name\n\nacme,One\n,\n \nacme,Two\n\n")

    assert parsed.errors == []
    assert [(row.row, row.name) for row in parsed.rows] == [(3, "One"), (6, "Two")]


@pytest.mark.parametrize(
    ("cell", "documents"),
    [
        ("https://acme.test/a", ("https://acme.test/a",)),
        ("https://acme.test/a|/srv/b.pdf", ("https://acme.test/a", "/srv/b.pdf")),
        ("https://acme.test/a\n/srv/b.pdf", ("https://acme.test/a", "/srv/b.pdf")),
        ("https://acme.test/a\r\n/srv/b.pdf\r\n", ("https://acme.test/a", "/srv/b.pdf")),
        (" /srv/a.pdf | | HTTP://acme.test/b?q=1#x |", ("/srv/a.pdf", "HTTP://acme.test/b?q=1#x")),
        ("/srv/a.pdf|/srv/b.pdf|/srv/a.pdf", ("/srv/a.pdf", "/srv/b.pdf")),  # repeats dropped
        ("/srv/my files/a b.pdf", ("/srv/my files/a b.pdf",)),
        (
            "https://bot@acme.test:8443/a|http://[::1]:8000/x",
            ("https://bot@acme.test:8443/a", "http://[::1]:8000/x"),
        ),
    ],
)
def test_csv_documents_are_split_on_bars_and_line_breaks(
    cell: str, documents: tuple[str, ...]
) -> None:
    parsed = parse_agent_file(_one_row(documents=cell))

    assert parsed.errors == []
    assert [row.documents for row in parsed.rows] == [documents]


def test_json_agents_may_be_wrapped_in_an_object() -> None:
    # Given the {"agents": [...]} form, with another top-level key that is ignored
    data = _json(
        {
            "exported_at": "2024-05-01",
            "agents": [{"organization": "acme", "name": "Support", "temperature": 1}],
        }
    )

    parsed = parse_agent_file(data)

    assert parsed == ParsedImport(
        rows=[
            AgentRow(
                row=1,
                organization="acme",
                name="Support",
                slug="support",
                persona="",
                model="gpt-4o-mini",
                temperature=1.0,
                documents=(),
            )
        ],
        errors=[],
        format="json",
    )


@pytest.mark.parametrize(
    ("data", "format_"),
    [
        (BOM + b"organization,name\r\nacme,Support\r\n", "csv"),
        (BOM + b'  \n[{"organization": "acme", "name": "Support"}]', "json"),
        (b'\n\t {"agents": [{"organization": "acme", "name": "Support"}]}', "json"),
    ],
)
def test_a_bom_and_leading_whitespace_are_accepted(data: bytes, format_: str) -> None:
    parsed = parse_agent_file(data, filename="agents.txt")

    assert parsed.format == format_
    assert parsed.errors == []
    assert [(row.organization, row.name) for row in parsed.rows] == [("acme", "Support")]


@pytest.mark.parametrize(
    ("temperature", "expected"), [("0", 0.0), ("2", 2.0), ("2.0", 2.0), (".5", 0.5), ("1e0", 1.0)]
)
def test_temperature_limits_are_inclusive(temperature: str, expected: float) -> None:
    parsed = parse_agent_file(_one_row(temperature=temperature))

    assert parsed.errors == []
    assert [row.temperature for row in parsed.rows] == [expected]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("name", "n" * 200),
        ("slug", "s" * 100),
        ("organization", "o" * 100),
        ("persona", "p" * 20_000),
        ("model", "m" * 100),
    ],
)
def test_values_at_their_length_limit_are_accepted(column: str, value: str) -> None:
    parsed = parse_agent_file(_one_row(**{column: value}))

    assert parsed.errors == []
    assert [getattr(row, column) for row in parsed.rows] == [value]


def test_a_file_of_exactly_max_bytes_and_max_rows_is_accepted() -> None:
    data = _csv(["organization", "name"], ["acme", "One"], ["acme", "Two"])

    parsed = parse_agent_file(data, max_bytes=len(data), max_rows=2)

    assert [row.name for row in parsed.rows] == ["One", "Two"]


# --- The whole file refused ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "limit", "message"),
    [
        (11, 10, "The file is 11 bytes; the largest accepted is 10 bytes."),
        (
            10_000_001,
            10_000_000,
            "The file is 10,000,001 bytes; the largest accepted is 10,000,000 bytes.",
        ),
    ],
)
def test_a_file_over_max_bytes_is_refused(size: int, limit: int, message: str) -> None:
    assert _refusal(b"x" * size, max_bytes=limit) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty."),
        (b" \r\n\t\n", "The file is empty."),
        (BOM, "The file is empty."),
        (b"organization,name\r\n", "The file has a header but no agent rows."),
        (b"organization,name\n\n,\n  \n", "The file has a header but no agent rows."),
        (b"[]", "The file lists no agents."),
        (b'{"agents": []}', "The file lists no agents."),
    ],
)
def test_an_empty_file_is_refused(data: bytes, message: str) -> None:
    assert _refusal(data) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"organization,name\nacme,Caf\xe9\n",
            "The file is not UTF-8 text: the byte at offset 26 (line 2) is 0xE9. Save the file as "
            'UTF-8 (in Excel: "CSV UTF-8") and upload it again.',
        ),
        (
            BOM + b"organization,name\nacme,Caf\xe9\n",
            "The file is not UTF-8 text: the byte at offset 29 (line 2) is 0xE9. Save the file as "
            'UTF-8 (in Excel: "CSV UTF-8") and upload it again.',
        ),
        (
            b"\xff\xfeo\x00r\x00",  # UTF-16, as Excel's "Unicode text" saves
            "The file is not UTF-8 text: the byte at offset 0 (line 1) is 0xFF. Save the file as "
            'UTF-8 (in Excel: "CSV UTF-8") and upload it again.',
        ),
        (
            b"PK\x03\x04\x14\x00\x06\x00\x08\x00\xff\xff",
            'This looks like an Excel workbook or another zip file. Save it as "CSV UTF-8" (or '
            "export JSON) and upload that instead.",
        ),
    ],
    ids=["latin-1", "latin-1-after-bom", "utf-16", "xlsx"],
)
def test_a_file_that_is_not_utf8_is_refused(data: bytes, message: str) -> None:
    assert _refusal(data) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'[{"organization": "acme",\n "name": }]',
            "The file starts like JSON but is not valid JSON: Expecting value at line 2, "
            "column 10.",
        ),
        (
            b'{"agents": [{"organization": "acme", "name": "A"},]}',
            "The file starts like JSON but is not valid JSON: Expecting value at line 1, "
            "column 51.",
        ),
        (b"[" * 100_000, "The file starts like JSON but is nested too deeply to read."),
    ],
    ids=["missing-value", "trailing-comma", "nested-too-deeply"],
)
def test_malformed_json_is_refused_with_its_position(data: bytes, message: str) -> None:
    assert _refusal(data) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'{"agent": [{"organization": "acme", "name": "A"}]}',
            'The JSON must be a list of agent objects, or an object with an "agents" list.',
        ),
        (
            b'{"agents": {"organization": "acme", "name": "A"}}',
            'The JSON must be a list of agent objects, or an object with an "agents" list.',
        ),
        (
            b"[1]",
            "Item 1 of the agent list is a number, not an object; every agent must be an object "
            'such as {"organization": "acme", "name": "Support"}.',
        ),
        (
            b'[{"organization": "acme", "name": "A"}, "acme,B"]',
            "Item 2 of the agent list is text, not an object; every agent must be an object "
            'such as {"organization": "acme", "name": "Support"}.',
        ),
        (
            b'[{"organization": "acme", "name": "A", "Temperature": 1}, '
            b'{"organization": "acme", "name": "B", "colour": "red", "Temperature": 1}]',
            'Unknown keys: "Temperature" (item 1), "colour" (item 2). ' + ACCEPTED,
        ),
    ],
    ids=["no-agents-key", "agents-not-a-list", "number-item", "text-item", "unknown-keys"],
)
def test_json_that_is_not_a_list_of_agent_objects_is_refused(data: bytes, message: str) -> None:
    assert _refusal(data) == message


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            b"name,persona",
            'The header (line 1) has no "organization" column; these are required. ' + ACCEPTED,
        ),
        (
            b"slug,model",
            'The header (line 1) has no "organization", "name" column; these are required. '
            + ACCEPTED,
        ),
        (
            b"organization,name,temprature,colour",
            'Unknown columns: "temprature", "colour". ' + ACCEPTED,
        ),
        (
            b"organization,name,Name",
            'The header names "name" more than once.',
        ),
        (
            b"organization;name",
            'Unknown columns: "organization;name". '
            + ACCEPTED
            + " Separate the columns with commas.",
        ),
    ],
    ids=["missing-one", "missing-two", "unknown", "repeated", "semicolons"],
)
def test_a_csv_header_without_the_right_columns_is_refused(header: bytes, message: str) -> None:
    assert _refusal(header + b"\nacme,Support\n") == message


def test_a_json_file_name_says_why_the_content_was_read_as_csv() -> None:
    message = _refusal(b"organization: acme\nname: Support\n", filename="Agents.JSON")

    assert message == (
        'Unknown columns: "organization: acme". ' + ACCEPTED + " The file is named "
        '"Agents.JSON" but does not start with "[" or "{", so it was read as CSV.'
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _csv(["organization", "name"], ["acme", "A"], ["acme", "B"], ["acme", "C"]),
            "The file has more than 2 agent rows (line 4 is one too many). Split it into "
            "smaller files.",
        ),
        (
            _json([{"organization": "acme", "name": name} for name in "ABC"]),
            "The file has 3 agents; the most accepted in one file is 2. Split it into smaller "
            "files.",
        ),
    ],
    ids=["csv", "json"],
)
def test_a_file_over_max_rows_is_refused(data: bytes, message: str) -> None:
    assert _refusal(data, max_rows=2) == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b'organization,name\nacme,A\nacme,"B"x\n',
            "The CSV is malformed in the record starting on line 3: ',' expected after '\"'.",
        ),
        (
            b'organization,name\nacme,A\nacme,"B\nacme,C\n',
            "The CSV is malformed in the record starting on line 3: unexpected end of data.",
        ),
        (
            b'organization,name\nacme,"A\n' + b"acme,B\n" * 20_000,
            "The CSV is malformed in the record starting on line 2: a value is longer than "
            "131,072 characters.",
        ),
    ],
    ids=["text-after-closing-quote", "unclosed-quote", "unclosed-quote-swallowing-lines"],
)
def test_malformed_csv_is_refused_with_its_line(data: bytes, message: str) -> None:
    assert _refusal(data) == (
        message + " Check the quotes: a value with commas or line breaks must be in double "
        'quotes, and a double quote inside it must be doubled ("").'
    )


# --- Row errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "column", "message"),
    [
        ({"organization": " "}, "organization", "An organization slug is required."),
        ({"name": ""}, "name", "A name is required."),
        (
            {"organization": "Acme Inc"},
            "organization",
            'Organization "Acme Inc" is not a valid slug: use only letters, digits, hyphens and '
            "underscores.",
        ),
        (
            {"organization": "o" * 101},
            "organization",
            "Organization is 101 characters; the most is 100.",
        ),
        (
            {"slug": "support bot"},
            "slug",
            'Slug "support bot" is not a valid slug: use only letters, digits, hyphens and '
            "underscores.",
        ),
        (
            {"slug": "créme"},
            "slug",
            'Slug "créme" is not a valid slug: use only letters, digits, hyphens and underscores.',
        ),
        ({"slug": "s" * 101}, "slug", "Slug is 101 characters; the most is 100."),
        (
            {"name": "日本語"},
            "slug",
            'Cannot make a slug from the name "日本語"; give one in "slug".',
        ),
        ({"name": "n" * 201}, "name", "Name is 201 characters; the most is 200."),
        (
            {"name": "Sup\tport"},
            "name",
            "Name must be one line, without tabs or other control characters.",
        ),
        ({"persona": "p" * 20_001}, "persona", "Persona is 20,001 characters; the most is 20,000."),
        ({"persona": "a\x00b"}, "persona", "Persona contains a NUL character."),
        ({"model": "m" * 101}, "model", "Model is 101 characters; the most is 100."),
        ({"temperature": "hot"}, "temperature", 'Temperature "hot" is not a number.'),
        (
            {"temperature": "0,7"},
            "temperature",
            'Temperature "0,7" is not a number; use a dot for decimals.',
        ),
        ({"temperature": "-0.1"}, "temperature", "Temperature must be from 0.0 to 2.0, not -0.1."),
        ({"temperature": "2.01"}, "temperature", "Temperature must be from 0.0 to 2.0, not 2.01."),
        ({"temperature": "nan"}, "temperature", "Temperature must be from 0.0 to 2.0, not nan."),
        ({"temperature": "inf"}, "temperature", "Temperature must be from 0.0 to 2.0, not inf."),
        (
            {"documents": "notes.pdf"},
            "documents",
            'Bad document sources: "notes.pdf" is not an http(s) URL or an absolute server path '
            '(starting with "/").',
        ),
        (
            {"documents": "/srv/a.pdf|ftp://acme.test/b.pdf|srv/c.pdf"},
            "documents",
            'Bad document sources: "ftp://acme.test/b.pdf" is not an http(s) URL or an absolute '
            'server path (starting with "/"); "srv/c.pdf" is not an http(s) URL or an absolute '
            'server path (starting with "/").',
        ),
        (
            {"documents": "https:///a.pdf"},
            "documents",
            'Bad document sources: "https:///a.pdf" has no host name.',
        ),
        (
            {"documents": "https://acme.test/my file.pdf"},
            "documents",
            'Bad document sources: "https://acme.test/my file.pdf" contains spaces (write them '
            "as %20).",
        ),
        (
            {"documents": "http://[::1/x"},
            "documents",
            'Bad document sources: "http://[::1/x" is not a valid URL.',
        ),
        (
            {"documents": "https://acme.test/" + "a" * 2000},
            "documents",
            f'Bad document sources: "https://acme.test/{"a" * 41}…" is longer than 2,000 '
            "characters.",
        ),
        (
            {"documents": "/srv/a\x01.pdf"},
            "documents",
            'Bad document sources: "/srv/a\x01.pdf" contains control characters.',
        ),
    ],
)
def test_a_bad_value_is_a_row_error_and_the_row_is_left_out(
    values: dict[str, str], column: str, message: str
) -> None:
    # Given one bad row between two good ones
    fields = {"organization": "acme", "name": "Support", **values}
    data = _csv(
        list(fields),
        ["acme", "Before", *[""] * (len(fields) - 2)],
        list(fields.values()),
        ["acme", "After", *[""] * (len(fields) - 2)],
    )

    # When the file is parsed
    parsed = parse_agent_file(data)

    # Then the bad row gives exactly one error, and only the good rows come through
    assert parsed.errors == [RowError(row=3, column=column, message=message)]
    assert [row.name for row in parsed.rows] == ["Before", "After"]


def test_many_bad_sources_are_summarised() -> None:
    parsed = parse_agent_file(_one_row(documents="|".join(f"f{index}.pdf" for index in range(8))))

    assert [error.message for error in parsed.errors] == [
        "Bad document sources: "
        + "; ".join(
            f'"f{index}.pdf" is not an http(s) URL or an absolute server path (starting with "/")'
            for index in range(5)
        )
        + "; and 3 more."
    ]
    assert parsed.rows == []


def test_long_values_are_shortened_in_messages() -> None:
    # Given a long organization that is not a slug, and a long temperature
    parsed = parse_agent_file(_one_row(organization="a b" * 30_000, temperature="x" * 100_000))

    assert parsed.errors == [
        RowError(
            2,
            "organization",
            f'Organization "{("a b" * 20)[:59]}…" is not a valid slug: use only letters, digits, '
            "hyphens and underscores.",
        ),
        RowError(2, "temperature", f'Temperature "{"x" * 59}…" is not a number.'),
    ]
    assert parsed.rows == []


def test_many_unknown_columns_are_summarised() -> None:
    header = ",".join(["organization", "name", *(f"extra{index}" for index in range(100_000))])

    message = _refusal(f"{header}\nacme,Support\n".encode())

    assert message == (
        'Unknown columns: "extra0", "extra1", "extra2", "extra3", "extra4", and 99995 more. '
        + ACCEPTED
    )


def test_a_row_with_several_bad_columns_gets_one_error_per_column() -> None:
    # Given a row with no organization, a bad slug, a bad temperature and a bad document
    data = _one_row(organization="", slug="a b", temperature="3", documents="notes.pdf")

    # When it is parsed
    parsed = parse_agent_file(data)

    # Then each bad column has its own error, in column order, and no row comes through
    assert parsed.errors == [
        RowError(2, "organization", "An organization slug is required."),
        RowError(
            2,
            "slug",
            'Slug "a b" is not a valid slug: use only letters, digits, hyphens and underscores.',
        ),
        RowError(2, "temperature", "Temperature must be from 0.0 to 2.0, not 3."),
        RowError(
            2,
            "documents",
            'Bad document sources: "notes.pdf" is not an http(s) URL or an absolute server path '
            '(starting with "/").',
        ),
    ]
    assert parsed.rows == []


def test_a_value_under_no_column_is_a_row_error() -> None:
    # Given a row with one value more than the header, and a row whose extra cell is empty
    data = b"organization,name\nacme,Support,oops\nacme,Sales,\n"

    parsed = parse_agent_file(data)

    assert parsed.errors == [
        RowError(
            2,
            "",
            "Value 3 on this line has no column name in the header (line 1); remove it or name "
            "its column.",
        )
    ]
    assert [row.name for row in parsed.rows] == ["Sales"]


def test_a_short_csv_row_takes_defaults_for_the_missing_cells() -> None:
    parsed = parse_agent_file(b"organization,name,model,temperature\nacme,Support\n")

    assert parsed.errors == []
    assert [(row.model, row.temperature) for row in parsed.rows] == [("gpt-4o-mini", 0.7)]


def test_a_repeated_slug_in_one_organization_is_an_error_after_the_first() -> None:
    # Given "support" three times for acme (derived twice, written once) and once for globex
    data = _csv(
        ["organization", "name", "slug"],
        ["acme", "Support", ""],
        ["globex", "Support", ""],
        ["acme", "SUPPORT!", ""],
        ["acme", "Helpdesk", "support"],
        ["acme", "Support", "Support"],  # slugs are case-sensitive, as in the database
    )

    # When it is parsed
    parsed = parse_agent_file(data)

    # Then the first acme row and the globex row stay; each later acme one names line 2
    message = 'Slug "support" is already used for organization "acme" on line 2.'
    assert parsed.errors == [RowError(4, "slug", message), RowError(5, "slug", message)]
    assert [(row.row, row.organization, row.slug) for row in parsed.rows] == [
        (2, "acme", "support"),
        (3, "globex", "support"),
        (6, "acme", "Support"),
    ]


def test_a_repeated_slug_in_json_names_the_item_of_the_first() -> None:
    data = _json(
        [{"organization": "acme", "name": f"Bot {index}", "slug": "bot"} for index in "12"]
    )

    parsed = parse_agent_file(data)

    assert parsed.errors == [
        RowError(2, "slug", 'Slug "bot" is already used for organization "acme" on item 1.')
    ]
    assert [row.name for row in parsed.rows] == ["Bot 1"]


def test_a_first_row_with_other_errors_still_holds_its_slug() -> None:
    # Given two rows with the same slug, the first with a bad temperature
    data = _csv(
        ["organization", "name", "temperature"], ["acme", "Support", "5"], ["acme", "Support", "1"]
    )

    parsed = parse_agent_file(data)

    # Then both problems are reported at once, not one per upload
    assert parsed.errors == [
        RowError(2, "temperature", "Temperature must be from 0.0 to 2.0, not 5."),
        RowError(3, "slug", 'Slug "support" is already used for organization "acme" on line 2.'),
    ]
    assert parsed.rows == []


@pytest.mark.parametrize(
    ("values", "column", "message"),
    [
        ({"name": 5}, "name", "Name must be text, not a number."),
        ({"organization": ["acme"]}, "organization", "Organization must be text, not a list."),
        ({"slug": False}, "slug", "Slug must be text, not true/false."),
        ({"persona": {"text": "Hi"}}, "persona", "Persona must be text, not an object."),
        ({"model": 4}, "model", "Model must be text, not a number."),
        ({"temperature": "0.5"}, "temperature", "Temperature must be a number, not text."),
        ({"temperature": True}, "temperature", "Temperature must be a number, not true/false."),
        (
            {"temperature": 10**400},
            "temperature",
            f"Temperature must be from 0.0 to 2.0, not 1{'0' * 58}….",
        ),
        (
            {"documents": "https://acme.test/a"},
            "documents",
            "Documents must be a list of text values, not text.",
        ),
        (
            {"documents": ["/srv/a.pdf", 7]},
            "documents",
            "Documents must be a list of text values; item 2 is a number.",
        ),
    ],
)
def test_a_json_value_of_the_wrong_type_is_a_row_error(
    values: dict[str, object], column: str, message: str
) -> None:
    data = _json([{"organization": "acme", "name": "Support", **values}])

    parsed = parse_agent_file(data)

    assert parsed.errors == [RowError(1, column, message)]
    assert parsed.rows == []


def test_json_numbers_and_document_lists_are_accepted() -> None:
    data = _json(
        [
            {
                "organization": "acme",
                "name": "Support",
                "temperature": 2,
                "documents": [" /srv/a.pdf ", "", "https://acme.test/b"],
            }
        ]
    )

    parsed = parse_agent_file(data)

    assert parsed.errors == []
    assert [(row.temperature, row.documents) for row in parsed.rows] == [
        (2.0, ("/srv/a.pdf", "https://acme.test/b"))
    ]


# --- Size ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("format_", ["csv", "json"])
def test_ten_thousand_rows_parse_in_well_under_a_second(format_: str) -> None:
    # Given 10,000 agents in 10 organizations; all 1,000 of org-0 share one name, so one slug
    agents = [
        {
            "organization": f"org-{index % 10}",
            "name": f"Agent {0 if index % 10 == 0 else index}",
            "persona": f"You are agent {index}, and you help.",
            "temperature": "0.5" if format_ == "csv" else 0.5,
            "documents": [f"https://acme.test/{index}", f"/srv/docs/{index}.pdf"],
        }
        for index in range(10_000)
    ]
    if format_ == "csv":
        header = list(agents[0])
        data = _csv(
            header,
            *[
                [*(str(agent[key]) for key in header[:-1]), "|".join(agent["documents"])]
                for agent in agents
            ],
        )
    else:
        data = _json(agents)

    # When it is parsed (its speed is measured by bench/agents.py, not here)
    parsed = parse_agent_file(data)

    # Then every row is accounted for
    assert (len(parsed.rows), len(parsed.errors)) == (9_001, 999)
