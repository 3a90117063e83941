"""Chunking: structure-aware, whole words only, overlapping, with correct page ranges."""

from __future__ import annotations

from itertools import pairwise

import pytest

from documents import samples
from documents.pipeline.chunking import TextChunk, chunk_pages


def _normalised(text: str) -> str:
    return " ".join(text.split())


def _sentence(index: int) -> str:
    """Distinct sentences of exactly 50 characters, so sizes are easy to reason about."""
    return f"Sentence number {index:03d} talks about our safety stocks."


def _paragraph(first: int, count: int) -> str:
    return " ".join(_sentence(index) for index in range(first, first + count))


def _sample_pages() -> list[str]:
    return [
        "\n\n".join([section.heading, *section.paragraphs])
        for section in samples.sample_sections(6, paragraphs_per_section=5, seed=3)
    ]


def _overlap(previous: str, following: str) -> str:
    """The longest word-aligned suffix of ``previous`` that ``following`` starts with."""
    words = previous.split()
    for start in range(len(words)):
        suffix = " ".join(words[start:])
        if f"{following} ".startswith(f"{suffix} "):
            return suffix
    return ""


def test_every_chunk_is_a_whole_word_slice_of_the_source() -> None:
    pages = _sample_pages()
    source = f" {_normalised(' '.join(pages))} "

    chunks = chunk_pages(pages, target_chars=500, overlap_chars=120)

    assert len(chunks) > 10
    for chunk in chunks:
        assert f" {_normalised(chunk.text)} " in source
        assert len(chunk.text) <= 500


def test_first_and_last_tokens_are_whole_source_words_when_splitting_mid_sentence() -> None:
    words = [f"w{index}{'x' * (index % 7)}" for index in range(2000)]  # one sentence, no stops
    source_words = set(words)

    chunks = chunk_pages([" ".join(words)], target_chars=300, overlap_chars=60)

    assert all(len(chunk.text) <= 300 for chunk in chunks)
    for chunk in chunks:
        tokens = chunk.text.split()
        assert tokens[0] in source_words
        assert tokens[-1] in source_words
    assert chunks[-1].text.split()[-1] == words[-1]


def test_consecutive_chunks_overlap_by_whole_sentences_up_to_the_limit() -> None:
    pages = [_paragraph(0, 60)]

    chunks = chunk_pages(pages, target_chars=500, overlap_chars=120)

    assert len(chunks) >= 5
    for previous, following in pairwise(chunks):
        shared = _overlap(previous.text, following.text)
        assert 0 < len(shared) <= 120
        assert shared.startswith("Sentence number ")  # whole sentences
        assert shared.endswith(".")
    # 9 sentences of 50 characters fill 458 of 500; the last two (101 <= 120) repeat.
    assert chunks[0].text == _paragraph(0, 9)
    assert chunks[1].text.startswith(f"{_sentence(7)} {_sentence(8)} {_sentence(9)}")


def test_zero_overlap_means_disjoint_chunks() -> None:
    pages = [_paragraph(0, 40)]

    chunks = chunk_pages(pages, target_chars=500, overlap_chars=0)

    assert " ".join(chunk.text for chunk in chunks) == pages[0]


def test_long_paragraph_is_split_at_sentence_boundaries() -> None:
    chunks = chunk_pages([_paragraph(0, 30)], target_chars=260, overlap_chars=0)

    assert [chunk.text for chunk in chunks] == [_paragraph(first, 5) for first in range(0, 30, 5)]


def test_markdown_headings_start_chunks_without_overlap() -> None:
    sections = [f"## Part {n}\n\n{_paragraph(n * 10, 6)}" for n in range(4)]

    chunks = chunk_pages(["\n\n".join(sections)], target_chars=500, overlap_chars=100)

    assert [chunk.text for chunk in chunks] == [
        f"## Part {n}\n\n{_paragraph(n * 10, 6)}" for n in range(4)
    ]


@pytest.mark.parametrize(
    ("middle_line", "is_heading"),
    [("Short line, with a stop.", False), ("Stock By Region", True)],
)
def test_heading_heuristic_short_unpunctuated_line_before_a_paragraph(
    middle_line: str, is_heading: bool
) -> None:
    page = "\n\n".join(
        [
            _paragraph(0, 5),
            "Inventory Targets",  # short, no final punctuation, a paragraph follows
            _paragraph(10, 5),
            middle_line,
            _paragraph(20, 5),
        ]
    )

    chunks = chunk_pages([page], target_chars=600, overlap_chars=0)

    second_section = ["Inventory Targets", _paragraph(10, 5)]
    third_section = [middle_line, _paragraph(20, 5)]
    expected = (
        [_paragraph(0, 5), "\n\n".join(second_section), "\n\n".join(third_section)]
        if is_heading
        else [_paragraph(0, 5), "\n\n".join(second_section + third_section)]
    )
    assert [chunk.text for chunk in chunks] == expected


