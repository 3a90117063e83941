"""Text and metadata out of a file whose kind is already known.

Every failure caused by the file becomes a ``PipelineError`` with a message naming the fix, so
the task can fail the document at once instead of retrying. Library exceptions are caught per
call site, not around our own code, so a bug of ours is never reported as a corrupt file.

Paragraph breaks matter downstream (the chunker splits on blank lines), so every format yields
blocks separated by blank lines: PDF/EPUB/XPS text comes from PyMuPDF's text blocks, and plain
text and Markdown are read directly because PyMuPDF's text reader drops blank lines, decodes
HTML entities and renders Markdown (losing the ``#`` headings).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

import docx
import pymupdf
from docx.opc.exceptions import OpcError
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree

from documents.pipeline.detect import SUPPORTED_FORMATS, DocumentKind, decode_text
from documents.pipeline.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    EncryptedDocumentError,
    NoExtractableTextError,
    UnsupportedTypeError,
)
from documents.pipeline.html import readable_text
from documents.pipeline.language import detect_language, normalise_language_code

# MuPDF reports recoverable problems on stderr; they are noise in worker logs.
pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)

LANGUAGE_SAMPLE_CHARS = 5000
PAGE_BREAK = "\f"
# Ligatures ("ﬁ") expanded to plain letters, so "file" matches "file" in search and keywords.
_TEXT_FLAGS = pymupdf.TEXTFLAGS_BLOCKS & ~pymupdf.TEXT_PRESERVE_LIGATURES
_TEXT_BLOCK = 0
# FileDataError and EmptyFileError are RuntimeErrors; MuPDF's own errors derive FzErrorBase.
_MUPDF_ERRORS = (RuntimeError, ValueError, pymupdf.mupdf.FzErrorBase)
_DOCX_ERRORS = (zipfile.BadZipFile, KeyError, ValueError, OpcError, etree.XMLSyntaxError)
_PACKAGE_ERRORS = (zipfile.BadZipFile, KeyError, ValueError, OSError, etree.XMLSyntaxError)
_PDF_DATE = re.compile(
    r"(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?"
    r"(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<tzh>\d{2})'?(?P<tzm>\d{2})?'?)?"
)
_ATX_TITLE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_DOCX_HEADING = re.compile(r"^Heading (\d)$")
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
_MAX_XML_BYTES = 1_000_000
_NS = {
    "dc": "http://purl.org/dc/elements/1.1/",
    "dcterms": "http://purl.org/dc/terms/",
    "opf": "http://www.idpf.org/2007/opf",
    "container": "urn:oasis:names:tc:opendocument:xmlns:container",
    "rels": "http://schemas.openxmlformats.org/package/2006/relationships",
}


@dataclass
class ExtractedDocument:
    kind: DocumentKind
    pages: list[str]
    page_count: int | None  # None for formats without real pages (DOCX, HTML, text)
    title: str
    author: str
    language: str  # two-letter code, "" when unknown
    created_at: datetime | None  # aware, UTC
    modified_at: datetime | None  # aware, UTC

    @property
    def text(self) -> str:
        return "\n\n".join(self.pages)


def extract(path: Path, kind: DocumentKind, *, max_pages: int = 2000) -> ExtractedDocument:
    """Extract ``path`` as ``kind``; raise a ``PipelineError`` when the file cannot yield text."""
    document = _EXTRACTORS[kind](path, kind, max_pages)
    document.language = normalise_language_code(document.language) or detect_language(
        _text_sample(document.pages)
    )
    return document


def _text_sample(pages: list[str]) -> str:
    sample: list[str] = []
    size = 0
    for page in pages:
        sample.append(page)
        size += len(page)
        if size >= LANGUAGE_SAMPLE_CHARS:
            break
    return "\n".join(sample)[:LANGUAGE_SAMPLE_CHARS]


# PDF, EPUB, XPS ---------------------------------------------------------------------------


def _extract_with_pymupdf(path: Path, kind: DocumentKind, max_pages: int) -> ExtractedDocument:
    with _open_pymupdf(path, kind) as doc:
        _check_openable(doc, kind, max_pages)
        pages = _read_pages(doc, kind)
        if not any(page.strip() for page in pages):
            if doc.is_repaired:
                raise CorruptDocumentError(_corrupt_message(kind))
            raise NoExtractableTextError()
        info = _pymupdf_metadata(doc, path, kind)
        return ExtractedDocument(
            kind=kind,
            pages=pages,
            page_count=doc.page_count,
            title=info["title"],
            author=info["author"],
            language=info["language"],
            created_at=parse_date(info["created"]),
            modified_at=parse_date(info["modified"]),
        )


def _check_openable(doc: pymupdf.Document, kind: DocumentKind, max_pages: int) -> None:
    if doc.needs_pass and not doc.authenticate(""):
        raise EncryptedDocumentError(
            "This document is password-protected. Remove the password and upload it again."
        )
    if doc.page_count == 0:
        # MuPDF "repairs" garbage into an empty document: that is damage, not emptiness.
        if doc.is_repaired:
            raise CorruptDocumentError(_corrupt_message(kind))
        raise EmptyDocumentError("The document has no pages.")
    if doc.page_count > max_pages:
        raise DocumentTooLargeError(
            f"The document has {doc.page_count} pages; the limit is {max_pages}. "
            "Split it into smaller files and upload them separately."
        )


def _pymupdf_metadata(doc: pymupdf.Document, path: Path, kind: DocumentKind) -> dict[str, str]:
    """MuPDF's metadata, completed from the EPUB/XPS package where MuPDF has no field."""
    metadata = doc.metadata or {}
    package = _package_metadata(path, kind)
    return {
        "title": (metadata.get("title") or package.get("title", "")).strip(),
        "author": (metadata.get("author") or package.get("author", "")).strip(),
        "language": _pdf_language(doc) if kind is DocumentKind.PDF else package.get("language", ""),
        "created": metadata.get("creationDate") or package.get("created", ""),
        "modified": metadata.get("modDate") or package.get("modified", ""),
    }


