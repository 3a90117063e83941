"""The whole pipeline for one file: detect → extract → chunk → keywords → embed.

Plain Python with no database or Celery: the task wraps it, records the progress it reports and
stores the result. ``on_progress`` is also the cancellation hook: whatever it raises (for
instance when the document was cancelled meanwhile) stops the run and propagates unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from documents.pipeline.chunking import TextChunk, chunk_pages
from documents.pipeline.detect import DocumentKind, detect_kind
from documents.pipeline.embed import EmbeddingProvider, HashingEmbedder, vector_to_bytes
from documents.pipeline.errors import NoExtractableTextError
from documents.pipeline.extract import ExtractedDocument, extract
from documents.pipeline.keywords import (
    CANDIDATES_TOP,
    chunk_keywords,
    document_keyword_candidates,
)

ProgressCallback = Callable[[str, int], None]


@dataclass
class PipelineConfig:
    target_chars: int = 1200
    overlap_chars: int = 150
    max_pages: int = 2000
    keywords_top: int = 20
    keyword_sample_words: int = 3000
    chunk_keywords_top: int = 5
    embedding_provider: EmbeddingProvider | None = None  # None means HashingEmbedder()
    embed_batch_size: int = 64
    summarizer: Callable[[str], str] | None = None  # e.g. remote.summarize; None: no summary

    def provider(self) -> EmbeddingProvider:
        return self.embedding_provider or HashingEmbedder()


@dataclass
class ChunkResult:
    ordinal: int  # 0-based position in the document
    text: str
    page_start: int
    page_end: int
    keywords: list[str]
    embedding: bytes  # float32 little-endian, see embed.vector_from_bytes


@dataclass
class PipelineResult:
    kind: DocumentKind
    metadata: ExtractedDocument  # pages emptied to free memory; page_count kept
    keywords: list[str]
    chunks: list[ChunkResult]
    text_length: int  # characters of extracted text
    embedding_model: str  # provider name, e.g. "hashing-256": embeddings from different
    # models are not comparable, so the caller stores it next to the vectors
    summary: str = ""


def _ignore_progress(stage: str, percent: int) -> None:
    """Default progress callback: report nothing."""


def run_pipeline(
    path: Path,
    *,
    name: str = "",
    kind: DocumentKind | None = None,
    config: PipelineConfig | None = None,
    on_progress: ProgressCallback = _ignore_progress,
) -> PipelineResult:
    """Process the file at ``path`` (``name`` is its original name, used only as a hint).

    Raises ``PipelineError`` subclasses for files that can never succeed; exceptions raised by
    ``on_progress`` propagate untouched.
    """
    config = config or PipelineConfig()
    kind = kind or detect_kind(path, name)
    document = extract(path, kind, max_pages=config.max_pages)

    on_progress("chunk", 20)
    text_chunks = chunk_pages(
        document.pages, target_chars=config.target_chars, overlap_chars=config.overlap_chars
    )
    if not text_chunks:
        raise NoExtractableTextError()
    text = document.text
    candidates = document_keyword_candidates(
        text,
        document.language,
        top=max(CANDIDATES_TOP, config.keywords_top),
        sample_words=config.keyword_sample_words,
    )

    on_progress("embed", 50)
    provider = config.provider()
    vectors = _embed(provider, [chunk.text for chunk in text_chunks], config.embed_batch_size)

    on_progress("index", 80)
    summary = config.summarizer(text) if config.summarizer else ""
    chunks = [
        _chunk_result(ordinal, chunk, candidates, vector, config.chunk_keywords_top)
        for ordinal, (chunk, vector) in enumerate(zip(text_chunks, vectors, strict=True))
    ]
    return PipelineResult(
        kind=kind,
        metadata=replace(document, pages=[]),
        keywords=candidates[: config.keywords_top],
        chunks=chunks,
        text_length=len(text),
        embedding_model=provider.name,
        summary=summary,
    )


def _embed(provider: EmbeddingProvider, texts: list[str], batch_size: int) -> np.ndarray:
    """Embed in batches so a remote or GPU provider never receives the whole document at once."""
    batches = [
        provider.embed(texts[start : start + batch_size])
        for start in range(0, len(texts), max(1, batch_size))
    ]
    return np.concatenate(batches) if batches else np.zeros((0, provider.dimensions), np.float32)


def _chunk_result(
    ordinal: int, chunk: TextChunk, candidates: list[str], vector: np.ndarray, top: int
) -> ChunkResult:
    return ChunkResult(
        ordinal=ordinal,
        text=chunk.text,
        page_start=chunk.page_start,
        page_end=chunk.page_end,
        keywords=chunk_keywords(chunk.text, candidates, top=top),
        embedding=vector_to_bytes(vector),
    )
