"""Parsing and validating an "import agents" file (CSV or JSON), with no Django and no database.

The admin view, the management command and the import service all need the same answer to
"which rows are good, and what is wrong with the others", so one pure function gives it to each
of them, and to fast tests. What needs the database (does the organization exist, is the slug
already taken, may this server path be read) is the service's job: this module knows only the file.

A whole file that cannot be read raises ImportFileError; everything wrong with a single row is
collected as a RowError, so a person fixes every problem in one pass instead of one per upload.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

COLUMNS = ("organization", "name", "slug", "persona", "model", "temperature", "documents")
REQUIRED_COLUMNS = ("organization", "name")
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TEMPERATURE = 0.7
MIN_TEMPERATURE = 0.0
MAX_TEMPERATURE = 2.0
# The sizes of the Agent, Organization and Document fields, so a valid row always fits.
MAX_NAME_CHARS = 200
MAX_SLUG_CHARS = 100
MAX_PERSONA_CHARS = 20_000
MAX_MODEL_CHARS = 100
MAX_URL_CHARS = 2000
URL_SCHEMES = frozenset({"http", "https"})

_BOM = b"\xef\xbb\xbf"
_VALID_SLUG = re.compile(r"[-a-zA-Z0-9_]+")  # what Django's SlugField (validate_slug) accepts
_NOT_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
_DOCUMENT_SEPARATORS = re.compile(r"[|\r\n]")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_WHITESPACE = re.compile(r"\s")
# Plainly good URLs (scheme, host, optional port, then no spaces or control characters) skip
# urlsplit, which is most of the time spent on a row; anything else gets the careful check.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:[/?#][^\s\x00-\x1f\x7f]*)?", re.I)
# A file with thousands of bad sources or columns, or megabyte values, still gets a short message.
_SHOWN_ITEMS = 5
_SHOWN_CHARS = 60


class ImportFileError(Exception):
    """The whole file is refused; the message says why, for a person."""


@dataclass(frozen=True)
class RowError:
    """One problem with one column of one row; ``column`` is "" for the row as a whole.

    ``row`` is the line the record starts on in a CSV (the header is line 1), or the 1-based
    position in a JSON list: what a person sees in their editor.
    """

    row: int
    column: str
    message: str


@dataclass(frozen=True)
class AgentRow:
    """A valid row, with defaults filled in, ready for the service to create or update."""

    row: int
    organization: str
    name: str
    slug: str
    persona: str
    model: str
    temperature: float
    documents: tuple[str, ...]


@dataclass(frozen=True)
class ParsedImport:
    rows: list[AgentRow]
    errors: list[RowError]
    format: str  # "csv" | "json"


def slugify(value: str) -> str:
    """A slug like Django's slugify: ASCII letters and digits in lower case, joined by hyphens.

    Accents are kept as their base letter (NFKD); every run of anything else becomes one hyphen,
    so "R&D: Bot" gives "r-d-bot". Cut to MAX_SLUG_CHARS without leaving a trailing hyphen.
    """
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG_CHARS.sub("-", ascii_text.lower()).strip("-")
    return slug[:MAX_SLUG_CHARS].rstrip("-")


def parse_agent_file(
    data: bytes,
    *,
    filename: str = "",
    max_bytes: int = 10_000_000,
    max_rows: int = 100_000,
    default_organization: str = "",
) -> ParsedImport:
    """Parse and validate an import file: good rows and row errors, or ImportFileError.

    The format comes from the content (JSON when it starts with "[" or "{"), because people
    rename files and spreadsheets save under any name; ``filename`` only improves messages.
    With ``default_organization``, rows (and CSV headers) may leave the organization out.
    """
    if len(data) > max_bytes:
        raise ImportFileError(
            f"The file is {len(data):,} bytes; the largest accepted is {max_bytes:,} bytes."
        )
    text = _decode(data)
    stripped = text.lstrip()
    if not stripped:
        raise ImportFileError("The file is empty.")
    if stripped[0] in "[{":
        return _parse_json(text, max_rows=max_rows, default_organization=default_organization)
    try:
        return _parse_csv(text, max_rows=max_rows, default_organization=default_organization)
    except ImportFileError as exc:
        if not filename.lower().endswith(".json"):
            raise
        raise ImportFileError(
            f'{exc} The file is named "{filename}" but does not start with "[" or "{{", so it '
            "was read as CSV."
        ) from exc


# --- Whole file ----------------------------------------------------------------------------------


def _decode(data: bytes) -> str:
    offset = len(_BOM) if data.startswith(_BOM) else 0
    try:
        return data[offset:].decode("utf-8")
    except UnicodeDecodeError as exc:
        if data.startswith(b"PK\x03\x04"):
            raise ImportFileError(
                "This looks like an Excel workbook or another zip file. Save it as "
                '"CSV UTF-8" (or export JSON) and upload that instead.'
            ) from exc
        position = offset + exc.start
        line = data.count(b"\n", 0, position) + 1
        raise ImportFileError(
            f"The file is not UTF-8 text: the byte at offset {position:,} (line {line:,}) is "
            f'0x{data[position]:02X}. Save the file as UTF-8 (in Excel: "CSV UTF-8") and '
            "upload it again."
        ) from exc


def _parse_json(text: str, *, max_rows: int, default_organization: str = "") -> ParsedImport:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"The file starts like JSON but is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}."
        ) from exc
    except RecursionError as exc:
        raise ImportFileError(
            "The file starts like JSON but is nested too deeply to read."
        ) from exc
    except ValueError as exc:  # e.g. a number with more digits than Python converts
        raise ImportFileError(f"The file starts like JSON but cannot be read: {exc}.") from exc

    items = document.get("agents") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ImportFileError(
            'The JSON must be a list of agent objects, or an object with an "agents" list.'
        )
    if not items:
        raise ImportFileError("The file lists no agents.")
    if len(items) > max_rows:
        raise ImportFileError(
            f"The file has {len(items):,} agents; the most accepted in one file is "
            f"{max_rows:,}. Split it into smaller files."
        )
    unknown: dict[str, int] = {}  # key -> first item with it, in the order met
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise ImportFileError(
                f"Item {number} of the agent list is {_kind(item)}, not an object; every agent "
                'must be an object such as {"organization": "acme", "name": "Support"}.'
            )
        for key in item.keys() - COLUMNS:
            unknown.setdefault(key, number)
    if unknown:
        named = [f'"{_shown(key)}" (item {number})' for key, number in sorted(unknown.items())]
        raise ImportFileError(f"Unknown keys: {_listed(named)}. {_accepted_columns()}")

    checker = _RowChecker(place="item", default_organization=default_organization)
    for number, item in enumerate(items, start=1):
        checker.check(number, item, text_cells=False)
    return ParsedImport(rows=checker.rows, errors=checker.errors, format="json")


def _parse_csv(text: str, *, max_rows: int, default_organization: str = "") -> ParsedImport:
    records = _csv_records(text)
    header_line, header = next(records, (0, []))  # never empty: the text has non-blank content
    required = [c for c in REQUIRED_COLUMNS if not (c == "organization" and default_organization)]
    columns = _csv_columns(header, line=header_line, required=required)

    checker = _RowChecker(place="line", default_organization=default_organization)
    count = 0
    for line, cells in records:
        count += 1
        if count > max_rows:
            raise ImportFileError(
                f"The file has more than {max_rows:,} agent rows (line {line:,} is one too many). "
                "Split it into smaller files."
            )
        values: dict[str, object] = {}
        stray = 0  # the first position, counted from 1, of a value under no column name
        for position, cell in enumerate(cells):
            column = columns[position] if position < len(columns) else ""
            if column:
                values[column] = cell
            elif not stray and cell.strip():
                stray = position + 1
        if "documents" in values:
            values["documents"] = _DOCUMENT_SEPARATORS.split(str(values["documents"]))
        row_problem = ""
        if stray:
            row_problem = (
                f"Value {stray} on this line has no column name in the header (line "
                f"{header_line}); remove it or name its column."
            )
        checker.check(line, values, text_cells=True, row_problem=row_problem)
    if not count:
        raise ImportFileError("The file has a header but no agent rows.")
    return ParsedImport(rows=checker.rows, errors=checker.errors, format="csv")


def _csv_records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, cells) for each record with any content, in file order.

    Blank lines and lines of empty cells (",,,," from spreadsheets) are skipped. A quoted value
    may span lines, so the start line is the previous record's last line plus one.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    last_line = 0
    try:
        for cells in reader:
            start, last_line = last_line + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                yield start, cells
    except csv.Error as exc:
        problem = str(exc)
        if "field limit" in problem:  # most often a quote left open, swallowing what follows
            problem = f"a value is longer than {csv.field_size_limit():,} characters"
        raise ImportFileError(
            f"The CSV is malformed in the record starting on line {last_line + 1:,}: {problem}. "
            "Check the quotes: a value with commas or line breaks must be in double quotes, and "
            'a double quote inside it must be doubled ("").'
        ) from exc


def _csv_columns(
    header: list[str], *, line: int, required: Iterable[str] = REQUIRED_COLUMNS
) -> list[str]:
    """The column name at each position ("" for a blank header cell), or ImportFileError.

    Names match without regard to case or surrounding spaces, as spreadsheets are typed by hand.
    """
    columns = [cell.strip().lower() for cell in header]
    hint = ""
    if len(columns) == 1 and any(separator in columns[0] for separator in ";\t"):
        hint = " Separate the columns with commas."
    counts = Counter(column for column in columns if column)
    repeated = sorted(column for column, count in counts.items() if count > 1)
    if repeated:
        raise ImportFileError(f"The header names {_quoted(repeated)} more than once.{hint}")
    unknown = [column for column in columns if column and column not in COLUMNS]
    if unknown:
        raise ImportFileError(f"Unknown columns: {_quoted(unknown)}. {_accepted_columns()}{hint}")
    missing = [column for column in required if column not in counts]
    if missing:
        raise ImportFileError(
            f"The header (line {line}) has no {_quoted(missing)} column; these are required. "
            f"{_accepted_columns()}{hint}"
        )
    return columns


# --- Rows ----------------------------------------------------------------------------------------


class _RowChecker:
    """Validates rows one by one, and remembers where each (organization, slug) first appeared.

    The first row with a slug keeps it even if it has other errors, so a person sees the
    clash now rather than after fixing that row.
    """

    def __init__(self, *, place: str, default_organization: str = "") -> None:
        self.place = place  # "line" for CSV, "item" for JSON: how messages point at a row
        self.default_organization = default_organization
        self.rows: list[AgentRow] = []
        self.errors: list[RowError] = []
        self._first_with_slug: dict[tuple[str, str], int] = {}

    def check(
        self, number: int, raw: Mapping[str, object], *, text_cells: bool, row_problem: str = ""
    ) -> None:
        """Add the row to ``rows``, or one error per bad column to ``errors``."""
        problems: list[tuple[str, str]] = []  # (column, message), in column order
        if row_problem:
            problems.append(("", row_problem))

        def text(column: str) -> str | None:
            value = raw.get(column)
            if value is None:
                return ""
            if not isinstance(value, str):
                problems.append((column, f"{_label(column)} must be text, not {_kind(value)}."))
                return None
            if "\x00" in value:
                problems.append((column, f"{_label(column)} contains a NUL character."))
                return None
            return value.strip()

        organization = text("organization")
        if organization == "" and self.default_organization:
            organization = self.default_organization
        if organization == "":
            problems.append(("organization", "An organization slug is required."))
        elif organization is not None:
            problem = _slug_problem("Organization", organization)
            if problem:
                problems.append(("organization", problem))
                organization = None

        name = text("name")
        if name == "":
            problems.append(("name", "A name is required."))
        elif name is not None:
            problem = _line_problem("Name", name, MAX_NAME_CHARS)
            if problem:
                problems.append(("name", problem))

        slug = text("slug")
        if slug:
            problem = _slug_problem("Slug", slug)
            if problem:
                problems.append(("slug", problem))
                slug = None
        elif slug == "" and name:
            slug = slugify(name)
            if not slug:
                problems.append(
                    (
                        "slug",
                        f'Cannot make a slug from the name "{_shown(name)}"; give one in "slug".',
                    )
                )
                slug = None

        persona = text("persona")
        if persona and len(persona) > MAX_PERSONA_CHARS:
            problems.append(("persona", _too_long("Persona", persona, MAX_PERSONA_CHARS)))

        model = text("model")
        if model:
            problem = _line_problem("Model", model, MAX_MODEL_CHARS)
            if problem:
                problems.append(("model", problem))

        temperature = _temperature(raw.get("temperature"), text_cells=text_cells)
        if isinstance(temperature, str):
            problems.append(("temperature", temperature))

        documents = _documents(raw.get("documents"))
        if isinstance(documents, str):
            problems.append(("documents", documents))

        if organization and slug:
            first = self._first_with_slug.setdefault((organization, slug), number)
            if first != number:
                problems.append(
                    (
                        "slug",
                        f'Slug "{slug}" is already used for organization "{organization}" on '
                        f"{self.place} {first}.",
                    )
                )

        if problems:
            self.errors.extend(RowError(number, column, message) for column, message in problems)
            return
        # No problems means every value was checked; the asserts only tell the type checker.
        assert organization  # noqa: S101
        assert name  # noqa: S101
        assert slug  # noqa: S101
        assert isinstance(temperature, float)  # noqa: S101
        assert isinstance(documents, tuple)  # noqa: S101
        self.rows.append(
            AgentRow(
                row=number,
                organization=organization,
                name=name,
                slug=slug,
                persona=persona or "",
                model=model or DEFAULT_MODEL,
                temperature=temperature,
                documents=documents,
            )
        )


def _slug_problem(label: str, value: str) -> str | None:
    if not _VALID_SLUG.fullmatch(value):
        return (
            f'{label} "{_shown(value)}" is not a valid slug: use only letters, digits, hyphens and '
            "underscores."
        )
    if len(value) > MAX_SLUG_CHARS:
        return _too_long(label, value, MAX_SLUG_CHARS)
    return None


def _line_problem(label: str, value: str, limit: int) -> str | None:
    if _CONTROL_CHARS.search(value):
        return f"{label} must be one line, without tabs or other control characters."
    if len(value) > limit:
        return _too_long(label, value, limit)
    return None


def _temperature(value: object, *, text_cells: bool) -> float | str:
    """The temperature, or a message saying what is wrong with it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_TEMPERATURE
    if isinstance(value, str) and text_cells:
        given = value.strip()
        try:
            number = float(given)
        except ValueError:
            comma = "; use a dot for decimals" if "," in given else ""
            return f'Temperature "{_shown(given)}" is not a number{comma}.'
    elif isinstance(value, int | float) and not isinstance(value, bool):
        given = str(value)
        try:
            number = float(value)
        except OverflowError:  # an integer with hundreds of digits
            number = float("inf")
    else:
        return f"Temperature must be a number, not {_kind(value)}."
    if not MIN_TEMPERATURE <= number <= MAX_TEMPERATURE:  # also refuses nan
        return (
            f"Temperature must be from {MIN_TEMPERATURE} to {MAX_TEMPERATURE}, not {_shown(given)}."
        )
    return number