def _open_pymupdf(path: Path, kind: DocumentKind) -> pymupdf.Document:
    try:
        return pymupdf.open(path, filetype=kind.value)
    except _MUPDF_ERRORS as exc:
        raise CorruptDocumentError(_corrupt_message(kind)) from exc


def _read_pages(doc: pymupdf.Document, kind: DocumentKind) -> list[str]:
    try:
        return [_page_text(page) for page in doc]
    except _MUPDF_ERRORS as exc:
        raise CorruptDocumentError(_corrupt_message(kind)) from exc


def _page_text(page: pymupdf.Page) -> str:
    """Text blocks (paragraphs, headings) joined by blank lines; image blocks skipped.

    Built from "dict", not "blocks": PyMuPDF's extractBLOCKS leaks every block it returns
    (pymupdf/PyMuPDF#5067, still in 1.28.2 and 2.0), about 3 KB per page in a long-lived
    worker. The text is the same; it costs about 0.7 ms more per page.
    """
    blocks = page.get_text("dict", flags=_TEXT_FLAGS)["blocks"]
    texts = (
        "\n".join("".join(span["text"] for span in line["spans"]) for line in block["lines"])
        for block in blocks
        if block["type"] == _TEXT_BLOCK
    )
    return "\n\n".join(stripped for text in texts if (stripped := text.strip()))


def _pdf_language(doc: pymupdf.Document) -> str:
    try:
        return doc.language or ""
    except _MUPDF_ERRORS:
        return ""


def _corrupt_message(kind: DocumentKind) -> str:
    return (
        f"The {kind.value.upper()} file is damaged and cannot be read. "
        "Open it in its original application, save or export it again, and upload the new copy."
    )


