"""Detection decides by content: names lie, bytes do not."""

from __future__ import annotations

import random
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from documents import samples
from documents.pipeline import detect
from documents.pipeline.detect import SNIFF_BYTES, DocumentKind, decode_text, detect_kind
from documents.pipeline.errors import (
    CorruptDocumentError,
    DocumentTooLargeError,
    EmptyDocumentError,
    UnsupportedTypeError,
)


@pytest.mark.parametrize(
    ("make", "file_name", "expected"),
    [
        (samples.make_pdf, "notes.txt", DocumentKind.PDF),
        (samples.make_docx, "report.pdf", DocumentKind.DOCX),
        (samples.make_epub, "book.zip", DocumentKind.EPUB),
        (samples.make_xps, "print.bin", DocumentKind.XPS),
        (samples.make_html, "page.txt", DocumentKind.HTML),
        (samples.make_markdown, "readme.txt", DocumentKind.MARKDOWN),
        (samples.make_text, "report.pdf", DocumentKind.TXT),
    ],
)
def test_detects_kind_from_content_whatever_the_name(
    tmp_path: Path, make: Callable[[Path], Path], file_name: str, expected: DocumentKind
) -> None:
    path = make(tmp_path / file_name)

    assert detect_kind(path, file_name) is expected


@pytest.mark.parametrize(
    ("file_name", "expected"),
    [
        ("notes.md", DocumentKind.MARKDOWN),
        ("notes.MARKDOWN", DocumentKind.MARKDOWN),
        ("notes.txt", DocumentKind.TXT),
        ("", DocumentKind.TXT),
    ],
)
def test_name_breaks_the_tie_between_text_and_markdown(
    tmp_path: Path, file_name: str, expected: DocumentKind
) -> None:
    path = tmp_path / "upload"
    path.write_text("Plain words in a plain file.\n\nNo headings at all.\n", encoding="utf-8")

    assert detect_kind(path, file_name) is expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("# Title\n\nSome text.\n", DocumentKind.MARKDOWN),
        ("Intro line.\n\n## First\n\ntext\n\n## Second\n\ntext\n", DocumentKind.MARKDOWN),
        ("Intro line.\n# a lone comment-like line\nmore text\n", DocumentKind.TXT),
        ("Use C# for this.\n#hashtag is not a heading\n", DocumentKind.TXT),
    ],
)
def test_markdown_structure_needs_clear_atx_headings(
    tmp_path: Path, content: str, expected: DocumentKind
) -> None:
    path = tmp_path / "upload.txt"
    path.write_text(content, encoding="utf-8")

    assert detect_kind(path, "upload.txt") is expected


@pytest.mark.parametrize(
    "content",
    [
        "\ufeff<!-- saved by a browser -->\n  <!DOCTYPE html><html><body>x</body></html>",
        "<HTML><p>upper case</p></HTML>",
        "<div>fragment</div>\n<body><p>text</p></body>",
    ],
)
def test_html_after_bom_comments_or_within_first_4kb(tmp_path: Path, content: str) -> None:
    path = tmp_path / "page.txt"
    path.write_text(content, encoding="utf-8")

    assert detect_kind(path) is DocumentKind.HTML


def test_html_tag_beyond_first_4kb_is_just_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("word " * 1000 + "<html>", encoding="utf-8")

    assert detect_kind(path) is DocumentKind.TXT


@pytest.mark.parametrize(
    "data",
    [
        "Größe und Maß\n".encode(),
        b"\xef\xbb\xbfUTF-8 with a byte order mark\n",
        "Caf\u00e9 \u201cquoted\u201d in Windows-1252\n".encode("cp1252"),
        "Ol\u00e1, na\u00e7\u00e3o em latin-1\n".encode("latin-1"),
    ],
)
def test_text_encodings_are_text(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "notes"
    path.write_bytes(data)

    assert detect_kind(path) is DocumentKind.TXT


def test_multibyte_character_cut_at_the_sample_edge_is_still_utf8() -> None:
    data = ("a" * (SNIFF_BYTES - 1) + "é").encode()[:SNIFF_BYTES]

    assert decode_text(data, is_whole_file=False) == "a" * (SNIFF_BYTES - 1)


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  "])
def test_empty_or_blank_file_is_empty(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(data)

    with pytest.raises(EmptyDocumentError) as error:
        detect_kind(path)

    assert error.value.code == "empty"


def test_text_after_a_long_blank_start_is_not_empty(tmp_path: Path) -> None:
    path = tmp_path / "late.txt"
    path.write_bytes(b" " * (SNIFF_BYTES * 2) + b"finally some words")

    assert detect_kind(path) is DocumentKind.TXT


@pytest.mark.parametrize(
    "data",
    [
        random.Random(1).randbytes(5000),  # noqa: S311 - reproducible junk
        b"\x89PNG\r\n\x1a\n" + bytes(200),
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(500),  # legacy .doc (OLE2)
        bytes(range(1, 32)) * 20,  # valid ASCII, but control codes only
    ],
)
def test_binary_junk_is_unsupported_and_names_the_supported_formats(
    tmp_path: Path, data: bytes
) -> None:
    path = tmp_path / "mystery.pdf"
    path.write_bytes(data)

    with pytest.raises(UnsupportedTypeError) as error:
        detect_kind(path, "mystery.pdf")

    assert error.value.code == "unsupported"
    assert "PDF, EPUB, XPS, Word (.docx), HTML, Markdown or plain text" in str(error.value)


def test_zip_that_is_no_document_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "export.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
        archive.writestr("word/styles.xml", "<styles/>")

    with pytest.raises(UnsupportedTypeError, match="not a DOCX, EPUB or XPS document"):
        detect_kind(path, "export.docx")


def test_damaged_zip_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "broken.docx"
    path.write_bytes(b"PK\x03\x04" + random.Random(2).randbytes(300))  # noqa: S311 - reproducible junk

    with pytest.raises(CorruptDocumentError) as error:
        detect_kind(path)

    assert error.value.code == "corrupt"
    assert error.value.__cause__ is not None


def test_epub_recognised_by_container_without_mimetype(tmp_path: Path) -> None:
    path = tmp_path / "book"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "META-INF/container.xml",
            '<container><rootfiles><rootfile full-path="book.opf" '
            'media-type="application/oebps-package+xml"/></rootfiles></container>',
        )

    assert detect_kind(path) is DocumentKind.EPUB


def test_xps_recognised_by_package_relationship(tmp_path: Path) -> None:
    path = tmp_path / "print"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "_rels/.rels",
            '<Relationships><Relationship Target="/Seq.fdseq" Type="http://schemas.microsoft.'
            'com/xps/2005/06/fixedrepresentation" Id="R0"/></Relationships>',
        )

    assert detect_kind(path) is DocumentKind.XPS


def test_container_that_unpacks_beyond_the_limit_is_too_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = samples.make_docx(tmp_path / "report.docx")
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    monkeypatch.setattr(detect, "MAX_UNPACKED_BYTES", unpacked - 1)

    with pytest.raises(DocumentTooLargeError, match="unpacks to"):
        detect_kind(path)

    monkeypatch.setattr(detect, "MAX_UNPACKED_BYTES", unpacked)
    assert detect_kind(path) is DocumentKind.DOCX