def test_small_chunk_keeps_going_past_a_heading() -> None:
    page = "\n\n".join(["Intro line.", "# Section", _paragraph(0, 2)])

    chunks = chunk_pages([page], target_chars=600, overlap_chars=0)

    assert [chunk.text for chunk in chunks] == [page]


def test_heading_is_never_left_at_the_end_of_a_chunk() -> None:
    page = "\n\n".join([_paragraph(0, 2), "# Next topic", _paragraph(10, 8)])

    chunks = chunk_pages([page], target_chars=450, overlap_chars=50)

    assert chunks[0] == TextChunk(_paragraph(0, 2), 1, 1)
    assert chunks[1].text.startswith("# Next topic\n\nSentence number 010")


def test_heading_followed_by_a_paragraph_too_long_for_its_chunk_is_filled_by_sentences() -> None:
    page = "# Topic\n\n" + _paragraph(0, 9)  # 7 + 2 + 458 characters

    chunks = chunk_pages([page], target_chars=460, overlap_chars=0)

    assert [chunk.text for chunk in chunks] == [f"# Topic\n\n{_paragraph(0, 8)}", _sentence(8)]


def test_heading_carried_to_the_next_chunk_is_filled_by_sentences_too() -> None:
    page = "\n\n".join([_paragraph(0, 2), "# Topic", _paragraph(10, 9)])

    chunks = chunk_pages([page], target_chars=460, overlap_chars=0)

    assert [chunk.text for chunk in chunks] == [
        _paragraph(0, 2),
        f"# Topic\n\n{_paragraph(10, 8)}",
        _sentence(18),
    ]


def test_page_ranges_include_the_overlap_page() -> None:
    pages = [_paragraph(page * 10, 5) + "\n\n" + _paragraph(page * 10 + 5, 5) for page in range(3)]

    one_paragraph_each = chunk_pages(pages, target_chars=300, overlap_chars=0)
    with_overlap = chunk_pages(pages, target_chars=620, overlap_chars=110)

    assert [(c.page_start, c.page_end) for c in one_paragraph_each] == [
        (1, 1), (1, 1), (2, 2), (2, 2), (3, 3), (3, 3)
    ]  # fmt: skip
    assert [(c.page_start, c.page_end) for c in with_overlap] == [(1, 1), (1, 2), (2, 3)]
    assert with_overlap[1].text == "\n\n".join(
        [f"{_sentence(8)} {_sentence(9)}", _paragraph(10, 5), _paragraph(15, 5)]
    )


def test_whitespace_is_normalised_and_line_break_hyphens_are_joined() -> None:
    # A hyphen at a line break is ambiguous; a lowercase continuation is taken as one word
    # ("docu-ment", but also "well-known"), a capital as a real compound ("Jean-Paul").
    page = "The docu-\nment   is\tlong,\nwell-\nknown  to Jean-\nPaul and co-\n  workers\u00ad."

    chunks = chunk_pages([page])

    assert chunks == [
        TextChunk("The document is long, wellknown to Jean-Paul and coworkers.", 1, 1)
    ]


def test_blob_without_whitespace_is_hard_split_exactly() -> None:
    blob = "QUJD" * 700  # 2800 characters of base64, no whitespace

    chunks = chunk_pages([f"Attachment follows.\n\n{blob}"], target_chars=1000, overlap_chars=100)

    assert [chunk.text for chunk in chunks] == [
        "Attachment follows.",
        blob[:1000],
        blob[1000:2000],
        blob[2000:],
    ]


@pytest.mark.parametrize("pages", [[], [""], ["   \n\n \t ", "\n"]])
def test_no_text_gives_no_chunks(pages: list[str]) -> None:
    assert chunk_pages(pages) == []


@pytest.mark.parametrize(("target", "overlap"), [(1, 0), (100, 50), (100, -1)])
def test_rejects_sizes_that_cannot_make_progress(target: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="target_chars"):
        chunk_pages(["text"], target_chars=target, overlap_chars=overlap)