def parse_date(value: str) -> datetime | None:
    """Parse PDF (``D:20230102030405+01'00'``) or ISO 8601 dates into aware UTC datetimes.

    Producers write these fields carelessly (missing parts, bad offsets, free text), so
    anything that does not parse is None rather than an error.
    """
    value = (value or "").strip()
    if not value:
        return None
    parsed = _parse_pdf_date(value) or _parse_iso_date(value)
    return parsed.astimezone(UTC) if parsed else None


def _parse_pdf_date(value: str) -> datetime | None:
    if not (value.startswith("D:") or value[:8].isdigit()):
        return None
    match = _PDF_DATE.match(value)
    if match is None:
        return None
    defaults = (1, 1, 1, 0, 0, 0)  # a PDF date may stop after any part, even the year
    parts = [
        int(part) if part else default
        for part, default in zip(match.groups()[:6], defaults, strict=True)
    ]
    offset = timedelta(hours=int(match["tzh"] or 0), minutes=int(match["tzm"] or 0))
    if match["sign"] == "-":
        offset = -offset
    try:
        return datetime(*parts, tzinfo=timezone(offset))
    except ValueError:
        return None


def _parse_iso_date(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return None
        parsed = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# EPUB and XPS package metadata (MuPDF exposes only title and author) ------------------------


def _package_metadata(path: Path, kind: DocumentKind) -> dict[str, str]:
    """Language and dates from the EPUB OPF or the XPS core properties; {} when unreadable."""
    if kind not in (DocumentKind.EPUB, DocumentKind.XPS):
        return {}
    try:
        with zipfile.ZipFile(path) as archive:
            if kind is DocumentKind.EPUB:
                return _epub_metadata(archive)
            return _xps_metadata(archive)
    except _PACKAGE_ERRORS:
        return {}


def _epub_metadata(archive: zipfile.ZipFile) -> dict[str, str]:
    container = _parse_member(archive, "META-INF/container.xml")
    opf_path = container.xpath("string(//container:rootfile/@full-path)", namespaces=_NS)
    opf = _parse_member(archive, str(opf_path))
    modified = opf.xpath(
        "string(//opf:metadata/opf:meta[@property='dcterms:modified'])", namespaces=_NS
    )
    return {
        "title": _xpath_text(opf, "//dc:title"),
        "author": _xpath_text(opf, "//dc:creator"),
        "language": _xpath_text(opf, "//dc:language"),
        "created": _xpath_text(opf, "//dc:date"),
        "modified": str(modified).strip(),
    }


def _xps_metadata(archive: zipfile.ZipFile) -> dict[str, str]:
    rels = _parse_member(archive, "_rels/.rels")
    target = rels.xpath(
        "string(//rels:Relationship[contains(@Type, 'core-properties')]/@Target)", namespaces=_NS
    )
    if not target:
        return {}
    core = _parse_member(archive, str(PurePosixPath(str(target))).lstrip("/"))
    return {
        "title": _xpath_text(core, "//dc:title"),
        "author": _xpath_text(core, "//dc:creator"),
        "language": _xpath_text(core, "//dc:language"),
        "created": _xpath_text(core, "//dcterms:created"),
        "modified": _xpath_text(core, "//dcterms:modified"),
    }


def _parse_member(archive: zipfile.ZipFile, name: str) -> etree._Element:
    """Parse a small XML member without entity expansion or network access."""
    with archive.open(name) as member:
        data = member.read(_MAX_XML_BYTES)
    return etree.fromstring(data, _XML_PARSER)  # entities and network disabled


def _xpath_text(root: etree._Element, path: str) -> str:
    return str(root.xpath(f"string({path})", namespaces=_NS)).strip()


# DOCX -------------------------------------------------------------------------------------


def _extract_docx(path: Path, kind: DocumentKind, max_pages: int) -> ExtractedDocument:
    try:
        document = docx.Document(str(path))
        blocks = [_docx_block(item) for item in document.iter_inner_content()]
        properties = document.core_properties
        title, author, language = properties.title, properties.author, properties.language
        created, modified = properties.created, properties.modified
    except _DOCX_ERRORS as exc:
        raise CorruptDocumentError(_corrupt_message(kind)) from exc
    text = "\n\n".join(block for block in blocks if block)
    if not text.strip():
        raise EmptyDocumentError("The Word document contains no text.")
    return ExtractedDocument(
        kind=kind,
        pages=[text],
        page_count=None,
        title=(title or "").strip(),
        author=(author or "").strip(),
        language=language or "",
        created_at=_as_utc(created),
        modified_at=_as_utc(modified),
    )


def _docx_block(item: Paragraph | Table) -> str:
    if isinstance(item, Table):
        return _docx_table(item)
    text = item.text.strip()
    level = _docx_heading_level(item)
    return f"{'#' * level} {text}" if text and level else text


def _docx_heading_level(paragraph: Paragraph) -> int:
    name = paragraph.style.name if paragraph.style is not None else ""
    if name == "Title":
        return 1
    match = _DOCX_HEADING.match(name or "")
    return int(match.group(1)) if match else 0


def _docx_table(table: Table) -> str:
    """One tab-separated line per row; a merged cell repeats in ``row.cells``, so skip repeats."""
    lines = []
    for row in table.rows:
        seen: set[int] = set()
        cells = []
        for cell in row.cells:
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells.append(" ".join(cell.text.split()))
        if any(cells):
            lines.append("\t".join(cells))
    return "\n".join(lines)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# HTML, Markdown, plain text ---------------------------------------------------------------


def _extract_html(path: Path, kind: DocumentKind, max_pages: int) -> ExtractedDocument:
    page = readable_text(path.read_bytes())
    if not page.text.strip():
        raise NoExtractableTextError(
            "The page has no readable text. If its content is built by JavaScript, which is not "
            "run here, save the page as PDF and upload that instead."
        )
    return ExtractedDocument(
        kind=kind,
        pages=[page.text],
        page_count=None,
        title=page.title,
        author=page.author,
        language=page.language,
        created_at=None,
        modified_at=None,
    )


def _extract_plain_text(path: Path, kind: DocumentKind, max_pages: int) -> ExtractedDocument:
    """Plain text and Markdown; form feeds, the plain-text page break, separate pages."""
    text = decode_text(path.read_bytes())
    if text is None:
        raise UnsupportedTypeError(
            f"The file is not readable text. Upload {SUPPORTED_FORMATS} files."
        )
    if not text.strip():
        raise EmptyDocumentError("The file contains only blank space. Upload a file with text.")
    pages = text.replace("\r\n", "\n").replace("\r", "\n").split(PAGE_BREAK)
    if len(pages) > max_pages:
        raise DocumentTooLargeError(
            f"The document has {len(pages)} pages; the limit is {max_pages}. "
            "Split it into smaller files and upload them separately."
        )
    title_match = _ATX_TITLE.search(text) if kind is DocumentKind.MARKDOWN else None
    return ExtractedDocument(
        kind=kind,
        pages=pages,
        page_count=None,
        title=title_match.group(1).strip() if title_match else "",
        author="",
        language="",
        created_at=None,
        modified_at=None,
    )


_EXTRACTORS: dict[DocumentKind, Callable[[Path, DocumentKind, int], ExtractedDocument]] = {
    DocumentKind.PDF: _extract_with_pymupdf,
    DocumentKind.EPUB: _extract_with_pymupdf,
    DocumentKind.XPS: _extract_with_pymupdf,
    DocumentKind.DOCX: _extract_docx,
    DocumentKind.HTML: _extract_html,
    DocumentKind.MARKDOWN: _extract_plain_text,
    DocumentKind.TXT: _extract_plain_text,
}
