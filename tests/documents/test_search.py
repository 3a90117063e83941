"""Hybrid chunk search on PostgreSQL: ranking, the rank cap, scoping and exclusions."""

from __future__ import annotations

import pytest
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection
from django.db.models import F

from documents import selectors
from documents.bulk import insert_chunks
from documents.models import Agent, Chunk, Document, DocumentStatus, Organization
from documents.pipeline import ChunkResult
from documents.pipeline.embed import HashingEmbedder, vector_to_bytes

pytestmark = pytest.mark.django_db

FILLER = "the quarterly figures were reviewed by the finance team before the board meeting"


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("full-text search ranking needs PostgreSQL (DATABASE_URL)")


def add_document(
    agent: Agent, texts: list[str], *, status: str = DocumentStatus.DONE, name: str = ""
) -> Document:
    """A document with these chunks, stored as the pipeline stores them."""
    document = Document.objects.create(
        agent=agent, status=status, original_name=name or "doc.pdf", chunk_count=len(texts)
    )
    vectors = HashingEmbedder(256).embed(texts)
    insert_chunks(
        document.pk,
        [
            ChunkResult(
                ordinal=ordinal,
                text=text,
                page_start=ordinal + 1,
                page_end=ordinal + 1,
                keywords=[],
                embedding=vector_to_bytes(vector),
            )
            for ordinal, (text, vector) in enumerate(zip(texts, vectors, strict=True))
        ],
        search_config=selectors.SEARCH_CONFIG,
    )
    return document


def chunk_id(document: Document, ordinal: int = 0) -> int:
    return Chunk.objects.get(document=document, ordinal=ordinal).pk


def test_chunks_that_match_better_rank_first(agent):
    once = add_document(agent, [f"{FILLER} invoice"], name="once.pdf")
    often = add_document(agent, [f"invoice {FILLER} invoice overdue invoice"], name="often.pdf")
    add_document(agent, [FILLER], name="none.pdf")

    hits = selectors.chunk_search("invoice", agent=agent)

    assert [hit.document_id for hit in hits] == [often.pk, once.pk]
    assert hits[0].text_score > hits[1].text_score > 0
    assert hits[0].score > hits[1].score
    assert hits[0].document_name == "often.pdf"
    assert hits[0].pages == "1"


def test_words_are_anded_and_stemmed(agent):
    both = add_document(agent, [f"{FILLER} overdue invoices"])
    add_document(agent, [f"{FILLER} invoice"])

    hits = selectors.chunk_search("overdue invoice", agent=agent)

    assert [hit.document_id for hit in hits] == [both.pk]


def test_a_quoted_phrase_needs_the_words_next_to_each_other(agent):
    phrase = add_document(agent, [f"{FILLER} overdue invoice"])
    apart = add_document(agent, [f"invoice {FILLER} overdue"])

    hits = selectors.chunk_search('"overdue invoice"', agent=agent)
    excluded = selectors.chunk_search('invoice -"overdue invoice"')

    assert [hit.document_id for hit in hits] == [phrase.pk]
    assert [hit.document_id for hit in selectors.chunk_search('"overdue invoice"')] == [phrase.pk]
    assert [hit.document_id for hit in excluded] == [apart.pk]


def test_below_the_cap_the_ranking_is_exact(agent):
    documents = [
        add_document(agent, [f"{FILLER} " + " ".join(["invoice"] * (1 + n % 4)) + f" n{n}"])
        for n in range(12)
    ]
    tsquery = SearchQuery("invoice", config=selectors.SEARCH_CONFIG, search_type="websearch")
    expected = list(
        Chunk.objects.filter(search_vector=tsquery)
        .annotate(rank=SearchRank(F("search_vector"), tsquery))
        .order_by("-rank", "pk")
        .values_list("pk", flat=True)
    )

    hits = selectors._candidates_postgres("invoice", None)

    assert len(expected) == len(documents) < selectors.RANK_CAP
    assert [row["pk"] for row in hits] == expected


