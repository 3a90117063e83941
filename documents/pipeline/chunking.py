"""Split page texts into overlapping, search-sized chunks along the document's own structure.

A chunk is what search returns and what gets embedded, so it should read as a unit: it starts
at a heading when it can, packs whole paragraphs, splits a long paragraph between sentences and
never cuts a word in two. The tail of each chunk is repeated at the start of the next so a
sentence that straddles the boundary is still found whole by one of them; a chunk that starts a
new section gets no overlap, since the previous section's tail would only blur it.

Everything is one pass over the text: units are produced per page, appended once, and a chunk
is joined once, so cost grows linearly with the document.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

HEADING_MAX_CHARS = 80
HEADING_MAX_WORDS = 12
HEADING_SHARE_OF_TARGET = 1 / 3  # a heading closes a chunk at least this full
PARAGRAPH_SEPARATOR = "\n\n"
SENTENCE_SEPARATOR = " "

_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")
_HYPHEN_BREAK = re.compile(r"([^\W\d_])-[ \t]*\n[ \t]*([^\W\d_])")
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")  # soft hyphen, zero widths
_ATX_HEADING = re.compile(r"#{1,6}[ \t]+\S")
_SENTENCE_END = re.compile(r"[.!?\u2026]+[\"'\u201d\u2019)\]]*\s+")
_FINAL_PUNCTUATION = tuple(".,;:!?\u2026")


@dataclass(frozen=True)
class TextChunk:
    text: str
    page_start: int  # 1-based
    page_end: int


@dataclass(frozen=True, slots=True)
class _Unit:
    """A paragraph, or one sentence (or word run) of a paragraph too long for one chunk."""

    text: str
    page: int
    heading: bool = False
    continues: bool = False  # continues the previous unit's paragraph: joined by a space

    @property
    def separator(self) -> str:
        return SENTENCE_SEPARATOR if self.continues else PARAGRAPH_SEPARATOR


def chunk_pages(
    pages: list[str], *, target_chars: int = 1200, overlap_chars: int = 150
) -> list[TextChunk]:
    """Chunk ``pages`` (page 1 first) into pieces of about ``target_chars`` characters.

    A chunk exceeds ``target_chars`` only when a heading is followed by a single sentence too
    long to fit beside it: the heading stays with its text rather than standing alone.
    """
    if target_chars < 2 or not 0 <= overlap_chars < target_chars // 2:
        raise ValueError("Need target_chars >= 2 and 0 <= overlap_chars < target_chars / 2.")
    packer = _Packer(target_chars, overlap_chars)
    for unit in _units(pages, target_chars):
        packer.add(unit)
    return packer.finish()


# Paragraphs, headings and sentences -------------------------------------------------------


def _units(pages: list[str], max_chars: int) -> Iterator[_Unit]:
    for number, page in enumerate(pages, start=1):
        paragraphs = _paragraphs(page)
        for index, (text, single_line) in enumerate(paragraphs):
            following = paragraphs[index + 1] if index + 1 < len(paragraphs) else None
            if _is_heading(text, single_line, following):
                yield _Unit(text, number, heading=True)
            else:
                yield from _paragraph_units(text, number, max_chars)


def _paragraphs(page: str) -> list[tuple[str, bool]]:
    """Normalised paragraphs of a page, each with whether it was a single source line."""
    page = _INVISIBLE.sub("", page.replace("\r\n", "\n").replace("\r", "\n"))
    page = _HYPHEN_BREAK.sub(_join_hyphenated, page)
    paragraphs: list[tuple[str, bool]] = []
    for block in _BLANK_LINE.split(page):
        lines: list[str] = []
        for line in block.split("\n"):
            if _ATX_HEADING.match(line.strip()):
                _append_paragraph(paragraphs, lines)
                lines = []
                paragraphs.append((" ".join(line.split()), True))
            else:
                lines.append(line)
        _append_paragraph(paragraphs, lines)
    return paragraphs


def _append_paragraph(paragraphs: list[tuple[str, bool]], lines: list[str]) -> None:
    text = " ".join(" ".join(lines).split())
    if text:
        paragraphs.append((text, sum(1 for line in lines if line.strip()) == 1))


def _join_hyphenated(match: re.Match[str]) -> str:
    """``docu-\\nment`` is one word; ``Jean-\\nPaul`` keeps its hyphen (capital after it)."""
    before, after = match.group(1), match.group(2)
    return before + after if after.islower() else f"{before}-{after}"


def _is_heading(text: str, single_line: bool, following: tuple[str, bool] | None) -> bool:
    """A Markdown heading, or a short unpunctuated line followed by an ordinary paragraph."""
    if _ATX_HEADING.match(text):
        return True
    return (
        _is_short_line(text, single_line)
        and following is not None
        and not _is_short_line(*following)
        and not _ATX_HEADING.match(following[0])
    )


def _is_short_line(text: str, single_line: bool) -> bool:
    return (
        single_line
        and len(text) <= HEADING_MAX_CHARS
        and len(text.split()) <= HEADING_MAX_WORDS
        and text[0].isalnum()
        and not text.endswith(_FINAL_PUNCTUATION)
        and _SENTENCE_END.search(text) is None
    )


def _paragraph_units(text: str, page: int, max_chars: int) -> Iterator[_Unit]:
    unit = _Unit(text, page)
    if len(text) <= max_chars:
        yield unit
    else:
        yield from _sentence_units(unit, max_chars)


def _sentence_units(unit: _Unit, max_chars: int) -> list[_Unit]:
    """``unit`` cut between sentences (and long sentences between words), in order."""
    pieces = [
        piece
        for sentence in split_sentences(unit.text)
        for piece in _split_at_whitespace(sentence, max_chars)
    ]
    return [
        replace(unit, text=piece, continues=unit.continues if index == 0 else True)
        for index, piece in enumerate(pieces)
    ]


def split_sentences(text: str) -> list[str]:
    """Split after ., !, ? or an ellipsis (with closing quotes) that is followed by space."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        sentences.append(text[start : match.end()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


