"""Worker memory benchmark: RSS of one worker child over N tasks (aim: flat), and x10 scaling.

    python bench/memory.py [--tasks 10000] [--production-tasks 2000] [--pdf-every 2]
                           [--inprocess 0] [--batch-size 1]

One real `celery -A config worker -Q high -c 1 --pool prefork` processes N small, unique
documents (text notes, and every `--pdf-every`-th one a generated 1-page PDF) registered with
`documents_register`. Every ~250 finished documents the RSS of the worker's pool child (and of
its main process) is read from /proc. Scenarios, each with a fresh worker on emptied tables:

1. N/10 tasks, child never recycled (max tasks per child 100,000): the x10 baseline;
2. N tasks, child never recycled: a leak shows as a slope (MB per 1,000 tasks, first 1,000
   excluded); "flat" means under 1 MB per 1,000 tasks;
3. `--production-tasks` tasks with the production CELERY_WORKER_MAX_TASKS_PER_CHILD=500.

`--inprocess K` also runs `documents.services.document_process` K times in this process with
tracemalloc snapshots, listing the allocation sites that grew (to find a leak's cause).

Uses its own PostgreSQL database `docflowmem_bench` and Redis database 12 unless
--database-url / --broker-url say otherwise. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import prepare_bench, start_worker, stop_worker  # noqa: E402

NEVER_RECYCLE = 100_000
PRODUCTION_MAX_TASKS_PER_CHILD = 500
SAMPLE_EVERY = 250
FLAT_MB_PER_1000 = 1.0
TERMINAL = ("done", "failed", "duplicate", "cancelled")


# --- /proc (psutil is not installed) -----------------------------------------------------------


def proc_memory_mb(pid: int) -> dict[str, float] | None:
    """VmRSS and RssAnon (the part a leak grows: heap, not shared code pages), in MB; None for
    a process that is gone or a zombie (a recycled child)."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon"):
                    fields[key] = int(value.split()[0]) / 1024
    except OSError:
        return None
    if "VmRSS" not in fields:
        return None
    return {"rss": round(fields["VmRSS"], 2), "anon": round(fields.get("RssAnon", 0.0), 2)}


def proc_children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(children)


def other_activity() -> list[str]:
    """What else was running (pytest, celery, benches), for the timing caveat."""
    out = subprocess.run(["ps", "-eo", "pid,pcpu,etime,args"], capture_output=True, text=True)
    mine = {str(os.getpid())}
    return [
        " ".join(line.split())[:160]
        for line in out.stdout.splitlines()
        if any(word in line for word in ("pytest", "celery", "bench"))
        and line.split()[0] not in mine
        and "ps -eo" not in line
    ]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- documents ---------------------------------------------------------------------------------


def make_sources(count: int, folder: Path, pdf_every: int, tag: str) -> list[Any]:
    """Unique small documents: text notes, and every `pdf_every`-th one a 1-page PDF."""
    from documents import samples
    from documents.archives import SourceFile

    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for index in range(count):
        if pdf_every and index % pdf_every == 0:
            path = folder / f"{tag}-{index:06d}.pdf"
            samples.make_pdf(path, pages=1, title=f"Report {tag} {index}", seed=index)
            sources.append(SourceFile(name=path.name, path=path))
        else:
            text = (
                f"Note {tag}-{index}: the customer asked about invoice {index * 7} and the "
                f"delivery window for order {index * 13}. Follow up with the warehouse.\n"
            ) * 4
            sources.append(SourceFile(name=f"{tag}-{index:06d}.txt", data=text.encode()))
    return sources


def empty_tables() -> None:
    from django.db import connection
    from django_celery_results.models import TaskResult

    from documents.models import Chunk, Document

    tables = [m._meta.db_table for m in (Chunk, Document, TaskResult)]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


def finished(batch: uuid.UUID) -> int:
    from documents.models import Document

    return Document.objects.filter(batch_id=batch, status__in=TERMINAL).count()


def slope_mb_per_1000(points: list[tuple[int, float]], after: int = 1000) -> float | None:
    """Least-squares slope of MB against tasks, in MB per 1,000 tasks, past the warm-up."""
    pts = [(x, y) for x, y in points if x >= after]
    if len(pts) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if not sxx:
        return None
    return round(1000 * sum((x - mx) * (y - my) for x, y in pts) / sxx, 3)


# --- one scenario ------------------------------------------------------------------------------


