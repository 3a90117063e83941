"""The scale run: 500,000 small PDFs generated, registered and processed by real workers.

    python bench/scale.py --json [--documents 500000] [--processes 2] [--minutes 60]
    python bench/scale.py --documents 500000 --minutes 30 --resume WORKDIR   (the rest)

1. corpus: N distinct multi-page PDFs (2 to 4 pages, ~300 words a page) written with PyMuPDF.
   Each process renders a library of generated pages once and composes documents from it,
   so a million-page corpus takes minutes, not hours; every file differs (title and pages).
2. register: `ingest_documents` over the folder stores, registers and queues every document
   (Redis then holds the whole backlog, which is measured too).
3. process: `celery worker -Q high,low -c P` drains the backlog. Every 15 s the done count and
   the CPU time of the worker (main process and children), PostgreSQL and Redis are read
   from /proc. The run stops when every document is finished or after --minutes; what is
   left in the queue is then discarded (the rows stay queued in the scale database).
   `--resume WORKDIR` (the workdir a run prints) queues those rows again, as the beat task
   does after a broker lost its messages, and goes on from step 3.
4. projection: from the measured CPU seconds per document of each part, the time the whole
   run takes on 2, 16 and 50 worker cores, and the PostgreSQL cores and share of Redis' one
   thread that rate needs. On this machine everything shares its cores; the projections put
   the workers on cores of their own, as production does.

Needs DATABASE_URL (PostgreSQL: a database `<name>_scale` is created) and CELERY_BROKER_URL
(Redis: the database given is flushed). Linux only (/proc). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import textwrap
import time
from functools import cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import prepare_bench, start_worker  # noqa: E402
from bench.procstat import cpu_seconds, postgres_cpu_parts, process_cpu_seconds  # noqa: E402

PROJECTED_CORES = (2, 16, 50)
LIBRARY_PAGES = 4000
FILES_PER_FOLDER = 1000
SAMPLE_SECONDS = float(os.environ.get("SCALE_SAMPLE_SECONDS", "15"))


# --- corpus ---------------------------------------------------------------------------------


@cache
def _page_library() -> Any:
    """LIBRARY_PAGES distinct pages of generated prose, rendered once per process."""
    import pymupdf

    from documents import samples

    library = pymupdf.open()
    for section in samples.sample_sections(LIBRARY_PAGES, paragraphs_per_section=3, seed=11):
        page = library.new_page()
        lines = [section.heading, ""]
        for paragraph in section.paragraphs:
            lines += [*textwrap.wrap(paragraph, 95), ""]
        page.insert_text((72, 72), lines, fontname="helv", fontsize=10)
    return pymupdf.open("pdf", library.tobytes())


def _write_documents(span: tuple[int, int, str]) -> int:
    import pymupdf

    start, stop, folder = span
    library = _page_library()
    written = 0
    for index in range(start, stop):
        path = Path(folder) / f"{index // FILES_PER_FOLDER:04d}" / f"note-{index:07d}.pdf"
        if path.exists():
            continue
        rng = random.Random(index)  # reproducible sample content
        document = pymupdf.open()
        for _ in range(rng.randint(2, 4)):
            page = rng.randrange(LIBRARY_PAGES)
            document.insert_pdf(library, from_page=page, to_page=page)
        document.set_metadata({"title": f"Field note {index}", "author": "Docflow scale run"})
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")  # renamed when whole: a rerun never sees half a file
        partial.write_bytes(document.tobytes(deflate=True))
        partial.rename(path)
        written += 1
    return written


def make_corpus(folder: Path, count: int, processes: int) -> dict[str, float]:
    for partial in folder.rglob("*.part"):  # left by an interrupted run
        partial.unlink()
    started = time.perf_counter()
    spans = [
        (start, min(start + FILES_PER_FOLDER, count), str(folder))
        for start in range(0, count, FILES_PER_FOLDER)
    ]
    with get_context("fork").Pool(processes) as pool:
        written = sum(pool.imap_unordered(_write_documents, spans))
    elapsed = time.perf_counter() - started
    size = sum(
        path.stat().st_size
        for sub in corpus_folders(folder, count)
        for path in Path(sub).glob("*.pdf")
    )
    return {
        "files": count,
        "written": written,
        "seconds": round(elapsed, 1),
        "mean_file_bytes": round(size / max(count, 1)),
    }


# --- the run ----------------------------------------------------------------------------------


def corpus_folders(folder: Path, count: int) -> list[str]:
    return [str(folder / f"{index:04d}") for index in range(0, -(-count // FILES_PER_FOLDER))]


def register(folders: list[str]) -> dict[str, Any]:
    from django.core.management import call_command

    from documents import services

    services.agent_get_or_create(organization_slug="scale", agent_slug="field-notes")
    started = time.perf_counter()
    call_command(
        "ingest_documents",
        *folders,
        agent="field-notes",
        organization="scale",
        json=True,
        stdout=open(os.devnull, "w"),  # noqa: SIM115
    )
    elapsed = time.perf_counter() - started
    return {"seconds": round(elapsed, 1)}


def _counts() -> dict[str, int]:
    from django.db.models import Count

    from documents.models import Document

    return dict(
        Document.objects.filter(agent__slug="field-notes")
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )


def _queue_depth() -> int:
    from operations.queues import queue_depths

    return sum(depth or 0 for depth in queue_depths(["high", "low"]).values())


# Cumulative server counters read at each sample. A step in the database's CPU per document
# shows up here as what it comes from: blocks read from outside shared_buffers, dirty buffers
# a backend had to write itself, full-page images in the WAL, checkpoints.
DATABASE_COUNTERS = """
    SELECT d.blks_read, d.blks_hit, b.buffers_backend, b.buffers_clean, b.buffers_checkpoint,
           b.checkpoints_timed + b.checkpoints_req, w.wal_fpi, w.wal_bytes
    FROM pg_stat_database d, pg_stat_bgwriter b, pg_stat_wal w
    WHERE d.datname = current_database()
