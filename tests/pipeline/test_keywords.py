"""Keywords: bounded YAKE input per document, chunk keywords by whole-word matching."""

from __future__ import annotations

import pytest

from documents import samples
from documents.pipeline import keywords
from documents.pipeline.keywords import (
    chunk_keywords,
    document_keyword_candidates,
    document_keywords,
    keyword_sample,
)


def _long_text(words: int) -> str:
    prose = " ".join(
        paragraph
        for section in samples.sample_sections(5, paragraphs_per_section=6, seed=1)
        for paragraph in section.paragraphs
    ).split()
    return " ".join(prose[index % len(prose)] for index in range(words))


class _RecordingExtractor:
    """Stands in for YAKE to record exactly what it would have been asked to read."""

    def __init__(self) -> None:
        self.inputs: list[str] = []
        self.requested: list[tuple[str, int]] = []  # (language, top) of each construction

    def extract_keywords(self, text: str) -> list[tuple[str, float]]:
        self.inputs.append(text)
        return [("Safety Stock", 0.1), ("safety  stock", 0.2), ("2024", 0.3), ("Lead time.", 0.4)]


@pytest.fixture
def recording_extractor(monkeypatch: pytest.MonkeyPatch) -> _RecordingExtractor:
    extractor = _RecordingExtractor()

    def fake_extractor(language: str, top: int) -> _RecordingExtractor:
        extractor.requested.append((language, top))
        return extractor

    monkeypatch.setattr(keywords, "_extractor", fake_extractor)
    return extractor


def test_sample_of_a_long_text_is_bounded_and_spans_the_whole_document() -> None:
    words = [f"w{index}" for index in range(100_000)]

    sample = keyword_sample(" ".join(words), sample_words=3000, window_words=500)

    windows = [window.split() for window in sample.split("\n\n")]
    assert [len(window) for window in windows] == [500] * 6
    assert windows[0][0] == "w0"
    assert windows[-1][-1] == "w99999"
    starts = [int(window[0][1:]) for window in windows]
    assert starts == [0, 19900, 39800, 59700, 79600, 99500]


def test_uneven_window_size_keeps_the_total_within_the_sample() -> None:
    sample = keyword_sample(" ".join(["word"] * 10_000), sample_words=1000, window_words=300)

    assert [len(window.split()) for window in sample.split("\n\n")] == [250] * 4


def test_short_text_is_used_whole() -> None:
    text = "A short text,\nwith its punctuation and line breaks."

    assert keyword_sample(text, sample_words=3000) == text


def test_yake_reads_at_most_sample_words_of_a_100k_word_document(
    recording_extractor: _RecordingExtractor,
) -> None:
    result = document_keywords(_long_text(100_000), "de", top=20, sample_words=3000)

    assert len(recording_extractor.inputs) == 1
    assert len(recording_extractor.inputs[0].split()) == 3000
    assert recording_extractor.requested == [("de", 20)]
    assert result == ["safety stock", "lead time"]  # lowercased, deduplicated, no bare numbers


def test_unknown_language_falls_back_to_english(recording_extractor: _RecordingExtractor) -> None:
    document_keyword_candidates("Some text about stock levels.", "")

    assert recording_extractor.requested == [("en", 100)]


def test_real_yake_on_a_100k_word_text_finds_the_domain_phrases() -> None:
    result = document_keywords(_long_text(100_000), "en", top=20)

    assert 0 < len(result) <= 20
    assert len(set(result)) == len(result)
    assert all(phrase == phrase.lower() for phrase in result)
    domain_terms = {term for terms in samples.TOPICS.values() for term in terms}
    assert len(domain_terms & set(result)) >= 3


def test_top_n_is_the_head_of_the_longer_candidate_ranking() -> None:
    text = _long_text(4000)

    assert document_keywords(text, "en", top=10) == document_keyword_candidates(text, "en")[:10]


def test_blank_text_has_no_keywords() -> None:
    assert document_keywords("  \n ", "en") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The artist starts a smart startup.", []),  # no whole-word match for art/start
        ("RISK REGISTER reviewed; the Risk register grows.", ["risk register", "risk"]),
        ("A risk, not a register entry.", ["risk"]),
        ("State-of-the-art art and risk.", ["state of the art", "art", "risk"]),
    ],
)
def test_chunk_keywords_match_whole_words_case_insensitively(
    text: str, expected: list[str]
) -> None:
    candidates = ["state of the art", "risk register", "art", "risk", "start"]

    assert chunk_keywords(text, candidates) == expected


def test_chunk_keywords_follow_the_document_ranking_and_respect_top() -> None:
    candidates = ["lead time", "safety stock", "supply chain", "forecast"]
    text = "forecast forecast forecast supply chain safety stock lead time"

    assert chunk_keywords(text, candidates, top=3) == ["lead time", "safety stock", "supply chain"]
    assert chunk_keywords(text, []) == []