def _split_at_whitespace(text: str, max_chars: int) -> Iterator[str]:
    """Runs of whole words up to ``max_chars``; only a word with no whitespace at all that is
    itself longer (a base64 blob, a URL) is cut, since there is no better place to cut it."""
    if len(text) <= max_chars:
        yield text
        return
    run: list[str] = []
    size = 0
    for word in text.split():
        if run and size + 1 + len(word) > max_chars:
            yield " ".join(run)
            run, size = [], 0
        if len(word) > max_chars:
            yield from (word[i : i + max_chars] for i in range(0, len(word), max_chars))
            continue
        size += len(word) + (1 if run else 0)
        run.append(word)
    if run:
        yield " ".join(run)


# Packing ------------------------------------------------------------------------------------


class _Packer:
    """Accumulates units into chunks; decides where chunks break and what overlaps."""

    def __init__(self, target_chars: int, overlap_chars: int) -> None:
        self.target_chars = target_chars
        self.overlap_chars = overlap_chars
        self.chunks: list[TextChunk] = []
        self._units: list[_Unit] = []
        self._size = 0
        self._overlap_source: list[_Unit] = []

    def add(self, unit: _Unit) -> None:
        overflows = bool(self._units) and not self._fits(unit)
        if unit.heading and (
            overflows or self._size >= self.target_chars * HEADING_SHARE_OF_TARGET
        ):
            self._flush(overlap=False)
        elif overflows:
            heading = self._pop_trailing_heading()
            self._flush(overlap=heading is None)
            if heading is not None:
                self._append(heading)
        if self._holds_only_a_heading() and not self._has_room_for(unit):
            pieces = _sentence_units(unit, self.target_chars)
            if len(pieces) > 1:  # fill the heading's chunk sentence by sentence instead
                for piece in pieces:
                    self.add(piece)
                return
        if not self._units and self._overlap_source:
            budget = min(self.overlap_chars, self.target_chars - len(unit.text) - 2)
            for piece in _overlap(self._overlap_source, budget):
                self._append(piece)
        self._overlap_source = []
        self._append(unit)

    def finish(self) -> list[TextChunk]:
        self._flush(overlap=False)
        return self.chunks

    def _fits(self, unit: _Unit) -> bool:
        # A heading stays with the text it introduces, even if that one sentence is too long.
        return self._holds_only_a_heading() or self._has_room_for(unit)

    def _has_room_for(self, unit: _Unit) -> bool:
        return self._size + len(unit.separator) + len(unit.text) <= self.target_chars

    def _holds_only_a_heading(self) -> bool:
        return len(self._units) == 1 and self._units[0].heading

    def _append(self, unit: _Unit) -> None:
        self._size += (len(unit.separator) if self._units else 0) + len(unit.text)
        self._units.append(unit)

    def _pop_trailing_heading(self) -> _Unit | None:
        """A heading that ended up last would be cut from its text: move it to the next chunk."""
        if len(self._units) < 2 or not self._units[-1].heading:
            return None
        heading = self._units.pop()
        self._size -= len(heading.separator) + len(heading.text)
        return heading

    def _flush(self, *, overlap: bool) -> None:
        if not self._units:
            return
        text = _join(self._units)
        if text.strip():
            self.chunks.append(TextChunk(text, self._units[0].page, self._units[-1].page))
        self._overlap_source = self._units if overlap else []
        self._units = []
        self._size = 0


def _join(units: list[_Unit]) -> str:
    parts = [units[0].text]
    for unit in units[1:]:
        parts.append(unit.separator)
        parts.append(unit.text)
    return "".join(parts)


def _overlap(units: list[_Unit], budget: int) -> list[_Unit]:
    """The longest run of whole sentences ending the previous chunk that fits in ``budget``;
    if not even its last sentence fits, its last whole words."""
    if budget <= 0:
        return []
    picked: list[_Unit] = []
    used = 0
    for unit in reversed(units):
        sentences = split_sentences(unit.text)
        kept: list[str] = []
        for sentence in reversed(sentences):
            joint = len(SENTENCE_SEPARATOR) if kept else len(picked[0].separator) if picked else 0
            if used + joint + len(sentence) > budget:
                break
            kept.append(sentence)
            used += joint + len(sentence)
        if kept:
            text = SENTENCE_SEPARATOR.join(reversed(kept))
            picked.insert(0, replace(unit, text=text, heading=False))
        if len(kept) < len(sentences):
            break
    if not picked and (words := _last_words(units[-1].text, budget)):
        picked = [replace(units[-1], text=words, heading=False)]
    return picked


def _last_words(text: str, budget: int) -> str:
    words: list[str] = []
    used = 0
    for word in reversed(text.split()):
        cost = len(word) + (1 if words else 0)
        if used + cost > budget:
            break
        words.append(word)
        used += cost
    return " ".join(reversed(words))
