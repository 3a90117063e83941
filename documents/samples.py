"""Realistic sample documents for tests, the demo and benchmarks (no Django, no network).

The text is generated from a small business vocabulary with a seeded random generator, so files
are reproducible, differ by seed, read like prose (headings, paragraphs, tables) and contain
recurring multi-word terms that keyword extraction can find. Each format is written the way
real producers write it, so the pipeline is exercised on genuine files, not mocks.
"""

from __future__ import annotations

import datetime as dt
import random
import zipfile
from dataclasses import dataclass
from html import escape
from pathlib import Path

import docx
import pymupdf

DEFAULT_TITLE = "Quarterly Operations Review"
DEFAULT_AUTHOR = "Dana Whitfield"
CREATED = dt.datetime(2024, 1, 15, 9, 30, tzinfo=dt.UTC)
MODIFIED = dt.datetime(2024, 2, 20, 12, 0, tzinfo=dt.UTC)
PDF_CREATED = "D:20240115103000+01'00'"  # = CREATED, written in local time with its offset
PDF_MODIFIED = "D:20240220120000Z"
ENCRYPTED_PDF_PASSWORD = "s3cret-user"  # noqa: S105 - sample file password, not a credential

TOPICS: dict[str, tuple[str, ...]] = {
    "Supply chain resilience": (
        "supply chain",
        "safety stock",
        "lead time",
        "demand forecast",
        "logistics partner",
        "inventory buffer",
    ),
    "Customer onboarding": (
        "onboarding checklist",
        "customer success team",
        "activation rate",
        "welcome call",
        "account setup",
        "support ticket",
    ),
    "Risk assessment": (
        "risk register",
        "compliance audit",
        "control owner",
        "incident response",
        "residual risk",
        "mitigation plan",
    ),
    "Energy efficiency": (
        "energy consumption",
        "heat pump",
        "building retrofit",
        "carbon footprint",
        "solar panel",
        "maintenance schedule",
    ),
    "Product roadmap": (
        "release plan",
        "feature request",
        "user research",
        "roadmap review",
        "beta programme",
        "pricing model",
    ),
}

TEMPLATES = (
    "The {a} depends on a reliable {b} in every region we serve.",
    "Teams that measure the {a} early can reduce the cost of the {b}.",
    "In practice, the {a} and the {b} are reviewed together each quarter.",
    "A clear {a} helps managers explain changes in the {b} to customers.",
    "Without an accurate {a}, the {b} becomes difficult to plan.",
    "Recent audits show that the {a} improved after the {b} was automated.",
    "We recommend linking the {a} to the {b} so that delays are visible sooner.",
    "Several sites reported that the {b} slowed down while the {a} was being updated.",
    "The board asked for a simpler {a} and a monthly summary of the {b}.",
    "Our analysis suggests the {a} explains most of the variation in the {b}.",
    "Next year the {a} will be owned by a single team, together with the {b}.",
    "Feedback from the field confirms that the {b} matters more than the {a}.",
)


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: list[str]


def sample_sections(count: int, *, paragraphs_per_section: int = 4, seed: int = 0) -> list[Section]:
    """``count`` sections of generated prose; the same seed gives the same text."""
    rng = random.Random(seed)  # noqa: S311 - reproducible sample text, not security
    topics = list(TOPICS)
    sections = []
    for index in range(count):
        topic = topics[(index + seed) % len(topics)]
        heading = f"{index + 1}. {topic}" if count > 1 else topic
        paragraphs = [_paragraph(rng, TOPICS[topic]) for _ in range(paragraphs_per_section)]
        sections.append(Section(heading, paragraphs))
    return sections


def _paragraph(rng: random.Random, terms: tuple[str, ...]) -> str:
    sentences = []
    for _ in range(rng.randint(4, 6)):
        first, second = rng.sample(terms, 2)
        sentences.append(rng.choice(TEMPLATES).format(a=first, b=second))
    return " ".join(sentences)


