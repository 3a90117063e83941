"""Embeddings: stable across processes, normalised, lexical similarity, byte round trip."""

from __future__ import annotations

import multiprocessing
import struct
import sys
import types
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from documents.pipeline.embed import (
    EmbeddingProvider,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    cosine_scores,
    get_provider,
    vector_from_bytes,
    vector_to_bytes,
)

TEXTS = [
    "The safety stock covers two weeks of demand in the northern warehouse.",
    "Safety stock in the northern warehouse covers about two weeks of demand.",
    "Our choir rehearses Bach cantatas every Thursday evening.",
    "",
]


def test_shape_dtype_and_unit_rows_with_zero_row_for_empty_text() -> None:
    vectors = HashingEmbedder(256).embed(TEXTS)

    assert vectors.shape == (4, 256)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, rtol=1e-6)
    assert not vectors[3].any()


def test_similar_texts_score_higher_than_unrelated_ones() -> None:
    vectors = HashingEmbedder().embed(TEXTS[:3])

    scores = cosine_scores(vectors[0], vectors)

    assert scores[0] == pytest.approx(1.0)
    assert scores[1] > 0.5 > scores[2]
    assert scores[1] > scores[2] + 0.4


def _embed_in_fresh_interpreter() -> tuple[int, str]:
    """Runs in a spawned process: its salted ``hash()`` and its embedding of TEXTS[0]."""
    return hash(TEXTS[0]), vector_to_bytes(HashingEmbedder(64).embed(TEXTS[:1])[0]).hex()


def test_same_vectors_in_other_processes_with_other_hash_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    here = vector_to_bytes(HashingEmbedder(64).embed(TEXTS[:1])[0]).hex()
    results = []
    for seed in ("1", "2"):
        monkeypatch.setenv("PYTHONHASHSEED", seed)  # read by the spawned interpreter
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results.append(pool.submit(_embed_in_fresh_interpreter).result(timeout=120))

    (first_hash, first_vector), (second_hash, second_vector) = results
    assert first_hash != second_hash  # Python's own hash() would not have been stable
    assert first_vector == second_vector == here


def test_batch_result_equals_one_by_one() -> None:
    embedder = HashingEmbedder(128)

    batched = embedder.embed(TEXTS)
    single = np.vstack([embedder.embed([text]) for text in TEXTS])

    np.testing.assert_array_equal(batched, single)
    assert embedder.embed([]).shape == (0, 128)


def test_name_carries_the_dimensions_and_it_is_a_provider() -> None:
    assert HashingEmbedder().name == "hashing-256"
    assert HashingEmbedder(64).name == "hashing-64"
    assert isinstance(HashingEmbedder(), EmbeddingProvider)


def test_bytes_round_trip_is_float32_little_endian() -> None:
    vector = HashingEmbedder(32).embed(TEXTS[:1])[0]

    data = vector_to_bytes(vector)

    assert len(data) == 32 * 4
    assert data[:4] == struct.pack("<f", vector[0])
    np.testing.assert_array_equal(vector_from_bytes(data), vector)
    assert vector_from_bytes(data).flags.writeable
    assert vector_to_bytes(np.array([1.0, -2.0], dtype=np.float64)) == struct.pack("<2f", 1, -2)


def test_vector_from_bytes_rejects_a_partial_float() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        vector_from_bytes(b"\x00" * 6)


def test_cosine_scores_handle_zero_vectors() -> None:
    matrix = np.array([[1, 0], [0, 2], [0, 0], [-3, 0]], dtype=np.float32)

    scores = cosine_scores(np.array([2, 0], dtype=np.float32), matrix)

    np.testing.assert_allclose(scores, [1, 0, 0, -1])
    np.testing.assert_array_equal(cosine_scores(np.zeros(2), matrix), [0, 0, 0, 0])


def test_get_provider_builds_hashing_and_rejects_unknown_names() -> None:
    provider = get_provider("hashing", dimensions=64)

    assert (type(provider), provider.dimensions) == (HashingEmbedder, 64)
    with pytest.raises(ValueError, match="Unknown embedding provider 'word2vec'"):
        get_provider("word2vec")
    with pytest.raises(ValueError, match="needs a model_name"):
        get_provider("sentence-transformers")


def test_sentence_transformers_missing_gives_an_actionable_import_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)

    with pytest.raises(ImportError, match="pip install sentence-transformers"):
        get_provider("sentence-transformers", model_name="all-MiniLM-L6-v2")


class _FakeModel:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_sentence_embedding_dimension(self) -> int:
        return 3

    def encode(self, texts: Sequence[str], **options: object) -> np.ndarray:
        assert options["batch_size"] == 8
        return np.array([[len(text), 0, 0] for text in texts], dtype=np.float64)


def test_sentence_transformer_embedder_wraps_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("sentence_transformers")
    module.SentenceTransformer = _FakeModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)

    embedder = SentenceTransformerEmbedder("tiny-model", batch_size=8)
    vectors = embedder.embed(["ab", "abcd"])

    assert (embedder.name, embedder.dimensions) == ("st:tiny-model", 3)
    assert vectors.dtype == np.float32
    np.testing.assert_array_equal(vectors, [[1, 0, 0], [1, 0, 0]])
    assert embedder.embed([]).shape == (0, 3)
