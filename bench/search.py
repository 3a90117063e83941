"""Search benchmark: hybrid chunk search p50/p95 over 1,000,000 chunks, and at a tenth of that.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/docflow \
    python bench/search.py [--chunks 1000000] [--repeat 2] [--save hits.json] [--compare hits.json]

For each scale (N/10 and N chunks) uses the database `<name>_search_bench_<chunks>`, kept
between runs: it is recreated and filled only when it does not hold exactly that many chunks.
Nothing is sent to Redis.

Text: English-like sentences over a 50,000-word vocabulary (English function words first, then
common English content words, then pronounceable made-up words) drawn with a Zipf distribution
(s = 1), 150-250 words per chunk, so a common word is in a third of the chunks and a rare one in
a few hundred per million. Embeddings come from the default `HashingEmbedder` (256 dimensions,
computed in a pool of processes) and the chunks are written by `documents.bulk.insert_chunks`
(tsvector computed by PostgreSQL, as in production); the GIN index of migration 0002 is dropped
during the load and rebuilt after. 10 chunks per document on average, all documents done, over
100 agents of 10 organizations.

A fixed set of ~100 queries in classes of selectivity (rare word, medium word, common word,
two words, quoted phrase, nothing matches, and common/medium words scoped to one agent) runs
once to warm up, then --repeat times through `chunk_search` (limit 10) and
`document_ids_matching` (limit 500, the admin's search box). Prints one JSON object: p50, p95
and max in milliseconds per class and overall, the matching rows per class, generation time,
and the growth of each figure from N/10 to N chunks.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

VOCABULARY = 50_000
ZIPF_S = 1.0
CHUNKS_PER_BATCH = 5_000
AGENTS = 100
ORGANIZATIONS = 10
SEARCH_CONFIG = "english"
GIN_INDEX = "chunk_search_vector_gin"

FUNCTION_WORDS = (  # noqa: SIM905
    "the of and to a in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no will can more other its into may our also than only these some any such what"
).split()
CONTENT_WORDS = (  # noqa: SIM905
    "time system data report customer service product order account payment support process "
    "information company policy request team month year business market price contract "
    "document agent user access network security software update issue change result model "
    "number project management quality delivery invoice record review plan level rate cost "
    "value period section table page figure analysis performance control standard operation "
    "method risk program development research energy water health patient treatment study "
    "group member country state government law court case children school student teacher "
    "family home house room door window street city river mountain weather season morning "
    "evening night light sound music picture letter message phone email website server "
    "database backup storage memory screen keyboard printer office meeting schedule budget "
    "revenue profit loss tax insurance claim benefit employee manager director board "
    "shareholder investor bank loan credit debit transfer balance statement audit compliance "
    "regulation license permit application form field option setting feature version release"
).split()
ONSETS = "b c d f g h j k l m n p r s t v w z br ch cl cr dr fl fr gl gr pl pr sh st th tr".split()  # noqa: SIM905
VOWELS = "a e i o u ai ea ee oa ou io".split()  # noqa: SIM905
CODAS = ["", "", "", "n", "r", "l", "s", "t", "m", "nd", "st", "rk"]


def vocabulary() -> list[str]:
    """Deterministic: function words, content words, then made-up words of 2-4 syllables."""
    import numpy as np

    words = list(dict.fromkeys(FUNCTION_WORDS + CONTENT_WORDS))
    seen = set(words)
    rng = np.random.default_rng(20260310)
    while len(words) < VOCABULARY:
        syllables = int(rng.integers(2, 5))
        word = "".join(
            ONSETS[rng.integers(len(ONSETS))]
            + VOWELS[rng.integers(len(VOWELS))]
            + CODAS[rng.integers(len(CODAS))]
            for _ in range(syllables)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


_WORDS: Any = None
_CDF: Any = None


def _init_worker() -> None:
    global _WORDS, _CDF
    import numpy as np

    _WORDS = np.array(vocabulary(), dtype=object)
    weights = 1.0 / np.arange(1, VOCABULARY + 1) ** ZIPF_S
    _CDF = np.cumsum(weights / weights.sum())


def chunk_texts(batch: int, count: int) -> list[str]:
    """`count` chunk texts of batch number `batch` (deterministic)."""
    import numpy as np

    rng = np.random.default_rng(batch)
    lengths = rng.integers(150, 251, size=count)
    ids = np.searchsorted(_CDF, rng.random(int(lengths.sum())))
    ids = np.minimum(ids, VOCABULARY - 1)
    words = _WORDS[ids]
    texts = []
    start = 0
    for length in lengths:
        chunk = words[start : start + length].tolist()
        start += length
        # Sentences of 8-20 words: capitalised, ending with a full stop.
        out = []
        position = 0
        while position < len(chunk):
            size = 8 + (position * 7 + len(chunk)) % 13
            sentence = chunk[position : position + size]
            sentence[0] = sentence[0].capitalize()
            out.append(" ".join(sentence) + ".")
            position += size
        texts.append(" ".join(out))
    return texts


def make_batch(batch: int) -> tuple[int, list[str], list[bytes]]:
    from documents.pipeline.embed import HashingEmbedder, vector_to_bytes

    texts = chunk_texts(batch, CHUNKS_PER_BATCH)
    vectors = HashingEmbedder(256).embed(texts)
    return batch, texts, [vector_to_bytes(vector) for vector in vectors]


BASE_URL = os.environ.get("DATABASE_URL", "")


def database_url(chunks: int) -> str:
    url = BASE_URL
    if not url.startswith("postgres"):
        sys.exit("DATABASE_URL must point at PostgreSQL")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + f"_search_bench_{chunks}"))


def chunk_count(url: str) -> int:
    """Chunks in the database at `url`, created if missing; -1 when it has no schema yet."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            return -1
    with psycopg.connect(url) as bench:
        if not bench.execute("SELECT to_regclass('documents_chunk')").fetchone()[0]:
            return -1
        return bench.execute("SELECT count(*) FROM documents_chunk").fetchone()[0]


