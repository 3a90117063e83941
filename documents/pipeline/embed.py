"""Chunk embeddings behind one small interface.

The default, ``HashingEmbedder``, needs no model, no download and no GPU: it hashes words and
word pairs into a fixed-size signed vector. It captures lexical overlap, not meaning, but it is
deterministic, nearly free and good enough to rank chunks that share vocabulary with a query.
A real model (``SentenceTransformerEmbedder``) plugs in through the same protocol when the
optional package is installed.

Vectors are stored as float32 little-endian bytes so any database column of bytes can hold them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from typing import Any, Protocol, runtime_checkable

import numpy as np

VECTOR_DTYPE = np.dtype("<f4")
_WORD = re.compile(r"\w+")


@runtime_checkable
class EmbeddingProvider(Protocol):
    name: str
    dimensions: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return an (n, dimensions) float32 array of L2-normalised rows (zero for no tokens)."""
        ...


class HashingEmbedder:
    """Signed feature hashing of lowercased unigrams and bigrams with sublinear term frequency.

    The hash is blake2b, not Python's ``hash()``, which is salted per process: vectors must
    match across workers and restarts or stored embeddings stop matching new queries.
    The sign bit spreads collisions so they cancel out on average instead of piling up.
    """

    def __init__(self, dimensions: int = 256) -> None:
        if dimensions < 1:
            raise ValueError("dimensions must be positive")
        self.dimensions = dimensions
        self.name = f"hashing-{dimensions}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        matrix = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            self._fill_row(matrix[row], text)
        return normalise_rows(matrix)

    def _fill_row(self, row: np.ndarray, text: str) -> None:
        tokens = _WORD.findall(text.lower())
        features = Counter(tokens)
        features.update(f"{first} {second}" for first, second in pairwise(tokens))
        if not features:
            return
        slots = np.empty(len(features), dtype=np.int64)
        weights = np.empty(len(features), dtype=np.float32)
        for position, (feature, count) in enumerate(features.items()):
            slot, sign = _feature_slot(feature, self.dimensions)
            slots[position] = slot
            weights[position] = sign * (1.0 + math.log(count))
        np.add.at(row, slots, weights)


@lru_cache(maxsize=8192)  # ~2 MB per worker process when full (65,536 held ~17 MB)
def _feature_slot(feature: str, dimensions: int) -> tuple[int, float]:
    """Column and sign of a feature; cached because words repeat across chunks."""
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return digest % dimensions, 1.0 if digest >> 63 else -1.0


class SentenceTransformerEmbedder:
    """A sentence-transformers model; imported lazily so the default install does not need it."""

    def __init__(self, model_name: str, batch_size: int = 32) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ImportError(
                "The 'sentence-transformers' embedding provider needs the sentence-transformers "
                "package and a locally available model: pip install sentence-transformers, or "
                "use the 'hashing' provider."
            ) from exc
        self.model_name = model_name
        self.batch_size = batch_size
        self.name = f"st:{model_name}"
        self._model: Any = SentenceTransformer(model_name)
        self.dimensions = int(self._model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalise_rows(np.asarray(vectors, dtype=np.float32))


def get_provider(
    name: str = "hashing", *, dimensions: int = 256, model_name: str = ""
) -> EmbeddingProvider:
    """Build the provider a setting names: "hashing" or "sentence-transformers"."""
    if name == "hashing":
        return HashingEmbedder(dimensions)
    if name == "sentence-transformers":
        if not model_name:
            raise ValueError("The 'sentence-transformers' provider needs a model_name.")
        return SentenceTransformerEmbedder(model_name)
    raise ValueError(
        f"Unknown embedding provider {name!r}; use 'hashing' or 'sentence-transformers'."
    )


def normalise_rows(matrix: np.ndarray) -> np.ndarray:
    """Scale each row to unit length in place; all-zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=VECTOR_DTYPE).tobytes()


def vector_from_bytes(data: bytes) -> np.ndarray:
    if len(data) % VECTOR_DTYPE.itemsize:
        raise ValueError(f"Vector bytes must be a multiple of {VECTOR_DTYPE.itemsize} long.")
    return np.frombuffer(data, dtype=VECTOR_DTYPE).astype(np.float32)


def cosine_scores(query: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Cosine similarity of ``query`` (d,) with each row of ``matrix`` (n, d); 0 for zero rows."""
    query = np.asarray(query, dtype=np.float32).ravel()
    matrix = np.asarray(matrix, dtype=np.float32).reshape(-1, query.shape[0])
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(query)
    dots = matrix @ query
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)
