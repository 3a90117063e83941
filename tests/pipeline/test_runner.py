"""run_pipeline end to end on real files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from documents import samples
from documents.pipeline import runner
from documents.pipeline.detect import DocumentKind
from documents.pipeline.embed import HashingEmbedder, vector_from_bytes
from documents.pipeline.errors import (
    CorruptDocumentError,
    EncryptedDocumentError,
    NoExtractableTextError,
    PipelineError,
)
from documents.pipeline.extract import extract
from documents.pipeline.keywords import document_keywords
from documents.pipeline.runner import PipelineConfig, run_pipeline


class _Cancelled(Exception):
    pass


class _SpyEmbedder:
    """Records the batches it is asked to embed."""

    name = "spy-8"
    dimensions = 8

    def __init__(self) -> None:
        self.batches: list[int] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(len(texts))
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        vectors[:, 0] = 1
        return vectors


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    return samples.make_pdf(tmp_path / "handbook.pdf", pages=3, title="Handbook", author="Ada")


def test_pdf_end_to_end(pdf: Path) -> None:
    progress: list[tuple[str, int]] = []

    result = run_pipeline(
        pdf, name="handbook.pdf", on_progress=lambda s, p: progress.append((s, p))
    )

    assert progress == [("chunk", 20), ("embed", 50), ("index", 80)]
    assert result.kind is DocumentKind.PDF
    assert (result.metadata.title, result.metadata.author) == ("Handbook", "Ada")
    assert (result.metadata.page_count, result.metadata.pages) == (3, [])
    assert result.embedding_model == "hashing-256"
    text = extract(pdf, DocumentKind.PDF).text
    assert result.text_length == len(text)
    assert result.keywords == document_keywords(text, "en", top=20)
    assert [chunk.ordinal for chunk in result.chunks] == list(range(len(result.chunks)))
    assert result.chunks[0].page_start == 1
    assert result.chunks[-1].page_end == 3
    for chunk in result.chunks:
        assert 1 <= chunk.page_start <= chunk.page_end <= 3
        assert 0 < len(chunk.keywords) <= 5
        assert set(chunk.keywords) <= set(runner.document_keyword_candidates(text, "en"))
        assert len(chunk.embedding) == 256 * 4
        assert np.linalg.norm(vector_from_bytes(chunk.embedding)) == pytest.approx(1, rel=1e-5)
        assert len(chunk.text) <= 1200


def test_config_drives_sizes_batches_and_provider(pdf: Path) -> None:
    spy = _SpyEmbedder()
    config = PipelineConfig(
        target_chars=400,
        overlap_chars=50,
        keywords_top=5,
        chunk_keywords_top=2,
        embedding_provider=spy,
        embed_batch_size=4,
    )

    result = run_pipeline(pdf, config=config)

    chunk_count = len(result.chunks)
    assert chunk_count > 8
    assert spy.batches == [4] * (chunk_count // 4) + ([chunk_count % 4] if chunk_count % 4 else [])
    assert result.embedding_model == "spy-8"
    assert len(result.keywords) == 5
    assert all(len(chunk.text) <= 400 and len(chunk.keywords) <= 2 for chunk in result.chunks)
    assert all(len(chunk.embedding) == 8 * 4 for chunk in result.chunks)


def test_exception_from_progress_callback_propagates_and_stops_the_run(pdf: Path) -> None:
    spy = _SpyEmbedder()
    seen: list[str] = []

    def cancel_at_embed(stage: str, percent: int) -> None:
        seen.append(stage)
        if stage == "embed":
            raise _Cancelled

    with pytest.raises(_Cancelled):
        run_pipeline(
            pdf, config=PipelineConfig(embedding_provider=spy), on_progress=cancel_at_embed
        )

    assert seen == ["chunk", "embed"]
    assert spy.batches == []


def test_explicit_kind_skips_detection(tmp_path: Path) -> None:
    path = samples.make_markdown(tmp_path / "notes.md")

    result = run_pipeline(path, kind=DocumentKind.TXT)

    assert result.kind is DocumentKind.TXT
    assert result.metadata.title == ""  # Markdown titles are not read from plain text


def test_no_chunks_is_no_extractable_text(pdf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "chunk_pages", lambda pages, **sizes: [])

    with pytest.raises(NoExtractableTextError):
        run_pipeline(pdf)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {path.name: path for path in samples.write_sample_corpus(tmp_path_factory.mktemp("c"))}


@pytest.mark.parametrize(
    ("name", "kind", "title"),
    [
        ("operations-review.pdf", DocumentKind.PDF, samples.DEFAULT_TITLE),
        ("supplier-report.docx", DocumentKind.DOCX, samples.DEFAULT_TITLE),
        ("blog-post.html", DocumentKind.HTML, f"{samples.DEFAULT_TITLE} | Example Corp"),
        ("runbook.md", DocumentKind.MARKDOWN, samples.DEFAULT_TITLE),
        ("meeting-notes.txt", DocumentKind.TXT, ""),
        ("resilient-warehouse.epub", DocumentKind.EPUB, "The Resilient Warehouse"),
        ("safety-handbook.xps", DocumentKind.XPS, "Warehouse Safety Handbook"),
    ],
)
def test_every_good_sample_runs_end_to_end(
    corpus: dict[str, Path], name: str, kind: DocumentKind, title: str
) -> None:
    result = run_pipeline(
        corpus[name], name=name, config=PipelineConfig(embedding_provider=HashingEmbedder(64))
    )

    assert (result.kind, result.metadata.title, result.metadata.language) == (kind, title, "en")
    assert result.chunks
    assert result.keywords


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("encrypted.pdf", EncryptedDocumentError),
        ("corrupt.pdf", CorruptDocumentError),
        ("scanned.pdf", NoExtractableTextError),
    ],
)
def test_failure_samples_fail_permanently(
    corpus: dict[str, Path], name: str, error: type[PipelineError]
) -> None:
    with pytest.raises(error):
        run_pipeline(corpus[name], name=name)


def test_corpus_has_one_file_per_case(corpus: dict[str, Path]) -> None:
    assert len(corpus) == 10
    assert all(path.stat().st_size > 0 for path in corpus.values())
