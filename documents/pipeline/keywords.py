"""Keyphrases for a document and its chunks, at a cost bounded per document.

YAKE is the slowest stage of the pipeline (~0.07-0.1 s per 1,000 words, about twenty times the
cost of extracting the text), and its cost grows with the text it reads. So YAKE reads a bounded
sample of evenly spaced windows that covers the whole document, and runs once per document:

* ``document_keyword_candidates`` ranks up to ~100 phrases from that sample;
* ``document_keywords`` is the head of that ranking;
* ``chunk_keywords`` picks, for each chunk, the document's candidates that occur in it.

Running YAKE on every chunk instead would cost as much as running it on the whole document
(plus per-call overhead) and rank each chunk's phrases without knowing what matters to the
document; deriving chunk keywords from the document's keeps them consistent across chunks and
makes the per-chunk step a dictionary lookup per word.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import yake

CANDIDATES_TOP = 100
MAX_NGRAM = 3
DEDUP_THRESHOLD = 0.9
DEFAULT_LANGUAGE = "en"

_WORD = re.compile(r"\w+")
_EDGE_PUNCTUATION = " .,;:!?\"'()[]{}"


def document_keywords(
    text: str, language: str, *, top: int = 20, sample_words: int = 3000, window_words: int = 500
) -> list[str]:
    """The document's ``top`` keyphrases, best first, lowercased and deduplicated."""
    return document_keyword_candidates(
        text, language, top=top, sample_words=sample_words, window_words=window_words
    )


def document_keyword_candidates(
    text: str,
    language: str,
    *,
    top: int = CANDIDATES_TOP,
    sample_words: int = 3000,
    window_words: int = 500,
) -> list[str]:
    """A longer ranking than ``document_keywords`` for matching against chunks.

    YAKE's deduplication walks its ranking greedily, so the first N of a top-100 list equal a
    top-N list: callers needing both run YAKE once and slice.
    """
    sample = keyword_sample(text, sample_words=sample_words, window_words=window_words)
    if not sample.strip():
        return []
    extractor = _extractor(language or DEFAULT_LANGUAGE, top)
    keywords: list[str] = []
    seen: set[str] = set()
    for phrase, _score in extractor.extract_keywords(sample):
        normalised = " ".join(phrase.lower().split()).strip(_EDGE_PUNCTUATION)
        if normalised not in seen and any(char.isalpha() for char in normalised):
            seen.add(normalised)
            keywords.append(normalised)
    return keywords


def keyword_sample(text: str, *, sample_words: int = 3000, window_words: int = 500) -> str:
    """The text YAKE reads: all of it up to ``sample_words`` words, otherwise evenly spaced
    windows from start to end totalling at most ``sample_words`` words."""
    words = text.split()
    if len(words) <= sample_words:
        return text
    windows = max(1, math.ceil(sample_words / max(1, window_words)))
    size = sample_words // windows
    stride = (len(words) - size) / max(1, windows - 1)
    starts = [round(index * stride) for index in range(windows)]
    return "\n\n".join(" ".join(words[start : start + size]) for start in starts)


@lru_cache(maxsize=32)
def _extractor(language: str, top: int) -> yake.KeywordExtractor:
    """Cached: building an extractor reads its stopword list from disk."""
    return yake.KeywordExtractor(
        lan=language, n=MAX_NGRAM, dedup_lim=DEDUP_THRESHOLD, top=top, features=None
    )


def chunk_keywords(chunk_text: str, candidates: list[str], *, top: int = 5) -> list[str]:
    """The first ``top`` of the ``candidates`` (best first) that occur in ``chunk_text`` as
    whole words, ignoring case. Candidates are unique, so the document's ranking alone orders
    them; how often a phrase occurs only decides whether it occurs.

    One pass over the chunk's words: each word looks up the candidates that start with it, so
    the cost is linear in the chunk, not chunk length times number of candidates.
    """
    by_first_word: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for rank, candidate in enumerate(candidates):
        words = tuple(_WORD.findall(candidate.lower()))
        if words:
            by_first_word.setdefault(words[0], []).append((rank, words))
    tokens = _WORD.findall(chunk_text.lower())
    found: set[int] = set()
    for position, token in enumerate(tokens):
        for rank, words in by_first_word.get(token, ()):
            if rank not in found and tuple(tokens[position : position + len(words)]) == words:
                found.add(rank)
    return [candidates[rank] for rank in sorted(found)[:top]]
