"""What storing chunks costs PostgreSQL: the chunk INSERT taken apart, per 1,000 chunks.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/docflow \
    python bench/chunk_store.py [--documents 200] [--repeat 15]

The chunks come from the real pipeline over the efficiency benchmark's generated 5-page PDFs
(text, keywords, embeddings as a worker makes them). Each document's chunks are sent as a
worker sends them (`documents.bulk`: one `INSERT … SELECT … FROM unnest(…)` with
`to_tsvector`, parameters in binary, synchronous_commit off) into the chunk table as migrated
(LZ4), then with one part changed at a time: its columns set back to pglz (PostgreSQL's
default), without the GIN index, without the foreign key to the document. Beside them, over
the same arrays: the round trip alone (sent and unnested, nothing stored) and `to_tsvector`
alone. The differences say what each part of the INSERT costs the server. The variants take
turns --repeat times, each on an emptied table, and the fastest run of each counts (the least
disturbed, on a machine whose speed drifts). This is most of the database's share in the
efficiency benchmark: the work that makes chunks searchable.

Database `<name>_chunk_store_bench` (recreated; the table is put back as migrated after each
variant). Nothing is sent to Redis. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import bench_database_url, create_database, make_corpus  # noqa: E402

COLUMNS = ("text", "keywords", "embedding", "search_vector")
GIN_INDEX = "chunk_search_vector_gin"
_SENT_ONLY = """
    SELECT count(*) FROM unnest(%b::int[], %b::text[], %b::int[], %b::int[], %b::text[],
                                %b::bytea[]) AS c(ordinal, text, page_start, page_end,
                                                   keywords, embedding)
"""
_TSVECTOR_ONLY = "SELECT sum(length(to_tsvector(%s::regconfig, t))) FROM unnest(%b::text[]) t"


def documents_with_chunks(count: int) -> list[tuple[int, list[Any]]]:
    """(document id, its chunks) for `count` generated PDFs run through the pipeline."""
    from documents import pipeline, services
    from documents.models import Agent, Document, DocumentStatus, Organization

    organization = Organization.objects.create(name="Bench", slug="bench")
    agent = Agent.objects.create(organization=organization, name="Bench", slug="bench")
    config = services._pipeline_config()
    out = []
    with tempfile.TemporaryDirectory(prefix="docflow-chunk-store-") as folder:
        for path in make_corpus(Path(folder), count, pages=5):
            result = pipeline.run_pipeline(path, name=path.name, config=config)
            # Done: no processing is queued for it (the chunks are stored here).
            document = Document.objects.create(
                agent=agent, original_name=path.name, status=DocumentStatus.DONE
            )
            out.append((document.pk, result.chunks))
    return out


def _timed(run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def figures(best: dict[str, float], chunks: int, documents: int) -> dict[str, Any]:
    """Each variant's fastest time per 1,000 chunks, and what each part of the INSERT costs
    the server: the round trip (sent_only) taken off, then one part left out at a time."""
    per_thousand = {name: round(seconds / chunks * 1e6, 1) for name, seconds in best.items()}
    sent = per_thousand["sent_only"]
    stored = per_thousand["stored_lz4"]
    insert = stored - sent
    tsvector = per_thousand["to_tsvector_only"] - sent
    parts = {
        "to_tsvector": round(tsvector, 1),
        "gin_index": round(stored - per_thousand["stored_without_gin"], 1),
        "foreign_key_checks": round(stored - per_thousand["stored_without_foreign_key"], 1),
    }
    parts["rest"] = round(insert - sum(parts.values()), 1)  # heap, B-trees, commit, LZ4
    return {
        "documents": documents,
        "chunks": chunks,
        "chunks_per_document": round(chunks / documents, 2),
        "ms_per_1000_chunks": per_thousand,
        "insert_server_ms_per_1000_chunks": round(insert, 1),
        "insert_server_ms_per_document": round(insert * chunks / documents / 1000, 3),
        "insert_parts_ms_per_1000_chunks": parts,
        "pglz_instead_of_lz4_costs": round(per_thousand["stored_pglz"] / stored - 1, 3),
    }


def measure(documents: list[tuple[int, list[Any]]], repeat: int) -> dict[str, Any]:
    import psycopg
    from django.db import connection

    from documents.bulk import _INSERT_CHUNKS_BINARY, _chunk_params
    from documents.selectors import SEARCH_CONFIG

    connection.ensure_connection()
    raw = connection.connection
    raw.execute("SET synchronous_commit TO off")  # as a worker's chunk writes commit
    gin = raw.execute("SELECT pg_get_indexdef(%s::regclass)", [GIN_INDEX]).fetchone()[0]
    name, foreign_key = raw.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'documents_chunk'::regclass AND contype = 'f'"
    ).fetchone()
    params = [_chunk_params(pk, chunks, SEARCH_CONFIG) for pk, chunks in documents]
    chunks = sum(len(chunks) for _, chunks in documents)

    def each(sql: str, args: Callable[[list[Any]], list[Any]]) -> Callable[[], None]:
        def run() -> None:
            with psycopg.Cursor(raw) as cursor:
                for p in params:
                    cursor.execute(sql, args(p), prepare=False)

        return run

    def ddl(*statements: str) -> Callable[[], None]:
        def run() -> None:
            raw.execute("TRUNCATE documents_chunk")
            for statement in statements:
                raw.execute(statement)

        return run

    def compression(method: str) -> str:
        columns = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION {method}" for c in COLUMNS)
        return f"ALTER TABLE documents_chunk {columns}"

    insert = each(_INSERT_CHUNKS_BINARY, lambda p: p)
    nothing = ddl()
    # name: (set the table up, run, put it back as migrated)
    variants: dict[str, tuple[Callable[[], None], Callable[[], None], Callable[[], None]]] = {
        "stored_lz4": (nothing, insert, nothing),
        "stored_pglz": (ddl(compression("pglz")), insert, ddl(compression("lz4"))),
        "stored_without_gin": (ddl(f"DROP INDEX {GIN_INDEX}"), insert, ddl(gin)),
        "stored_without_foreign_key": (
            ddl(f"ALTER TABLE documents_chunk DROP CONSTRAINT {name}"),
            insert,
            ddl(f"ALTER TABLE documents_chunk ADD CONSTRAINT {name} {foreign_key}"),
        ),
        "sent_only": (nothing, each(_SENT_ONLY, lambda p: p[2:]), nothing),
        "to_tsvector_only": (nothing, each(_TSVECTOR_ONLY, lambda p: [p[1], p[3]]), nothing),
    }
    best: dict[str, float] = {}
    for turn in range(repeat + 1):  # the first turn warms the caches and is not counted
        for variant, (setup, run, restore) in variants.items():
            setup()
            try:
                seconds = _timed(run)
            finally:
                restore()
            if turn:
                best[variant] = min(best.get(variant, seconds), seconds)
    return figures(best, chunks, len(documents))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--json", action="store_true", help="(the output is always JSON)")
    args = parser.parse_args()

    database_url = bench_database_url("_chunk_store_bench")
    os.environ.update(
        DATABASE_URL=database_url, LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="config.settings"
    )
    os.environ.pop("CELERY_BROKER_URL", None)  # nothing is enqueued
    create_database(database_url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    documents = documents_with_chunks(args.documents)
    print(json.dumps(measure(documents, args.repeat), indent=2))


if __name__ == "__main__":
    main()