def test_a_common_word_returns_the_best_matches_within_the_cap(agent, monkeypatch):
    monkeypatch.setattr(selectors, "RANK_CAP", 5)
    best = add_document(agent, [f"invoice invoice {FILLER} invoice invoice"])
    others = add_document(agent, [f"{FILLER} invoice {n}" for n in range(20)])

    hits = selectors.chunk_search("invoice", agent=agent, limit=50)
    unscoped = selectors.chunk_search("invoice", limit=50)

    for result in (hits, unscoped):
        assert len(result) == 5  # ranked within the cap, not over all 21 matches
        assert result[0].chunk_id == chunk_id(best)
        assert {hit.document_id for hit in result} <= {best.pk, others.pk}
        assert all("invoice" in hit.text for hit in result)


def test_search_is_scoped_to_the_agent(agent):
    other_agent = Agent.objects.create(
        organization=Organization.objects.create(name="Other", slug="other"),
        name="Other bot",
        slug="other",
    )
    mine = add_document(agent, [f"{FILLER} invoice"])
    theirs = add_document(other_agent, [f"invoice {FILLER} invoice invoice"])

    assert {hit.document_id for hit in selectors.chunk_search("invoice", agent=agent)} == {mine.pk}
    assert [hit.document_id for hit in selectors.chunk_search("invoice", agent=other_agent)] == [
        theirs.pk
    ]
    assert selectors.document_ids_matching("invoice") == [theirs.pk, mine.pk]
    assert selectors.document_ids_matching("invoice", agent=agent) == [mine.pk]


@pytest.mark.parametrize("query", ["zyzzogeton", "the", "", "   ", '"finance invoice"'])
def test_nothing_matches(agent, query):
    add_document(agent, [f"{FILLER} invoice"])

    assert selectors.chunk_search(query, agent=agent) == []
    assert selectors.chunk_search(query) == []
    assert selectors.document_ids_matching(query) == []


@pytest.mark.parametrize(
    "status",
    [
        DocumentStatus.QUEUED,
        DocumentStatus.PROCESSING,
        DocumentStatus.FAILED,
        DocumentStatus.CANCELLED,
        DocumentStatus.DUPLICATE,
    ],
)
def test_only_done_documents_are_searched(agent, status):
    done = add_document(agent, [f"{FILLER} invoice"])
    add_document(agent, [f"invoice {FILLER} invoice invoice"], status=status)

    assert [hit.document_id for hit in selectors.chunk_search("invoice")] == [done.pk]
    assert [hit.document_id for hit in selectors.chunk_search("invoice", agent=agent)] == [done.pk]


def test_documents_best_first_each_once(agent):
    first = add_document(agent, ["invoice invoice invoice overdue", f"{FILLER} invoice"])
    second = add_document(agent, [f"{FILLER} invoice paid"])

    assert selectors.document_ids_matching("invoice") == [first.pk, second.pk]


def test_the_planner_settings_are_put_back(agent):
    add_document(agent, [f"{FILLER} invoice"])

    def settings() -> tuple[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('jit'), current_setting('enable_seqscan')")
            return cursor.fetchone()

    before = settings()
    assert selectors.chunk_search("invoice")
    assert settings() == before


def test_a_full_size_chunk_is_stored_lz4_compressed_and_read_back_whole(agent):
    # About 1,300 characters: with its tsvector and embedding, over the 2 KB toast threshold.
    text = " ".join(f"{FILLER} invoice {n}" for n in range(16))
    document = add_document(agent, [text])

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_column_compression(text), pg_column_compression(embedding),"
            " pg_column_compression(search_vector) FROM documents_chunk WHERE document_id = %s",
            [document.pk],
        )
        compressed = cursor.fetchone()
    # Compressed largest first until the row fits: some columns may be left as they are.
    assert "lz4" in compressed
    assert set(compressed) <= {"lz4", None}
    chunk = Chunk.objects.get(document=document)
    assert chunk.text == text
    assert bytes(chunk.embedding) == vector_to_bytes(HashingEmbedder(256).embed([text])[0])
    assert [hit.chunk_id for hit in selectors.chunk_search("invoice")] == [chunk.pk]
