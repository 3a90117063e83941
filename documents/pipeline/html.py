"""Readable text from an HTML page: the article, not the chrome around it.

Navigation, scripts and footers repeat on every page of a site; indexed, they drown the content
in boilerplate keywords and make unrelated pages look alike to the embedder. The output keeps
structure the chunker understands: ``#`` headings and blank lines between blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bs4 import BeautifulSoup, CData, NavigableString, Tag
from bs4.element import PageElement

NOISE_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "object",
    "embed",
    "button",
    "dialog",
)
# A page-level header or footer is chrome; inside an article it holds its title or byline.
CONTENT_TAGS = ("main", "article")
CHROME_INSIDE_CONTENT_KEPT = frozenset({"header", "footer"})
HEADING_LEVELS = {f"h{level}": level for level in range(1, 7)}
BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "header",
        "footer",
        "hr",
        "li",
        "main",
        "ol",
        "p",
        "section",
        "summary",
        "table",
        "tbody",
        "thead",
        "tfoot",
        "ul",
    }
)

_WHITESPACE = re.compile(r"\s+")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


@dataclass(frozen=True)
class ReadablePage:
    title: str
    text: str
    language: str  # the raw ``<html lang>`` value, e.g. "en-GB"; "" when absent
    author: str


def readable_text(raw: bytes | str) -> ReadablePage:
    """Parse ``raw`` HTML (bytes honour ``<meta charset>``) into its readable content."""
    soup = BeautifulSoup(raw, "lxml")
    title = _title(soup)
    language = _html_language(soup)
    author = _meta_content(soup, "author")
    _drop_noise(soup)
    blocks: list[str] = []
    for root in _content_roots(soup):
        blocks.extend(_blocks(root))
    return ReadablePage(title=title, text="\n\n".join(blocks), language=language, author=author)


def collapse_whitespace(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _title(soup: BeautifulSoup) -> str:
    if soup.title is not None and (title := collapse_whitespace(soup.title.get_text())):
        return title
    heading = soup.find("h1")
    return collapse_whitespace(heading.get_text(" ")) if heading is not None else ""


def _html_language(soup: BeautifulSoup) -> str:
    html = soup.find("html")
    if not isinstance(html, Tag):
        return ""
    value = html.get("lang") or html.get("xml:lang")
    return value.strip() if isinstance(value, str) else ""


def _meta_content(soup: BeautifulSoup, name: str) -> str:
    for meta in soup.find_all("meta"):
        if str(meta.get("name", "")).lower() == name:
            return collapse_whitespace(str(meta.get("content", "")))
    return ""


def _drop_noise(soup: BeautifulSoup) -> None:
    for tag in soup.find_all(_is_noise):
        if not tag.decomposed:
            tag.decompose()


def _is_noise(tag: Tag) -> bool:
    if tag.name in NOISE_TAGS:
        in_content = tag.find_parent(CONTENT_TAGS) is not None
        return not (tag.name in CHROME_INSIDE_CONTENT_KEPT and in_content)
    if tag.has_attr("hidden") or str(tag.get("aria-hidden", "")).lower() == "true":
        return True
    return bool(_HIDDEN_STYLE.search(str(tag.get("style", ""))))


def _content_roots(soup: BeautifulSoup) -> list[Tag]:
    """``<main>`` if present, else the outermost ``<article>``s, else the body."""
    main = soup.find("main")
    if isinstance(main, Tag):
        return [main]
    articles = [tag for tag in soup.find_all("article") if tag.find_parent("article") is None]
    if articles:
        return articles
    body = soup.body
    return [body] if body is not None else [soup]


class _BlockWriter:
    """Gathers inline text and turns it into a block whenever a block element starts or ends."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self._inline: list[str] = []

    def text(self, value: str) -> None:
        self._inline.append(value)

    def flush(self) -> None:
        text = collapse_whitespace("".join(self._inline))
        self._inline.clear()
        if text:
            self.blocks.append(text)

    def block(self, value: str) -> None:
        self.flush()
        if value:
            self.blocks.append(value)


def _blocks(root: Tag) -> list[str]:
    """Walk the tree with an explicit stack: deeply nested pages must not hit recursion limits."""
    writer = _BlockWriter()
    stack: list[tuple[PageElement, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        if leaving:
            writer.flush()
        elif isinstance(node, NavigableString):
            if type(node) is NavigableString or isinstance(node, CData):
                writer.text(str(node))
        elif isinstance(node, Tag):
            stack.extend(_visit(node, writer))
    writer.flush()
    return writer.blocks


def _visit(tag: Tag, writer: _BlockWriter) -> list[tuple[PageElement, bool]]:
    """Handle ``tag``; return the stack entries for its children (pushed in reverse order)."""
    name = tag.name
    if name in HEADING_LEVELS or name in ("pre", "tr"):
        writer.block(_special_block(tag))
        return []
    if name == "br":
        writer.text("\n")
        return []
    entries: list[tuple[PageElement, bool]] = []
    if name in BLOCK_TAGS:
        writer.flush()
        entries.append((tag, True))
    entries.extend((child, False) for child in reversed(tag.contents))
    return entries


def _special_block(tag: Tag) -> str:
    """Headings become ``#`` lines, ``<pre>`` keeps its lines, table rows join cells by tabs."""
    name = tag.name
    if name in HEADING_LEVELS:
        text = collapse_whitespace(tag.get_text(" "))
        return f"{'#' * HEADING_LEVELS[name]} {text}" if text else ""
    if name == "pre":
        lines = (line.rstrip() for line in tag.get_text().strip("\n").splitlines())
        return "\n".join(lines).strip()
    cells = (
        collapse_whitespace(td.get_text(" ")) for td in tag.find_all(["td", "th"], recursive=False)
    )
    return "\t".join(cell for cell in cells if cell)