"""
DATABASE_COUNTER_NAMES = (
    "blks_read",
    "blks_hit",
    "buffers_backend",
    "buffers_clean",
    "buffers_checkpoint",
    "checkpoints",
    "wal_fpi",
    "wal_bytes",
)


def database_counters(cursor: Any) -> dict[str, int]:
    cursor.execute(DATABASE_COUNTERS)
    return dict(zip(DATABASE_COUNTER_NAMES, map(int, cursor.fetchone()), strict=True))


# With pg_stat_statements loaded (shared_preload_libraries; pg_stat_statements.track_planning
# for the planning time), the time the server spent planning and running this database's
# statements: a step in the CPU per document that these do not show is outside any statement.
STATEMENT_TIMES = """
    SELECT coalesce(sum(total_exec_time), 0), coalesce(sum(total_plan_time), 0),
           coalesce(sum(calls), 0)
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def statement_times_available(cursor: Any) -> bool:
    """Whether pg_stat_statements can be read here (created in this database if loaded)."""
    from django.db import DatabaseError, transaction

    try:
        with transaction.atomic():
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            cursor.execute(STATEMENT_TIMES)
    except DatabaseError:  # not in shared_preload_libraries on this server
        return False
    return True


def statement_times(cursor: Any) -> dict[str, float]:
    """Cumulative statement execution and planning milliseconds and calls."""
    cursor.execute(STATEMENT_TIMES)
    exec_ms, plan_ms, calls = cursor.fetchone()
    return {
        "statements_exec_ms": round(float(exec_ms), 1),
        "statements_plan_ms": round(float(plan_ms), 1),
        "statements_calls": int(calls),
    }