def run_scenario(
    env: dict[str, str], workdir: Path, tasks: int, max_tasks_per_child: int, pdf_every: int
) -> dict[str, Any]:
    import redis
    from django.db.models import Avg, Count

    from documents import services
    from documents.models import Document

    empty_tables()
    redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()
    tag = f"m{tasks}-{max_tasks_per_child}"
    sources = make_sources(tasks, workdir / tag, pdf_every, tag)
    agent = services.agent_get_or_create(organization_slug="bench", agent_slug="memory")

    worker_env = {**env, "CELERY_WORKER_MAX_TASKS_PER_CHILD": str(max_tasks_per_child)}
    worker = start_worker(worker_env, 1, "high")  # prefork is the default pool
    try:
        main_pid = worker.pid
        children = proc_children(main_pid)
        if len(children) != 1:
            sys.exit(f"expected one pool child, found {children}")
        child_pids = [children[0]]
        samples = [
            {"tasks": 0, "child": proc_memory_mb(children[0]), "main": proc_memory_mb(main_pid)}
        ]

        batch = uuid.uuid4()
        started = time.perf_counter()
        # Batches of 50 publish directly (bigger ones go through the fan-out task on queue
        # "low", which this `-Q high` worker does not consume).
        services.documents_register(
            agent=agent, sources=sources, batch_id=batch, queue="high", batch_size=50
        )
        registered = time.perf_counter() - started
        next_mark = SAMPLE_EVERY
        done = 0
        deadline = time.monotonic() + 3600
        while done < tasks:
            if time.monotonic() > deadline or worker.poll() is not None:
                sys.exit(f"worker stalled or died at {done} tasks; see worker.log")
            time.sleep(0.1)
            done = finished(batch)
            if done >= next_mark or done >= tasks:
                current = proc_children(main_pid)
                child = proc_memory_mb(current[0]) if current else None
                if child is None:
                    continue  # between a recycled child and its successor
                if current[0] not in child_pids:
                    child_pids.append(current[0])
                samples.append({"tasks": done, "child": child, "main": proc_memory_mb(main_pid)})
                next_mark = (done // SAMPLE_EVERY + 1) * SAMPLE_EVERY
        elapsed = time.perf_counter() - started
    finally:
        stop_worker(worker)

    rows = Document.objects.filter(batch_id=batch)
    by_status = dict(rows.values_list("status").order_by().annotate(n=Count("pk")))
    mean_task = rows.filter(status="done").aggregate(m=Avg("processing_seconds"))["m"]

    def at(mark: int) -> dict[str, Any] | None:
        return next((s for s in samples if s["tasks"] >= mark), None)

    marks = list(range(0, tasks + 1, max(tasks // 10, 1)))
    child_rss = [(s["tasks"], s["child"]["rss"]) for s in samples]
    child_anon = [(s["tasks"], s["child"]["anon"]) for s in samples]
    main_rss = [(s["tasks"], s["main"]["rss"]) for s in samples]
    slope = slope_mb_per_1000(child_rss)
    recycled = len(child_pids) > 1
    return {
        "tasks": tasks,
        "max_tasks_per_child": max_tasks_per_child,
        "documents": {
            "pdf": len([s for s in sources if s.path]),
            "text": tasks - len([s for s in sources if s.path]),
            "by_status": by_status,
        },
        "child_pids_seen": len(child_pids),
        "rss_mb_at": {
            str(m): {
                "child": s["child"]["rss"],
                "child_anon": s["child"]["anon"],
                "main": s["main"]["rss"],
                "sampled_at": s["tasks"],
            }
            for m in marks
            if (s := at(m)) is not None
        },
        "child_rss_mb_min_max": [min(y for _, y in child_rss), max(y for _, y in child_rss)],
        "slope_mb_per_1000_tasks": {
            "child_rss": slope,
            "child_anon": slope_mb_per_1000(child_anon),
            "main_rss": slope_mb_per_1000(main_rss),
            "note": "least squares over samples past the first 1,000 tasks"
            + ("; meaningless across recycled children" if recycled else ""),
        },
        "verdict": (
            None
            if slope is None or recycled
            else ("flat" if slope < FLAT_MB_PER_1000 else "not flat")
        ),
        "seconds": round(elapsed, 2),
        "register_seconds": round(registered, 2),
        "docs_per_second": round(tasks / elapsed, 2),
        "ms_per_doc_wall": round(1000 * elapsed / tasks, 2),
        "mean_task_seconds": round(mean_task, 4) if mean_task is not None else None,
        "load_average_after": load_average(),
        "samples": len(samples),
    }


# --- in-process tracemalloc --------------------------------------------------------------------


def inprocess_growth(workdir: Path, count: int, pdf_every: int) -> dict[str, Any]:
    """document_process in a loop in this process, with tracemalloc snapshots after a warm-up
    (a fifth of the tasks), half-way and at the end: bounded caches fill in the first half, a
    leak keeps growing in the second; the allocation sites that grew in the second half."""
    import gc
    import tracemalloc

    from documents import services
    from documents.models import Document

    empty_tables()
    agent = services.agent_get_or_create(organization_slug="bench", agent_slug="inprocess")
    sources = make_sources(count, workdir / "inprocess", pdf_every, "inproc")
    batch = uuid.uuid4()
    # No worker consumes queue "high" now; the messages are flushed afterwards.
    services.documents_register(
        agent=agent, sources=sources, batch_id=batch, queue="high", batch_size=50
    )
    pairs = list(
        Document.objects.filter(batch_id=batch).order_by("pk").values_list("pk", "task_id")
    )
    warm = max(count // 5, 1)
    half = warm + (len(pairs) - warm) // 2
    for pk, task_id in pairs[:warm]:
        services.document_process(document_id=pk, task_id=task_id)
    tracemalloc.start(10)
    points = []
    snapshots = []
    for part in (pairs[warm:half], pairs[half:], None):
        gc.collect()
        snapshots.append(tracemalloc.take_snapshot())
        points.append(proc_memory_mb(os.getpid()))
        for pk, task_id in part or []:
            services.document_process(document_id=pk, task_id=task_id)
    tracemalloc.stop()

    def growth(before: Any, after: Any, tasks: int) -> dict[str, Any]:
        stats = after.compare_to(before, "traceback")
        total = sum(s.size_diff for s in stats)
        return {
            "tasks": tasks,
            "python_heap_kb": round(total / 1024, 1),
            "python_heap_kb_per_1000_tasks": round(total / 1024 / max(tasks, 1) * 1000, 1),
            "top": [
                {
                    "kb": round(s.size_diff / 1024, 1),
                    "blocks": s.count_diff,
                    "where": [
                        f"{f.filename.replace(str(ROOT) + '/', '')}:{f.lineno}"
                        for f in list(s.traceback)[-4:]
                    ],
                }
                for s in [s for s in stats if s.size_diff > 0][:6]
            ],
        }

    return {
        "warm_up_tasks": warm,
        "first_half": growth(snapshots[0], snapshots[1], half - warm),
        "second_half": growth(snapshots[1], snapshots[2], len(pairs) - half),
        "rss_mb_after_warm_half_end": [p["rss"] if p else None for p in points],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--production-tasks", type=int, default=2000, help="0 skips it")
    parser.add_argument("--pdf-every", type=int, default=2, help="0: text only")
    parser.add_argument("--inprocess", type=int, default=0, help="tracemalloc run; 0 skips it")
    parser.add_argument("--skip-small", action="store_true", help="skip the N/10 run")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/docflowmem",
        help="`_bench` is appended: docflowmem_bench by default (dropped and recreated)",
    )
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/12", help="flushed")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="documents per task (DOCFLOW_PROCESS_BATCH_SIZE); 1: N tasks are N Celery tasks",
    )
    parser.add_argument("--json", action="store_true", help="(the output is always JSON)")
    args = parser.parse_args()

    os.environ["DOCFLOW_PROCESS_BATCH_SIZE"] = str(args.batch_size)  # publisher and worker
    os.environ["DATABASE_URL"] = args.database_url
    os.environ["CELERY_BROKER_URL"] = args.broker_url
    os.environ.setdefault("DEBUG", "false")  # DEBUG would keep every query in memory
    before = other_activity()
    env, workdir = prepare_bench("docflow-memory-")

    runs = []
    if not args.skip_small and args.tasks >= 10:
        runs.append(run_scenario(env, workdir, args.tasks // 10, NEVER_RECYCLE, args.pdf_every))
    runs.append(run_scenario(env, workdir, args.tasks, NEVER_RECYCLE, args.pdf_every))
    if args.production_tasks:
        runs.append(
            run_scenario(
                env,
                workdir,
                args.production_tasks,
                PRODUCTION_MAX_TASKS_PER_CHILD,
                args.pdf_every,
            )
        )
    inprocess = (
        inprocess_growth(workdir, args.inprocess, args.pdf_every) if args.inprocess else None
    )

    import redis

    redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()
    scaling = None
    if len(runs) >= 2 and runs[0]["tasks"] * 10 == runs[1]["tasks"]:
        small, large = runs[0], runs[1]
        scaling = {
            "tasks": [small["tasks"], large["tasks"]],
            "seconds_ratio": round(large["seconds"] / small["seconds"], 2),
            "ms_per_doc_wall": [small["ms_per_doc_wall"], large["ms_per_doc_wall"]],
            "mean_task_seconds": [small["mean_task_seconds"], large["mean_task_seconds"]],
            "child_rss_mb_end": [
                small["child_rss_mb_min_max"][1],
                large["child_rss_mb_min_max"][1],
            ],
        }
    print(
        json.dumps(
            {
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "worker": "celery -A config worker -Q high -c 1 (prefork)",
                "documents_per_task": args.batch_size,
                "database": env["DATABASE_URL"].rsplit("/", 1)[-1],
                "broker": env["CELERY_BROKER_URL"],
                "runs": runs,
                "scaling_x10": scaling,
                "inprocess_tracemalloc": inprocess,
                "also_running_at_start": before,
                "also_running_at_end": other_activity(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
