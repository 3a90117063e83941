"""Reads for the documents app: hybrid chunk search and progress snapshots."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Q, QuerySet

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


# ts_rank reads each matching row's tsvector, most often out of line (TOAST): about 10-20 us a
# row, so ranking every chunk that holds a common word (a third of a million-chunk table) took
# seconds. Only the first RANK_CAP matches are ranked; below the cap the ranking is exact.
RANK_CAP = 2000


def _candidates_postgres(query: str, agent: Agent | None) -> list[dict[str, Any]]:
    """The CANDIDATES best full-text matches, ranked among at most RANK_CAP matching chunks.

    Trade-off: a query matching more than RANK_CAP chunks (a common word) is ranked within the
    first RANK_CAP matches the GIN index yields (table order: mostly the oldest chunks), not
    over all of them, so better chunks elsewhere can be missed (for a single common word the
    best ts_rank found is about the same: many chunks repeat it as often). Queries matching
    fewer chunks (rare words; several words, which websearch_to_tsquery ANDs) are ranked
    exactly as before. The cost is bounded by RANK_CAP instead of growing with the table: the
    GIN bitmap, then RANK_CAP heap rows and ts_rank calls.

    Quoted phrases: the index answers the words ANDed, and adjacency is checked only on the
    capped rows (PostgreSQL would otherwise read every row holding all the words to check it),
    so a phrase of common words is found only among the first RANK_CAP chunks holding them.

    The matches are a MATERIALIZED CTE without LIMIT: planned for all rows it is a GIN bitmap
    scan, read lazily up to the cap. With the LIMIT inside, PostgreSQL prefers a sequential or
    document_id index scan evaluating @@ row by row, detoasting every tsvector it passes.
    """
    params: dict[str, Any] = {
        "config": SEARCH_CONFIG,
        "query": query,
        "done": DocumentStatus.DONE,
        "agent": agent.pk if agent is not None else None,
        "cap": RANK_CAP,
        "candidates": CANDIDATES,
    }
    # For this statement only (set, then put back, in a savepoint): no JIT, whose compilation
    # (~250 ms) the full-table estimate of `matched` would trigger although only the first
    # rows are read; and no sequential scan, so `matched` stays a GIN bitmap scan even for a
    # word in most chunks instead of evaluating @@ on row after row.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit'), current_setting('enable_seqscan')")
        saved = cursor.fetchone()
        cursor.execute(
            "SELECT set_config('jit', 'off', true), set_config('enable_seqscan', 'off', true)"
        )
        cursor.execute(_SEARCH_ALL if agent is None else _SEARCH_AGENT, params)
        rows = [dict(zip((*_FIELDS, "text_score"), row, strict=True)) for row in cursor]
        cursor.execute(
            "SELECT set_config('jit', %s, true), set_config('enable_seqscan', %s, true)", saved
        )
    return rows


_TSQUERY = "websearch_to_tsquery(%(config)s::regconfig, %(query)s)"
# The query with its phrase operators (<->, <N>) made ANDs, which the GIN index answers without
# reading the rows; left as it is when it has a NOT (relaxing under a NOT would narrow it).
# Constant arguments: PostgreSQL folds both expressions into constants when planning.
_RELAXED = (
    f"(CASE WHEN strpos({_TSQUERY}::text, '!') > 0 THEN {_TSQUERY} "
    f"ELSE regexp_replace({_TSQUERY}::text, '<(-|[0-9]+)>', '&', 'g')::tsquery END)"
)
# Rank the capped matches, keep the best CANDIDATES, then fetch their documents' names: per
# row, by primary key, never by a hash join that reads the whole documents table.
_RANKED = f"""
    ranked AS MATERIALIZED (
        SELECT c.id, c.document_id, c.ordinal, c.page_start, c.page_end, c.text, c.embedding,
               ts_rank(c.search_vector, {_TSQUERY}) AS text_score
        FROM capped JOIN documents_chunk c ON c.id = capped.id
        WHERE {_RELAXED} = {_TSQUERY} OR c.search_vector @@ {_TSQUERY}
        ORDER BY text_score DESC, c.id
        LIMIT %(candidates)s
    )
    SELECT r.id, r.document_id,
           (SELECT original_name FROM documents_document WHERE id = r.document_id),
           (SELECT source_url FROM documents_document WHERE id = r.document_id),
           r.ordinal, r.page_start, r.page_end, r.text, r.embedding, r.text_score
    FROM ranked r
    ORDER BY r.text_score DESC, r.id
"""  # noqa: S608
_SEARCH_ALL = f"""
    WITH matched AS MATERIALIZED (
        SELECT id, document_id FROM documents_chunk WHERE search_vector @@ {_RELAXED}
    ),
    capped AS MATERIALIZED (
        SELECT id FROM matched
        WHERE (SELECT status FROM documents_document WHERE id = document_id) = %(done)s
        LIMIT %(cap)s
    ),
    {_RANKED}
"""  # noqa: S608
_SEARCH_AGENT = f"""
    WITH matched AS MATERIALIZED (
        SELECT id FROM documents_chunk
        WHERE search_vector @@ {_RELAXED}
          AND document_id = ANY(ARRAY(
              SELECT id FROM documents_document WHERE agent_id = %(agent)s AND status = %(done)s
          ))
    ),
    capped AS MATERIALIZED (SELECT id FROM matched LIMIT %(cap)s),
    {_RANKED}
"""  # noqa: S608


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
    if connection.vendor == "postgresql":
        rows = _candidates_postgres(query, agent)
    else:
        chunks = Chunk.objects.filter(document__status=DocumentStatus.DONE)
        if agent is not None:
            chunks = chunks.filter(document__agent=agent)
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