# PDF --------------------------------------------------------------------------------------


def make_pdf(
    path: Path,
    *,
    pages: int = 3,
    title: str = DEFAULT_TITLE,
    author: str = DEFAULT_AUTHOR,
    paragraphs_per_page: int = 4,
    seed: int = 0,
) -> Path:
    """A text PDF, one titled section per page, with title, author, dates and language.

    Up to 6 paragraphs fit on a page; more raise ValueError rather than silently overflow.
    """
    with _build_pdf(pages, title, author, paragraphs_per_page, seed) as doc:
        doc.save(path, garbage=3, deflate=True)
    return path


def make_encrypted_pdf(path: Path) -> Path:
    """A PDF that needs a user password to open (``ENCRYPTED_PDF_PASSWORD``)."""
    with _build_pdf(1, "Confidential salary review", DEFAULT_AUTHOR, 2, seed=7) as doc:
        doc.save(
            path,
            encryption=pymupdf.PDF_ENCRYPT_AES_256,
            user_pw=ENCRYPTED_PDF_PASSWORD,
            owner_pw=ENCRYPTED_PDF_PASSWORD + "-owner",
        )
    return path


def make_corrupt_pdf(path: Path) -> Path:
    """A PDF header followed by garbage, like a download overwritten with noise."""
    rng = random.Random(13)  # noqa: S311 - deterministic junk
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + rng.randbytes(4096))
    return path


def make_image_only_pdf(path: Path) -> Path:
    """A page with drawn shapes and no text layer, as a scan without OCR would be."""
    with pymupdf.open() as doc:
        page = doc.new_page()
        page.draw_rect(pymupdf.Rect(72, 72, 523, 300), color=(0, 0, 0), fill=(0.8, 0.8, 0.8))
        page.draw_circle(pymupdf.Point(297, 500), 120, color=(0.2, 0.2, 0.6), fill=(0.6, 0.7, 1))
        doc.set_metadata({"title": "Scanned contract"})
        doc.save(path)
    return path


def _build_pdf(
    pages: int, title: str, author: str, paragraphs_per_page: int, seed: int
) -> pymupdf.Document:
    doc = pymupdf.open()
    for section in sample_sections(pages, paragraphs_per_section=paragraphs_per_page, seed=seed):
        page = doc.new_page()
        top = _PDF_MARGIN
        top = _pdf_text_block(page, top, section.heading, fontname="hebo", fontsize=14)
        for paragraph in section.paragraphs:
            top = _pdf_text_block(page, top, paragraph, fontname="helv", fontsize=10)
    doc.set_metadata(
        {
            "title": title,
            "author": author,
            "subject": "Sample document",
            "creationDate": PDF_CREATED,
            "modDate": PDF_MODIFIED,
        }
    )
    doc.set_language("en-GB")
    return doc


_PDF_MARGIN = 72
_PDF_PARAGRAPH_GAP = 10


def _pdf_text_block(
    page: pymupdf.Page, top: float, text: str, *, fontname: str, fontsize: float
) -> float:
    """Write ``text`` wrapped below ``top`` in a base-14 font (nothing embedded, so files stay
    small); return where the next block starts."""
    box = pymupdf.Rect(_PDF_MARGIN, top, page.rect.width - _PDF_MARGIN, page.rect.height - 36)
    unused_height = page.insert_textbox(box, text, fontname=fontname, fontsize=fontsize)
    if unused_height < 0:
        raise ValueError("Sample text does not fit on the page; use fewer paragraphs per page.")
    return box.y1 - unused_height + _PDF_PARAGRAPH_GAP


# DOCX -------------------------------------------------------------------------------------