def process(
    env: dict[str, str], processes: int, total: int, minutes: float
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    from urllib.parse import urlsplit

    from django.db import connection

    cursor = connection.cursor()  # one sampling connection, kept and left out
    # Its status count scans a table that grows and bloats all run long; in parallel, that
    # scan's workers are other processes, reaped by the postmaster and so counted as the
    # database's work per document (0.3-0.5 s of CPU every sample at 500,000 rows).
    cursor.execute("SET max_parallel_workers_per_gather = 0")
    cursor.execute("SELECT pg_backend_pid()")
    sampler_pid = cursor.fetchone()[0]
    with_statements = statement_times_available(cursor)
    accounting = {
        "database": connection.settings_dict["NAME"],
        "redis_port": urlsplit(env["CELERY_BROKER_URL"]).port or 6379,
        "exclude": (sampler_pid,),
    }
    worker = start_worker(env, processes, "high,low")
    started = time.monotonic()
    started_at = time.time()
    samples: list[dict[str, float]] = []

    def sample() -> dict[str, float]:
        counts = _counts()
        waiting = ("pending", "queued", "processing")
        finished = sum(n for status, n in counts.items() if status not in waiting)
        cpu = cpu_seconds(worker.pid, **accounting)  # type: ignore[arg-type]
        point = {
            "t": round(time.monotonic() - started, 1),
            "finished": finished,
            "failed": counts.get("failed", 0),
            **{k: round(v, 2) for k, v in cpu.items()},
            # Left out of the database's figures, but it shares the cores with the workers.
            "sampler": round(process_cpu_seconds([sampler_pid]), 2),
            **{
                "pg_" + part.replace(" ", "_"): round(seconds, 2)
                for part, seconds in postgres_cpu_parts(
                    database=accounting["database"], exclude=accounting["exclude"]
                ).items()
            },
            **database_counters(cursor),
            **(statement_times(cursor) if with_statements else {}),
        }
        samples.append(point)
        return point

    sample()
    deadline = started + minutes * 60
    while True:
        time.sleep(SAMPLE_SECONDS)
        point = sample()
        if point["finished"] >= total:
            end = _last_finished_offset(started_at)
            if end is not None and end < point["t"]:
                point["t"] = round(end, 1)  # the CPU read at the sample is all the same
            break
        if time.monotonic() > deadline:
            break
    worker.send_signal(signal.SIGTERM)  # warm shutdown: the tasks in hand finish
    try:
        worker.wait(timeout=120)
    except subprocess.TimeoutExpired:  # the figures are taken already: do not lose them
        worker.kill()
        worker.wait()
    return {"worker_exit_code": worker.returncode}, samples


def _last_finished_offset(started_at: float) -> float | None:
    """Seconds from the worker's start to the last finished document (the sample that saw
    the end came up to SAMPLE_SECONDS later)."""
    from django.db.models import Max

    from documents.models import Document

    last = Document.objects.filter(agent__slug="field-notes").aggregate(last=Max("finished_at"))
    return last["last"].timestamp() - started_at if last["last"] else None


def rates(samples: list[dict[str, float]], total: int) -> dict[str, Any]:
    """Throughput and CPU per document over the run, skipping the first sample's warm-up."""
    first, last = samples[1] if len(samples) > 2 else samples[0], samples[-1]
    documents = last["finished"] - first["finished"]
    seconds = last["t"] - first["t"]
    if documents <= 0 or seconds <= 0:
        return {"documents": documents, "seconds": seconds}
    per_document_ms = {
        part: round((last[part] - first[part]) / documents * 1000, 2)
        for part in ("worker", "postgres", "redis")
    }
    tenth = max(1, (len(samples) - 1) // 10)

    def rate(a: dict[str, float], b: dict[str, float]) -> float:
        return round((b["finished"] - a["finished"]) / max(b["t"] - a["t"], 1e-9), 1)

    return {
        "documents": documents,
        "seconds": round(seconds, 1),
        "docs_per_second": round(documents / seconds, 1),
        "first_tenth_docs_per_second": rate(samples[0], samples[tenth]),
        "last_tenth_docs_per_second": rate(samples[-1 - tenth], samples[-1]),
        "cpu_ms_per_document": per_document_ms,
        "whole_run_hours_here": round(total / (documents / seconds) / 3600, 2),
    }


def stretches(samples: list[dict[str, float]], parts: int = 10) -> list[dict[str, Any]]:
    """The run cut into `parts` stretches of equal document counts: how the rate and each
    cost per document moved as the database grew. Counters missing from older samples are
    left out."""
    if len(samples) < 2 or samples[-1]["finished"] <= samples[0]["finished"]:
        return []
    step = (samples[-1]["finished"] - samples[0]["finished"]) / parts
    out: list[dict[str, Any]] = []
    start = samples[0]
    for point in samples[1:]:
        goal = samples[0]["finished"] + step * (len(out) + 1)
        if point["finished"] < goal and point is not samples[-1]:
            continue
        documents = point["finished"] - start["finished"]
        if documents <= 0:
            continue
        stretch: dict[str, Any] = {
            "finished": point["finished"],
            "docs_per_second": round(documents / max(point["t"] - start["t"], 1e-9), 1),
        }
        for part in ("worker", "postgres", "sampler"):
            if part not in point or part not in start:
                continue
            stretch[f"{part}_cpu_ms"] = round((point[part] - start[part]) / documents * 1000, 2)
        for part in sorted(key for key in point if key.startswith("pg_") and key in start):
            stretch[f"{part}_cpu_ms"] = round((point[part] - start[part]) / documents * 1000, 2)
        for counter in (
            "blks_read",
            "buffers_backend",
            "wal_fpi",
            "statements_exec_ms",
            "statements_plan_ms",
            "statements_calls",
        ):
            if counter in point and counter in start:
                stretch[f"{counter}_per_document"] = round(
                    (point[counter] - start[counter]) / documents, 2
                )
        if "blks_hit" in point and "blks_hit" in start:
            read = point["blks_read"] - start["blks_read"]
            hit = point["blks_hit"] - start["blks_hit"]
            stretch["cache_hit_ratio"] = round(hit / max(read + hit, 1), 4)
        out.append(stretch)
        start = point
    return out


def projections(
    cpu_ms: dict[str, float], register_seconds: float, total: int
) -> list[dict[str, Any]]:
    """Worker cores decide the rate; the database and Redis must then keep up with it.

    A worker core does 1000 / worker_ms documents a second. PostgreSQL needs postgres_ms of
    CPU per document on its own machine, and Redis one thread for all: the figures say how
    many database cores and how much of Redis' thread each rate needs.
    """
    out = []
    for cores in PROJECTED_CORES:
        rate = cores * 1000 / cpu_ms["worker"]
        out.append(
            {
                "worker_cores": cores,
                "docs_per_second": round(rate, 1),
                "processing_hours": round(total / rate / 3600, 2),
                "total_hours_with_registration": round((total / rate + register_seconds) / 3600, 2),
                "postgres_cores_needed": round(rate * cpu_ms["postgres"] / 1000, 2),
                "redis_thread_share": round(rate * cpu_ms["redis"] / 1000, 3),
            }
        )
    return out


def database_figures() -> dict[str, Any]:
    from django.db import connection

    from documents.models import Chunk

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_database_size(current_database()), current_setting('autovacuum'),"
            " current_setting('shared_buffers')"
        )
        size, autovacuum, shared_buffers = cursor.fetchone()
        # Where the blocks read from outside shared_buffers went, tables and indexes alike.
        cursor.execute(
            """
            SELECT relname, heap_blks_read + coalesce(toast_blks_read, 0), heap_blks_hit,
                   pg_relation_size(relid)
            FROM pg_statio_user_tables
            UNION ALL
            SELECT indexrelname, idx_blks_read, idx_blks_hit, pg_relation_size(indexrelid)
            FROM pg_statio_user_indexes
            ORDER BY 2 DESC LIMIT 8
            """
        )
        most_read = [
            {"relation": name, "blocks_read": read, "blocks_hit": hit, "bytes": relation_bytes}
            for name, read, hit, relation_bytes in cursor.fetchall()
        ]
    return {
        "database_bytes": size,
        "chunks": Chunk.objects.count(),
        "autovacuum": autovacuum,
        "shared_buffers": shared_buffers,
        "most_read_relations": most_read,
    }


def requeue_left() -> dict[str, Any]:
    """Messages again for the documents a stopped run left waiting. The run discarded its
    queue as a broker that lost its data would, so this is the beat task's own recovery
    (`documents_requeue_stuck`), at once instead of after the lease."""
    from datetime import timedelta

    from documents import services

    started = time.perf_counter()
    outcome = services.documents_requeue_stuck(queued_for=timedelta(0), processing_for=timedelta(0))
    return {
        "requeued": outcome.requeued,
        "failed": outcome.failed,
        "seconds": round(time.perf_counter() - started, 1),
    }


def analyze_after_load() -> None:
    """What autovacuum does after a bulk load, done at once: the planner sees 500,000 rows,
    and the run does not depend on whether this server's autovacuum is on."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE documents_document")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=500_000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--minutes", type=float, default=60.0, help="processing time budget")
    parser.add_argument(
        "--corpus",
        type=Path,
        help="folder for the generated files, kept between runs (missing files are added)",
    )
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="WORKDIR",
        help="go on with a stopped run (its workdir; same --documents): what it left queued "
        "is queued again, as the beat task does after the broker lost its messages",
    )
    parser.add_argument("--json", action="store_true", help="(the output is always JSON)")
    args = parser.parse_args()

    env, workdir = prepare_bench("docflow-scale-", suffix="_scale", resume=args.resume)
    import redis

    broker = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    corpus: dict[str, Any] | None = None
    registration: dict[str, Any] | None = None
    resumed: dict[str, Any] | None = None
    if args.resume:
        resumed = requeue_left()
    else:
        folder = args.corpus or workdir / "corpus"
        corpus = make_corpus(folder, args.documents, args.processes)
        registration = register(corpus_folders(folder, args.documents))
        registration["files_per_second"] = round(args.documents / registration["seconds"])
        registration["redis_used_memory_bytes"] = int(broker.info("memory")["used_memory"])
        analyze_after_load()
    run, samples = process(env, args.processes, args.documents, args.minutes)
    run["left_in_queue"] = _queue_depth()
    broker.flushdb()
    measured = rates(samples, args.documents)
    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "documents": args.documents,
                "processes": args.processes,
                "workdir": str(workdir),
                "corpus": corpus,
                "registration": registration,
                "resumed": resumed,
                "run": {**run, **measured, "finished_by_status": _counts()},
                "database": database_figures(),
                "projections": (
                    projections(
                        measured["cpu_ms_per_document"],
                        registration["seconds"],
                        args.documents,
                    )
                    if "cpu_ms_per_document" in measured and registration
                    else None
                ),
                "stretches": stretches(samples),
                "samples": samples,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