def use_database(url: str) -> None:
    """Point Django's default connection at `url` and migrate it."""
    from django.core.management import call_command
    from django.db import connections

    connection = connections["default"]
    connection.close()
    connection.settings_dict["NAME"] = urlsplit(url).path.lstrip("/")
    call_command("migrate", verbosity=0)


def generate(chunks: int, processes: int) -> dict[str, Any]:
    from django.db import connection, transaction

    from documents.bulk import insert_chunks, insert_documents
    from documents.models import Agent, Organization
    from documents.pipeline import ChunkResult

    timings: dict[str, Any] = {}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE documents_chunk, documents_document, documents_agent, "
            "documents_organization RESTART IDENTITY CASCADE"
        )
        cursor.execute(f"DROP INDEX IF EXISTS {GIN_INDEX}")
    organizations = Organization.objects.bulk_create(
        Organization(name=f"Org {i}", slug=f"org-{i}") for i in range(ORGANIZATIONS)
    )
    agents = Agent.objects.bulk_create(
        Agent(organization=organizations[i % ORGANIZATIONS], name=f"Agent {i}", slug=f"agent-{i}")
        for i in range(AGENTS)
    )
    batches = -(-chunks // CHUNKS_PER_BATCH)
    embed_seconds = 0.0
    insert_seconds = 0.0
    documents = 0
    context = multiprocessing.get_context("fork")
    connection.close()  # not shared with the forked workers
    now = datetime.now(UTC)
    with context.Pool(processes, initializer=_init_worker) as pool:
        produced = time.perf_counter()
        for batch, texts, embeddings in pool.imap(make_batch, range(batches)):
            embed_seconds += time.perf_counter() - produced
            count = min(CHUNKS_PER_BATCH, chunks - batch * CHUNKS_PER_BATCH)
            texts, embeddings = texts[:count], embeddings[:count]
            began = time.perf_counter()
            # Documents of 5-15 chunks (10 on average).
            sizes = []
            while sum(sizes) < count:
                sizes.append(min(5 + (len(sizes) * 7 + batch) % 11, count - sum(sizes)))
            with transaction.atomic():
                ids = insert_documents(
                    [
                        {
                            "agent_id": agents[(documents + i) % AGENTS].pk,
                            "original_name": f"doc-{documents + i}.pdf",
                            "kind": "pdf",
                            "status": "done",
                            "created_at": now,
                            "finished_at": now,
                            "stage": "done",
                            "progress": 100,
                            "chunk_count": size,
                            "embedding_model": "hashing-256",
                        }
                        for i, size in enumerate(sizes)
                    ]
                )
                start = 0
                for document_id, size in zip(ids, sizes, strict=True):
                    insert_chunks(
                        document_id,
                        [
                            ChunkResult(
                                ordinal=ordinal,
                                text=texts[start + ordinal],
                                page_start=1 + ordinal // 3,
                                page_end=1 + (ordinal + 1) // 3,
                                keywords=[],
                                embedding=embeddings[start + ordinal],
                            )
                            for ordinal in range(size)
                        ],
                        search_config=SEARCH_CONFIG,
                    )
                    start += size
            documents += len(sizes)
            insert_seconds += time.perf_counter() - began
            produced = time.perf_counter()
    timings["load_s"] = round(time.perf_counter() - started, 1)
    timings["waiting_for_embeddings_s"] = round(embed_seconds, 1)
    timings["insert_with_tsvector_s"] = round(insert_seconds, 1)
    began = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {GIN_INDEX} ON documents_chunk USING gin (search_vector)"
        )
        cursor.execute("VACUUM ANALYZE documents_chunk")
        cursor.execute("VACUUM ANALYZE documents_document")
    timings["gin_index_and_analyze_s"] = round(time.perf_counter() - began, 1)
    timings["total_s"] = round(time.perf_counter() - started, 1)
    timings["documents"] = documents
    return timings