def _documents(value: object) -> tuple[str, ...] | str:
    """The document sources in order, without blanks or repeats, or a message."""
    if value is None:
        return ()
    if not isinstance(value, list):
        return f"Documents must be a list of text values, not {_kind(value)}."
    sources: dict[str, None] = {}  # ordered set
    for position, item in enumerate(value, start=1):
        if not isinstance(item, str):
            return f"Documents must be a list of text values; item {position} is {_kind(item)}."
        source = item.strip()
        if source:
            sources[source] = None
    bad = [(source, problem) for source in sources if (problem := _source_problem(source))]
    if not bad:
        return tuple(sources)
    return (
        "Bad document sources: "
        + _listed([f'"{_shown(source)}" {problem}' for source, problem in bad], separator="; ")
        + "."
    )


def _source_problem(source: str) -> str | None:
    """Why ``source`` is neither an http(s) URL nor an absolute server path, or None."""
    if _CONTROL_CHARS.search(source):
        return "contains control characters"
    if source.startswith("/"):
        return None
    if _PLAIN_URL.fullmatch(source):
        return None if len(source) <= MAX_URL_CHARS else _url_too_long()
    try:
        parts = urlsplit(source)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        return "is not a valid URL"
    if parts.scheme.lower() not in URL_SCHEMES:
        return 'is not an http(s) URL or an absolute server path (starting with "/")'
    if not host:
        return "has no host name"
    if _WHITESPACE.search(source):
        return "contains spaces (write them as %20)"
    if len(source) > MAX_URL_CHARS:
        return _url_too_long()
    return None


def _url_too_long() -> str:
    return f"is longer than {MAX_URL_CHARS:,} characters"


# --- Messages ------------------------------------------------------------------------------------


def _label(column: str) -> str:
    return column.capitalize()


def _too_long(label: str, value: str, limit: int) -> str:
    return f"{label} is {len(value):,} characters; the most is {limit:,}."


def _shown(value: str) -> str:
    """A value as quoted in a message: shortened, as it may be megabytes long."""
    return value if len(value) <= _SHOWN_CHARS else f"{value[: _SHOWN_CHARS - 1]}…"


def _listed(items: list[str], *, separator: str = ", ") -> str:
    """The first few items, and how many more there are."""
    more = len(items) - _SHOWN_ITEMS
    return separator.join(items[:_SHOWN_ITEMS]) + (
        f"{separator}and {more} more" if more > 0 else ""
    )


def _quoted(names: list[str]) -> str:
    return _listed([f'"{_shown(name)}"' for name in names])


def _accepted_columns() -> str:
    return "Accepted: " + ", ".join(f'"{column}"' for column in COLUMNS) + "."


def _kind(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"
