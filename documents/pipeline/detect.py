"""Decide what a file is from its bytes.

Names and browser-sent content types lie (``report.pdf`` that is really HTML, a PDF saved as
``.txt``), so the kind comes from magic bytes and, for ZIP containers, from the member names.
The file name only breaks the tie between plain text and Markdown, which share their bytes.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from enum import StrEnum
from pathlib import Path

from documents.pipeline.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    UnsupportedTypeError,
)

SNIFF_BYTES = 64 * 1024
HTML_SNIFF_CHARS = 4096
MIN_PRINTABLE_RATIO = 0.95
SUPPORTED_FORMATS = "PDF, EPUB, XPS, Word (.docx), HTML, Markdown or plain text"
# DOCX, EPUB and XPS are ZIP files: a small upload may unpack to gigabytes (a "zip bomb").
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MARKDOWN_SUFFIXES = (".md", ".markdown")

_PDF_MAGIC = b"%PDF-"
_PDF_HEADER_WINDOW = 1024  # the PDF spec tolerates junk before the header
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_EPUB_MIMETYPE = b"application/epub+zip"
_XPS_SEQUENCE_NAMES = ("fixeddocumentsequence.fdseq", "fixeddocseq.fdseq")
_LEADING_COMMENTS = re.compile(r"^(?:\s*<!--.*?-->)*\s*", re.DOTALL)
_ATX_HEADING = re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE)


class DocumentKind(StrEnum):
    PDF = "pdf"
    EPUB = "epub"
    XPS = "xps"
    DOCX = "docx"
    HTML = "html"
    MARKDOWN = "markdown"
    TXT = "txt"


def detect_kind(path: Path, name: str = "") -> DocumentKind:
    """Return the document kind of ``path`` judged by content; ``name`` only picks Markdown."""
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
        is_whole_file = not handle.read(1)
    if not head:
        raise EmptyDocumentError()
    if _PDF_MAGIC in head[:_PDF_HEADER_WINDOW]:
        return DocumentKind.PDF
    if head.startswith(_ZIP_MAGIC):
        return _zip_kind(path)
    text = decode_text(head, is_whole_file=is_whole_file)
    if text is None:
        raise UnsupportedTypeError(
            f"This file type is not supported. Upload {SUPPORTED_FORMATS} files."
        )
    if not text.strip() and _rest_is_blank(path, len(head)):
        raise EmptyDocumentError("The file contains only blank space. Upload a file with text.")
    return _text_kind(text, name)


def decode_text(data: bytes, *, is_whole_file: bool = True) -> str | None:
    """Decode ``data`` as text, or return None when it looks like binary.

    UTF-8 (with or without BOM) first, then the Windows flavour of latin-1 (cp1252, whose
    0x80-0x9F range holds curly quotes rather than control codes), then latin-1. The 8-bit
    fallbacks decode any bytes, so they only count for NUL-free, mostly printable data.
    ``is_whole_file=False`` tolerates a multibyte character cut at the end of a sample.
    """
    if b"\x00" in data:
        return None
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(data, final=is_whole_file)
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text if _is_mostly_printable(text) else None


def _is_mostly_printable(text: str) -> bool:
    if not text:
        return True
    printable = sum(1 for char in text if char.isprintable() or char in "\t\n\r\f")
    return printable / len(text) >= MIN_PRINTABLE_RATIO


def _rest_is_blank(path: Path, offset: int) -> bool:
    """A whitespace-only sample may hide text further on: check the rest in blocks."""
    with path.open("rb") as handle:
        handle.seek(offset)
        while block := handle.read(SNIFF_BYTES):
            if block.strip():
                return False
    return True


def _text_kind(text: str, name: str) -> DocumentKind:
    if _looks_like_html(text):
        return DocumentKind.HTML
    if name.lower().endswith(MARKDOWN_SUFFIXES) or _has_markdown_structure(text):
        return DocumentKind.MARKDOWN
    return DocumentKind.TXT


def _looks_like_html(text: str) -> bool:
    start = _LEADING_COMMENTS.sub("", text.lstrip("\ufeff"), count=1)[:64].lower()
    if start.startswith(("<!doctype html", "<html")):
        return True
    window = text[:HTML_SNIFF_CHARS].lower()
    return "<html" in window or "<body" in window


def _has_markdown_structure(text: str) -> bool:
    """Two ATX headings, or one opening the text: a lone ``# x`` line may be a comment."""
    headings = _ATX_HEADING.findall(text, 0, SNIFF_BYTES)
    if len(headings) >= 2:
        return True
    return bool(headings) and _ATX_HEADING.match(text.lstrip()) is not None


def _zip_kind(path: Path) -> DocumentKind:
    try:
        with zipfile.ZipFile(path) as archive:
            _check_unpacked_size(archive)
            names = {info.filename for info in archive.infolist()}
            kind = _container_kind(archive, names)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise CorruptDocumentError(
            "The file is a damaged ZIP archive (DOCX, EPUB and XPS files are ZIP archives). "
            "Save or export it again and upload the new copy."
        ) from exc
    if kind is None:
        raise UnsupportedTypeError(
            f"This ZIP archive is not a DOCX, EPUB or XPS document. Upload {SUPPORTED_FORMATS} "
            "files, one document per upload."
        )
    return kind


def _check_unpacked_size(archive: zipfile.ZipFile) -> None:
    """Python's zipfile never unpacks more than a member's declared size, so the declared
    total bounds what reading the document can cost."""
    unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        raise DocumentTooLargeError(
            f"The document unpacks to {unpacked // (1024 * 1024)} MB, over the "
            f"{MAX_UNPACKED_BYTES // (1024 * 1024)} MB limit. Split it or remove large "
            "embedded media, then upload it again."
        )


def _container_kind(archive: zipfile.ZipFile, names: set[str]) -> DocumentKind | None:
    if "word/document.xml" in names:
        return DocumentKind.DOCX
    if _is_epub(archive, names):
        return DocumentKind.EPUB
    if _is_xps(archive, names):
        return DocumentKind.XPS
    return None


def _is_epub(archive: zipfile.ZipFile, names: set[str]) -> bool:
    if "mimetype" in names and _read_member(archive, "mimetype", 64).strip() == _EPUB_MIMETYPE:
        return True
    if "META-INF/container.xml" not in names:
        return False
    container = _read_member(archive, "META-INF/container.xml", 16 * 1024).lower()
    return b"application/oebps-package+xml" in container or b".opf" in container


def _is_xps(archive: zipfile.ZipFile, names: set[str]) -> bool:
    if any(name.lower().rsplit("/", 1)[-1] in _XPS_SEQUENCE_NAMES for name in names):
        return True
    if "_rels/.rels" not in names:
        return False
    rels = _read_member(archive, "_rels/.rels", 16 * 1024).lower()
    return b"fixedrepresentation" in rels or b".fdseq" in rels


def _read_member(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    """Read at most ``limit`` bytes so a zip bomb member cannot exhaust memory."""
    with archive.open(name) as member:
        return member.read(limit)