def generated_in() -> float | None:
    """The earlier generation's duration: its documents' timestamp to its final ANALYZE."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT extract(epoch FROM (SELECT last_analyze FROM pg_stat_user_tables "
            "WHERE relname = 'documents_document') - (SELECT min(created_at) "
            "FROM documents_document))"
        )
        seconds = cursor.fetchone()[0]
    return round(float(seconds), 1) if seconds is not None else None


def queries() -> list[tuple[str, str]]:
    """(class, query): fixed, from vocabulary ranks, so every scale runs the same set."""
    words = vocabulary()
    content = len(dict.fromkeys(FUNCTION_WORDS))
    result: list[tuple[str, str]] = []
    result += [("rare", words[rank]) for rank in range(20_000, 50_000, 1_500)]  # 20
    result += [("medium", words[rank]) for rank in range(400, 4_400, 200)]  # 20
    result += [("common", words[content + rank]) for rank in range(0, 40, 2)]  # 20
    result += [
        ("two_words", f"{words[content + i]} {words[content + 1 + 3 * i]}") for i in range(5)
    ]  # common + common
    result += [
        ("two_words", f"{words[content + i]} {words[600 + 150 * i]}") for i in range(5)
    ]  # common + medium
    result += [
        ("two_words", f"{words[content + 2 * i]} {words[30_000 + 997 * i]}") for i in range(5)
    ]  # common + rare
    result += [
        ("two_words", f"{words[500 + 211 * i]} {words[900 + 173 * i]}") for i in range(5)
    ]  # medium + medium
    result += [
        ("phrase", f'"{words[content + i]} {words[content + i + 1]}"') for i in range(5)
    ]  # common phrase
    result += [
        ("phrase", f'"{words[800 + 97 * i]} {words[content + i]}"') for i in range(5)
    ]  # medium then common
    result += [
        ("nothing", word) for word in ("zzyzxquor", "qwvbnmx", "plorkenthwaite", "xyqqj", "the")
    ]
    return result


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]

    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(at(0.95), 1),
        "max_ms": round(ordered[-1], 1),
    }


def measure(repeat: int, functions: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from django.contrib.postgres.search import SearchQuery

    from documents import selectors
    from documents.models import Agent, Chunk

    agent = Agent.objects.order_by("pk")[AGENTS // 2]
    plan = [(kind, query, None) for kind, query in queries()]
    plan += [
        ("agent_scoped", query, agent) for kind, query in queries() if kind in {"common", "medium"}
    ][::2]
    hits: dict[str, Any] = {}
    matches: dict[str, list[int]] = {}
    for kind, query, scoped in plan:  # warm up, and note the matching rows and the top hits
        tsquery = SearchQuery(query, config=SEARCH_CONFIG, search_type="websearch")
        chunks = Chunk.objects.filter(search_vector=tsquery)
        if scoped is not None:
            chunks = chunks.filter(document__agent=scoped)
        matches.setdefault(kind, []).append(chunks.count())
        # document_ids_matching is this call's documents in order, each once.
        top = selectors.chunk_search(query, agent=scoped, limit=500)
        hits[f"{kind}:{query}"] = {
            "chunks": [hit.chunk_id for hit in top[:10]],
            "text_scores": [round(hit.text_score, 4) for hit in top[:10]],
            "documents": list(dict.fromkeys(hit.document_id for hit in top))[:50],
        }
    timings: dict[str, dict[str, list[float]]] = {name: {} for name in functions}
    for _ in range(repeat):
        for kind, query, scoped in plan:
            for name, function, kwargs in (
                ("chunk_search", selectors.chunk_search, {"limit": 10}),
                ("document_ids_matching", selectors.document_ids_matching, {"limit": 500}),
            ):
                if name not in functions:
                    continue
                started = time.perf_counter()
                function(query, agent=scoped, **kwargs)
                elapsed = (time.perf_counter() - started) * 1000
                timings[name].setdefault(kind, []).append(elapsed)
                timings[name].setdefault("overall", []).append(elapsed)
    result: dict[str, Any] = {
        name: {kind: percentiles(values) for kind, values in classes.items()}
        for name, classes in timings.items()
    }
    result["matching_chunks_median"] = {
        kind: int(statistics.median(counts)) for kind, counts in matches.items()
    }
    return result, hits


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Overlap of the top hits with a saved run (1.0: the same chunks), and the mean ts_rank of
    the top 10 relative to the saved run's (1.0: as good a text match)."""
    overlaps: dict[str, list[float]] = {}
    for key, old in before.items():
        new = after.get(key)
        if new is None:
            continue
        kind = key.split(":", 1)[0]
        for field, size in (("chunks", 10), ("documents", 50)):
            reference = set(old[field][:size])
            if not reference:
                value = 1.0 if not new[field] else 0.0
            else:
                value = len(reference & set(new[field][:size])) / len(reference)
            overlaps.setdefault(f"{field}@{size}:{kind}", []).append(value)
        if old["text_scores"] and statistics.mean(old["text_scores"]) > 0:
            ratio = statistics.mean(new["text_scores"] or [0]) / statistics.mean(old["text_scores"])
            overlaps.setdefault(f"text_score@10_vs_saved:{kind}", []).append(ratio)
    return {key: round(statistics.mean(values), 3) for key, values in sorted(overlaps.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="Timed passes per query.")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--only-large", action="store_true", help="Skip the N/10 scale.")
    parser.add_argument(
        "--functions",
        default="chunk_search,document_ids_matching",
        help="Which to time (comma-separated).",
    )
    parser.add_argument(
        "--rank-cap", type=int, help="Override documents.selectors.RANK_CAP (trade-off runs)."
    )
    parser.add_argument("--save", help="Write the top hits of the largest scale to this file.")
    parser.add_argument("--compare", help="Overlap of the top hits with a --save file.")
    args = parser.parse_args()

    os.environ.update(
        DATABASE_URL=database_url(args.chunks),
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
    )
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    import django

    django.setup()

    if args.rank_cap:
        from documents import selectors

        selectors.RANK_CAP = args.rank_cap
    scales = [args.chunks] if args.only_large else [args.chunks // 10, args.chunks]
    from documents import selectors

    result: dict[str, Any] = {
        "chunks": scales,
        "repeat": args.repeat,
        "rank_cap": getattr(selectors, "RANK_CAP", None),
    }
    hits: dict[str, Any] = {}
    for chunks in scales:
        url = database_url(chunks)
        present = chunk_count(url)
        use_database(url)
        scale: dict[str, Any] = {}
        if present == chunks:
            scale["generate"] = {"reused": True, "generated_in_s": generated_in()}
        else:
            scale["generate"] = {"reused": False, **generate(chunks, args.processes)}
        scale["search"], hits = measure(args.repeat, args.functions.split(","))
        result[str(chunks)] = scale
    if len(scales) == 2:
        small, large = (result[str(n)]["search"] for n in scales)
        result["growth_x10"] = {
            name: {
                kind: round(large[name][kind]["p95_ms"] / max(small[name][kind]["p95_ms"], 0.1), 1)
                for kind in large[name]
            }
            for name in args.functions.split(",")
        }
        result["growth_x10"]["note"] = "p95 at N divided by p95 at N/10"
    overall = result[str(scales[-1])]["search"][args.functions.split(",")[0]]["overall"]
    result["figures"] = {"chunks": scales[-1], **overall}  # the headline, for bench/run_all.py
    if args.save:
        Path(args.save).write_text(json.dumps(hits))
    if args.compare:
        result["overlap_with_saved"] = compare(json.loads(Path(args.compare).read_text()), hits)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
