"""Reads for the documents app: hybrid chunk search and progress snapshots."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection
from django.db.models import F, Q, QuerySet

from documents.models import Agent, Chunk, Document, DocumentStatus

SEARCH_CONFIG = "english"
# Full-text candidates reranked by embedding similarity: wide enough for recall, small enough
# that the rerank is a single numpy product.
CANDIDATES = 100
TEXT_WEIGHT = 0.6
VECTOR_WEIGHT = 0.4


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    document_name: str
    ordinal: int
    pages: str
    text: str
    text_score: float
    similarity: float
    score: float


def _candidates_postgres(query: str, chunks: QuerySet[Chunk]) -> list[dict[str, Any]]:
    tsquery = SearchQuery(query, config=SEARCH_CONFIG, search_type="websearch")
    return list(
        chunks.filter(search_vector=tsquery)
        .annotate(text_score=SearchRank(F("search_vector"), tsquery))
        .order_by("-text_score", "pk")
        .values(*_FIELDS, "text_score")[:CANDIDATES]
    )


def _terms(query: str) -> list[str]:
    return [t for t in re.findall(r"\w+", query.lower()) if len(t) > 1][:10]


def _candidates_plain(query: str, chunks: QuerySet[Chunk]) -> list[dict[str, Any]]:
    """SQLite fallback: chunks containing any term, scored by how many terms they hold."""
    terms = _terms(query)
    if not terms:
        return []
    matches = Q()
    for term in terms:
        matches |= Q(text__icontains=term)
    rows = list(chunks.filter(matches).values(*_FIELDS)[: CANDIDATES * 5])
    for row in rows:
        lowered = row["text"].lower()
        row["text_score"] = sum(lowered.count(term) > 0 for term in terms) / len(terms)
    rows.sort(key=lambda row: (-row["text_score"], row["pk"]))
    return rows[:CANDIDATES]


_FIELDS = (
    "pk",
    "document_id",
    "document__original_name",
    "document__source_url",
    "ordinal",
    "page_start",
    "page_end",
    "text",
    "embedding",
)


def _pages(start: int | None, end: int | None) -> str:
    if start is None:
        return ""
    return str(start) if end in (None, start) else f"{start}-{end}"


def chunk_search(query: str, agent: Agent | None = None, limit: int = 10) -> list[SearchHit]:
    """Hybrid search: full-text candidates, reranked by cosine similarity of embeddings.

    PostgreSQL ranks with a GIN-indexed tsvector; elsewhere a plain substring match stands in.
    Scores are comparable within one result list only.
    """
    from documents.services import embedding_provider

    query = query.strip()
    if not query:
        return []
    chunks = Chunk.objects.filter(document__status=DocumentStatus.DONE)
    if agent is not None:
        chunks = chunks.filter(document__agent=agent)
    if connection.vendor == "postgresql":
        rows = _candidates_postgres(query, chunks)
    else:
        rows = _candidates_plain(query, chunks)
    if not rows:
        return []

    provider = embedding_provider()
    query_vector = provider.embed([query])[0]
    similarities = np.zeros(len(rows), dtype=np.float32)
    for index, row in enumerate(rows):
        embedding = row["embedding"]
        if embedding and len(embedding) == query_vector.nbytes:
            vector = np.frombuffer(bytes(embedding), dtype="<f4")
            similarities[index] = max(float(vector @ query_vector), 0.0)
    best_text = max(float(row["text_score"]) for row in rows) or 1.0

    hits = [
        SearchHit(
            chunk_id=row["pk"],
            document_id=row["document_id"],
            document_name=row["document__original_name"] or row["document__source_url"],
            ordinal=row["ordinal"],
            pages=_pages(row["page_start"], row["page_end"]),
            text=row["text"],
            text_score=float(row["text_score"]),
            similarity=float(similarities[index]),
            score=TEXT_WEIGHT * float(row["text_score"]) / best_text
            + VECTOR_WEIGHT * float(similarities[index]),
        )
        for index, row in enumerate(rows)
    ]
    hits.sort(key=lambda hit: (-hit.score, hit.chunk_id))
    return hits[:limit]


def document_ids_matching(query: str, agent: Agent | None = None, limit: int = 500) -> list[int]:
    """Documents whose chunks match, best first (the admin's search box)."""
    seen: dict[int, None] = {}
    for hit in chunk_search(query, agent=agent, limit=limit):
        seen.setdefault(hit.document_id)
    return list(seen)


def document_progress(document_ids: list[int]) -> list[dict[str, Any]]:
    """A small snapshot per document for the admin's progress polling."""
    return list(
        Document.objects.filter(pk__in=document_ids[:500])
        .order_by()
        .values(
            "pk",
            "status",
            "stage",
            "progress",
            "error",
            "chunk_count",
            "page_count",
        )
    )