def make_docx(
    path: Path,
    *,
    title: str = DEFAULT_TITLE,
    author: str = DEFAULT_AUTHOR,
    sections: int = 3,
    seed: int = 0,
) -> Path:
    """A Word document: title, numbered headings, paragraphs, a subheading, a table."""
    document = docx.Document()
    document.add_heading(title, level=0)
    for index, section in enumerate(sample_sections(sections, seed=seed)):
        document.add_heading(section.heading, level=1)
        for paragraph in section.paragraphs[:2]:
            document.add_paragraph(paragraph)
        document.add_heading("Key figures" if index == 0 else "Details", level=2)
        for paragraph in section.paragraphs[2:]:
            document.add_paragraph(paragraph)
    table = document.add_table(rows=3, cols=3)
    for row, values in zip(table.rows, _TABLE_ROWS, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    properties = document.core_properties
    properties.title = title
    properties.author = author
    properties.language = "en-US"
    properties.created = CREATED
    properties.modified = MODIFIED
    document.save(str(path))
    return path


_TABLE_ROWS = (
    ("Region", "Lead time (days)", "Safety stock"),
    ("North", "12", "340"),
    ("South", "9", "275"),
)


# HTML, Markdown, plain text ---------------------------------------------------------------


def make_html(
    path: Path, *, title: str = DEFAULT_TITLE, author: str = DEFAULT_AUTHOR, seed: int = 0
) -> Path:
    """A web page: site navigation, scripts, a cookie banner and an aside around an article."""
    sections = sample_sections(2, seed=seed)
    article = "".join(
        f"<h2>{escape(section.heading)}</h2>"
        + "".join(f"<p>{escape(paragraph)}</p>" for paragraph in section.paragraphs)
        for section in sections
    )
    page = f"""<!DOCTYPE html>
<html lang="en-GB">
<head>
  <meta charset="utf-8">
  <title>{escape(title)} | Example Corp</title>
  <meta name="author" content="{escape(author)}">
  <script>window.analytics = {{ track: function () {{ return "tracking pixel"; }} }};</script>
  <style>body {{ font-family: sans-serif; }}</style>
</head>
<body>
  <header><a href="/">Example Corp</a>
    <nav><ul><li><a href="/products">Products</a></li><li><a href="/careers">Careers</a></li>
    </ul></nav>
  </header>
  <div class="cookie-banner" aria-hidden="true">We use cookies to improve your experience.</div>
  <main>
    <article>
      <h1>{escape(title)}</h1>
      {article}
      <ul><li>Review the safety stock monthly.</li><li>Share the demand forecast.</li></ul>
      <table><tr><th>Region</th><th>Lead time</th></tr><tr><td>North</td><td>12</td></tr>
      </table>
    </article>
    <aside><h3>Related posts</h3><p>Ten tips for better newsletters.</p></aside>
  </main>
  <footer><p>Copyright 2024 Example Corp. All rights reserved.</p></footer>
  <script src="/static/app.js"></script>
</body>
</html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def make_markdown(path: Path, *, title: str = DEFAULT_TITLE, seed: int = 0) -> Path:
    """Markdown with ATX headings, paragraphs, a list and emphasis."""
    lines = [f"# {title}", "", f"*Prepared by {DEFAULT_AUTHOR}*", ""]
    for section in sample_sections(3, seed=seed):
        lines += [f"## {section.heading}", ""]
        for paragraph in section.paragraphs:
            lines += [paragraph, ""]
    lines += ["- Review the safety stock monthly", "- Share the demand forecast", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def make_text(path: Path, *, paragraphs: int = 8, seed: int = 0) -> Path:
    """Plain prose paragraphs separated by blank lines, hard-wrapped like an e-mail."""
    section_count = max(1, (paragraphs + 3) // 4)
    chosen = [
        p for section in sample_sections(section_count, seed=seed) for p in section.paragraphs
    ]
    wrapped = ["\n".join(_wrap(paragraph, 72)) for paragraph in chosen[:paragraphs]]
    path.write_text("\n\n".join(wrapped) + "\n", encoding="utf-8")
    return path


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    current: list[str] = []
    for word in text.split():
        if current and len(" ".join([*current, word])) > width:
            lines.append(" ".join(current))
            current = []
        current.append(word)
    if current:
        lines.append(" ".join(current))
    return lines


# EPUB -------------------------------------------------------------------------------------

_CONTAINER_XML = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""


def make_epub(
    path: Path,
    *,
    title: str = "The Resilient Warehouse",
    author: str = DEFAULT_AUTHOR,
    chapters: int = 3,
    language: str = "en",
    seed: int = 0,
) -> Path:
    """A minimal valid EPUB 3: stored ``mimetype`` first, container, OPF, nav, chapters."""
    sections = sample_sections(chapters, seed=seed)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "application/epub+zip", compress_type=zipfile.ZIP_STORED
        )
        archive.writestr("META-INF/container.xml", _CONTAINER_XML)
        archive.writestr("OEBPS/content.opf", _epub_opf(title, author, language, len(sections)))
        archive.writestr("OEBPS/nav.xhtml", _epub_nav(sections))
        for number, section in enumerate(sections, start=1):
            archive.writestr(f"OEBPS/chapter{number}.xhtml", _epub_chapter(section, language))
    return path


def _epub_opf(title: str, author: str, language: str, chapters: int) -> str:
    items = "".join(
        f'<item id="c{n}" href="chapter{n}.xhtml" media-type="application/xhtml+xml"/>'
        for n in range(1, chapters + 1)
    )
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(1, chapters + 1))
    modified = MODIFIED.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="uid">urn:uuid:0b6f3c52-6d0e-4d4e-9a57-7f2f0c1d2e3a</dc:identifier>
    <dc:title>{escape(title)}</dc:title>
    <dc:creator>{escape(author)}</dc:creator>
    <dc:language>{escape(language)}</dc:language>
    <dc:date>{CREATED.date().isoformat()}</dc:date>
    <meta property="dcterms:modified">{modified}</meta>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    {items}
  </manifest>
  <spine>{spine}</spine>
</package>
"""


def _epub_nav(sections: list[Section]) -> str:
    links = "".join(
        f'<li><a href="chapter{n}.xhtml">{escape(section.heading)}</a></li>'
        for n, section in enumerate(sections, start=1)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>Contents</title></head>
<body><nav epub:type="toc"><h1>Contents</h1><ol>{links}</ol></nav></body>
</html>
"""


def _epub_chapter(section: Section, language: str) -> str:
    body = "".join(f"<p>{escape(paragraph)}</p>" for paragraph in section.paragraphs)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="{escape(language)}">
<head><title>{escape(section.heading)}</title></head>
<body><h1>{escape(section.heading)}</h1>{body}</body>
</html>
"""


# XPS --------------------------------------------------------------------------------------
# MuPDF reads XPS but cannot write it, so the package is assembled by hand: the OPC parts,
# one FixedPage per page with a Glyphs element per line, and MuPDF's built-in Helvetica
# (Nimbus Sans) embedded as the font resource.

_XPS_NS = "http://schemas.microsoft.com/xps/2005/06"
_XPS_PAGE_WIDTH, _XPS_PAGE_HEIGHT = 816, 1056  # 8.5 x 11 in at 96 units per inch
_XPS_MARGIN = 96
_XPS_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
  <Default Extension="rels"
    ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
  <Default Extension="fdseq"
    ContentType="application/vnd.ms-package.xps-fixeddocumentsequence+xml"/>
  <Default Extension="fdoc" ContentType="application/vnd.ms-package.xps-fixeddocument+xml"/>
  <Default Extension="fpage" ContentType="application/vnd.ms-package.xps-fixedpage+xml"/>
  <Default Extension="ttf" ContentType="application/vnd.ms-opentype"/>
  <Default Extension="xml"
    ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>
</Types>
"""
_XPS_ROOT_RELS = """<?xml version="1.0" encoding="UTF-8"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
  <Relationship Id="R0" Target="/FixedDocSeq.fdseq"
    Type="http://schemas.microsoft.com/xps/2005/06/fixedrepresentation"/>
  <Relationship Id="R1" Target="/docProps/core.xml"
    Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"/>
</Relationships>
"""


def make_xps(
    path: Path,
    *,
    pages: int = 2,
    title: str = "Warehouse Safety Handbook",
    author: str = DEFAULT_AUTHOR,
    seed: int = 0,
) -> Path:
    """An XPS document with a heading and wrapped paragraphs per page and core properties."""
    sections = sample_sections(pages, paragraphs_per_section=3, seed=seed)
    page_refs = "".join(f'<PageContent Source="Pages/{n}.fpage"/>' for n in range(1, pages + 1))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _XPS_CONTENT_TYPES)
        archive.writestr("_rels/.rels", _XPS_ROOT_RELS)
        archive.writestr(
            "FixedDocSeq.fdseq",
            f'<FixedDocumentSequence xmlns="{_XPS_NS}">'
            '<DocumentReference Source="/Documents/1/FixedDoc.fdoc"/></FixedDocumentSequence>',
        )
        archive.writestr(
            "Documents/1/FixedDoc.fdoc",
            f'<FixedDocument xmlns="{_XPS_NS}">{page_refs}</FixedDocument>',
        )
        for number, section in enumerate(sections, start=1):
            archive.writestr(f"Documents/1/Pages/{number}.fpage", _xps_page(section))
        archive.writestr("Resources/Helvetica.ttf", pymupdf.Font("helv").buffer)
        archive.writestr("docProps/core.xml", _opc_core_properties(title, author))
    return path


def _xps_page(section: Section) -> str:
    glyphs = [_xps_glyphs(section.heading, _XPS_MARGIN + 24, size=20)]
    y = _XPS_MARGIN + 72
    for paragraph in section.paragraphs:
        for line in _wrap(paragraph, 85):
            glyphs.append(_xps_glyphs(line, y, size=13))
            y += 18
        y += 18  # blank line between paragraphs
    return (
        f'<FixedPage Width="{_XPS_PAGE_WIDTH}" Height="{_XPS_PAGE_HEIGHT}" xmlns="{_XPS_NS}" '
        f'xml:lang="en-US">{"".join(glyphs)}</FixedPage>'
    )


def _xps_glyphs(text: str, y: int, *, size: int) -> str:
    return (
        f'<Glyphs Fill="#FF000000" FontUri="/Resources/Helvetica.ttf" '
        f'FontRenderingEmSize="{size}" OriginX="{_XPS_MARGIN}" OriginY="{y}" '
        f'UnicodeString="{escape(text, quote=True)}"/>'
    )


def _opc_core_properties(title: str, author: str) -> str:
    created = CREATED.strftime("%Y-%m-%dT%H:%M:%SZ")
    modified = MODIFIED.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<cp:coreProperties
  xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
  xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <dc:title>{escape(title)}</dc:title>
  <dc:creator>{escape(author)}</dc:creator>
  <dc:language>en-US</dc:language>
  <dcterms:created xsi:type="dcterms:W3CDTF">{created}</dcterms:created>
  <dcterms:modified xsi:type="dcterms:W3CDTF">{modified}</dcterms:modified>
</cp:coreProperties>
"""


# Corpus -----------------------------------------------------------------------------------


def write_sample_corpus(folder: Path) -> list[Path]:
    """One file of every supported kind plus the failure cases, for demos and smoke tests."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        make_pdf(folder / "operations-review.pdf"),
        make_docx(folder / "supplier-report.docx", seed=1),
        make_html(folder / "blog-post.html", seed=2),
        make_markdown(folder / "runbook.md", seed=3),
        make_text(folder / "meeting-notes.txt", seed=4),
        make_epub(folder / "resilient-warehouse.epub", seed=5),
        make_xps(folder / "safety-handbook.xps", seed=6),
        make_encrypted_pdf(folder / "encrypted.pdf"),
        make_corrupt_pdf(folder / "corrupt.pdf"),
        make_image_only_pdf(folder / "scanned.pdf"),
    ]
