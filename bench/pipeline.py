"""Pipeline benchmark: the system's throughput against the bare pipeline, and ingest speed.

    python bench/pipeline.py --json [--docs 400] [--pages 5] [--processes 2] [--repeat 3]
                             [--ingest-files 100000]

1. efficiency: the same generated multi-page PDFs go through
   a) the bare pipeline (`run_pipeline`) in a pool of N processes, no database, no broker;
   b) the real system: registered, sent through Redis, processed by `celery worker -c N`,
      stored in PostgreSQL; timed from registration to the last `finished_at`.
   ratio = (b docs/s) / (a docs/s); the aim is 0.95 or better.
   Measured twice: with PostgreSQL and Redis sharing the cores with the pipeline processes
   (`shared`), and with them moved to a core of their own, the pipeline processes on the others
   (`dedicated`: how every deployment runs, the database on its own machine). The second needs
   the right to change those processes' CPU affinity (root, or the same user); it is skipped
   otherwise, and on a machine with one core.
2. ingest: `ingest_documents` registering + enqueueing N small files (no worker consuming).

Needs DATABASE_URL (PostgreSQL; a separate database `<name>_bench` is created) and
CELERY_BROKER_URL (Redis; the database given is flushed). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import (  # noqa: E402
    cpu_seconds,
    process_name,
    release_services,
    service_pids,
)


def bench_database_url(suffix: str = "_bench") -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("DATABASE_URL must point at PostgreSQL (e.g. make bench)")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def create_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    name = parts.path.lstrip("/")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def prepare_bench(prefix: str, suffix: str = "_bench") -> tuple[dict[str, str], Path]:
    """A fresh `<name><suffix>` database (migrated), a flushed Redis database, a work folder,
    and the environment a worker subprocess needs; Django is set up in this process."""
    database_url = bench_database_url(suffix)
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not broker_url.startswith("redis"):
        sys.exit("CELERY_BROKER_URL must point at Redis (e.g. make bench)")
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(workdir / "media"),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    os.environ.update(env)
    create_database(database_url)
    import django
    import redis
    from django.core.management import call_command

    redis.Redis.from_url(broker_url).flushdb()
    django.setup()
    call_command("migrate", verbosity=0)
    return env, workdir


def make_corpus(folder: Path, count: int, pages: int) -> list[Path]:
    from documents import samples

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"doc-{index:05d}.pdf"
        samples.make_pdf(path, pages=pages, title=f"Report {index}", seed=index)
        paths.append(path)
    return paths


def _bare_init() -> None:
    """As a worker child starts (config.celery): imports done, then out of the GC's reach."""
    import gc

    import documents.pipeline  # noqa: F401

    gc.freeze()


def _bare_one(path: str) -> int:
    from documents.pipeline import run_pipeline

    return len(run_pipeline(Path(path)).chunks)


@contextlib.contextmanager
def services_on(core: int, redis_port: int) -> Iterator[None]:
    """PostgreSQL and Redis on `core` alone while the block runs; their affinity restored after.

    Backends forked meanwhile inherit the postmaster's affinity, so every one started by the
    workers stays on that core too.
    """
    everywhere = os.sched_getaffinity(0)
    try:
        for pid in service_pids(redis_port):
            with contextlib.suppress(ProcessLookupError):  # a backend that just ended
                os.sched_setaffinity(pid, {core})
        yield
    finally:
        release_services(redis_port, everywhere)


@contextlib.contextmanager
def this_process_on(cores: set[int]) -> Iterator[None]:
    """This process (and what it forks or starts meanwhile) on `cores`."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def can_pin_services(redis_port: int) -> bool:
    cores = os.sched_getaffinity(0)
    if len(cores) < 2:
        return False
    pids = service_pids(redis_port)
    names = set()
    try:
        for pid in pids:
            os.sched_setaffinity(pid, os.sched_getaffinity(pid))
            names.add(process_name(pid))
    except ProcessLookupError:
        pass
    except OSError:
        return False
    # Both must run here (not in another machine or PID namespace) for the layout to mean much.
    return {"postgres", "redis-server"} <= names


def efficiency(
    measure: Callable[[int], tuple[dict[str, Any], dict[str, Any]]], repeat: int
) -> dict[str, Any]:
    """Bare and system runs taken in turn `repeat` times; the run with the median ratio is
    reported, with every ratio (this machine's speed drifts by several per cent)."""
    runs = []
    for index in range(repeat):
        bare, system = measure(index)
        ratio = system["docs_per_second"] / bare["docs_per_second"]
        runs.append({"bare_pipeline": bare, "through_celery": system, "efficiency_ratio": ratio})
    runs.sort(key=lambda run: run["efficiency_ratio"])
    return {
        **runs[len(runs) // 2],
        "efficiency_ratios": [round(run["efficiency_ratio"], 3) for run in runs],
    }


def dedicated_run(
    paths: list[Path], env: dict[str, str], redis_port: int, index: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pipeline processes (bare, then the worker) on all cores but the last; PostgreSQL,
    Redis and this process, which registers the documents as a web or ingest process would, on
    the last, as on machines of their own."""
    cores = sorted(os.sched_getaffinity(0))
    service_core, pipeline_cores = cores[-1], set(cores[:-1])
    with services_on(service_core, redis_port):
        with this_process_on(pipeline_cores):
            bare = bare_throughput(paths, len(pipeline_cores))
        with this_process_on({service_core}):
            system = system_throughput(
                paths,
                len(pipeline_cores),
                env,
                agent_slug=f"dedicated-{index}",
                cores=pipeline_cores,
            )
    return bare, system


def bare_throughput(paths: list[Path], processes: int) -> dict[str, float]:
    # Fresh interpreters: a fork of this process, once it holds connections and helper threads,
    # can inherit a held lock and hang, leaving the pool one process short.
    context = multiprocessing.get_context("spawn")
    before = os.times()
    with context.Pool(processes, initializer=_bare_init) as pool:
        pool.map(_bare_one, [str(paths[0])] * processes)  # warm every process, like a worker
        started = time.perf_counter()
        chunks = sum(pool.map(_bare_one, [str(p) for p in paths], chunksize=1))
        elapsed = time.perf_counter() - started
    pool.join()  # reaped: their CPU time is now this process's children's
    after = os.times()
    cpu = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    return {
        "seconds": elapsed,
        "docs_per_second": len(paths) / elapsed,
        "chunks": chunks,
        "cpu_ms_per_document": round(cpu / (len(paths) + processes) * 1000, 2),
    }


def start_worker(
    env: dict[str, str], processes: int, queues: str, cores: set[int] | None = None
) -> subprocess.Popen[bytes]:
    """`celery worker -c processes` on `queues` (on `cores` if given), once it answers a ping."""
    from config.celery import app

    log = open(Path(env["MEDIA_ROOT"]).parent / "worker.log", "wb")  # noqa: SIM115
    # The child inherits the affinity it is started with.
    pinned = this_process_on(cores) if cores else contextlib.nullcontext()
    with pinned:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queues,
                "-c",
                str(processes),
                "-n",
                f"bench-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "warning",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if time.monotonic() > deadline or worker.poll() is not None:
            worker.kill()
            sys.exit("the worker did not start; see worker.log")
    return worker


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()


def system_throughput(
    paths: list[Path],
    processes: int,
    env: dict[str, str],
    agent_slug: str = "throughput",
    cores: set[int] | None = None,
) -> dict[str, float]:

    from documents import services

    agent = services.agent_get_or_create(organization_slug="bench", agent_slug=agent_slug)
    worker = start_worker(env, processes, "high,low", cores=cores)
    try:
        return _measure_system(worker, agent, paths, processes)
    finally:
        stop_worker(worker)


def _measure_system(
    worker: subprocess.Popen[bytes], agent: Any, paths: list[Path], processes: int
) -> dict[str, float]:
    import uuid

    from django.db.models import Avg, Max, Sum

    from documents import services
    from documents.archives import SourceFile
    from documents.models import Document

    # Warm every worker process once, as the bare pool was warmed.
    warm = [
        SourceFile(name=f"warm-{i}.txt", data=f"warm up {i} ".encode() * 50)
        for i in range(processes * 2)
    ]
    warm_batch = uuid.uuid4()
    services.documents_register(agent=agent, sources=warm, batch_id=warm_batch, queue="high")
    _wait_done(warm_batch, len(warm))

    batch = uuid.uuid4()
    cpu_before = cpu_seconds(worker.pid)
    started_wall = time.time()
    services.documents_register(
        agent=agent,
        sources=[SourceFile(name=p.name, path=p) for p in paths],
        batch_id=batch,
        queue="high",
    )
    _wait_done(batch, len(paths))
    cpu_after = cpu_seconds(worker.pid)
    rows = Document.objects.filter(batch_id=batch)
    figures = rows.aggregate(
        last=Max("finished_at"), mean=Avg("processing_seconds"), chunks=Sum("chunk_count")
    )
    elapsed = figures["last"].timestamp() - started_wall
    failed = rows.exclude(status="done").count()
    return {
        "seconds": elapsed,
        "docs_per_second": len(paths) / elapsed,
        "chunks": figures["chunks"],
        "mean_task_seconds": figures["mean"],
        "not_done": failed,
        # Where the CPU went: the worker (main process and children), PostgreSQL, Redis.
        "cpu_ms_per_document": {
            part: round((cpu_after[part] - cpu_before[part]) / len(paths) * 1000, 2)
            for part in cpu_after
        },
    }


def _wait_done(batch, total: int, timeout: float = 1800) -> None:  # type: ignore[no-untyped-def]
    from documents import services

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = services.batch_status_counts(batch)
        if counts["pending"] + counts["queued"] + counts["processing"] == 0:
            return
        # The end is read from the rows' finished_at, so polling often would only take CPU
        # and database time from the workers being measured.
        time.sleep(0.5)
    sys.exit("timed out waiting for documents")


def ingest_rate(count: int, workdir: Path) -> dict[str, float]:
    from django.core.management import call_command

    from documents import services

    folder = workdir / "ingest"
    for index in range(count):
        sub = folder / f"{index // 1000:04d}"
        if index % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        (sub / f"note-{index}.txt").write_text(
            f"Note {index}: customer asked about invoice {index * 7} and delivery window.\n"
        )
    services.agent_get_or_create(organization_slug="bench", agent_slug="ingest")
    started = time.perf_counter()
    call_command(
        "ingest_documents",
        str(folder),
        agent="ingest",
        organization="bench",
        json=True,
        stdout=open(os.devnull, "w"),  # noqa: SIM115
    )
    elapsed = time.perf_counter() - started
    return {"files": count, "seconds": elapsed, "files_per_second": count / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=400, help="0 skips the efficiency run")
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3, help="efficiency runs; the median counts")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--ingest-files", type=int, default=100_000, help="0 skips it")
    parser.add_argument("--json", action="store_true", help="(the output is always JSON)")
    args = parser.parse_args()
    # Stopped from outside (run_all's timeout), the `finally` blocks still run: the worker is
    # stopped and PostgreSQL and Redis get their cores back.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"stopped by signal {signum}"))

    env, workdir = prepare_bench("docflow-bench-")
    broker_url = env["CELERY_BROKER_URL"]
    import redis

    shared: dict[str, Any] = {}
    dedicated = None
    redis_port = urlsplit(broker_url).port or 6379
    if args.docs:
        corpus = make_corpus(workdir / "corpus", args.docs, args.pages)
        shared = efficiency(
            lambda index: (
                bare_throughput(corpus, args.processes),
                # An agent per run: the same files for another agent are not duplicates.
                system_throughput(corpus, args.processes, env, agent_slug=f"shared-{index}"),
            ),
            args.repeat,
        )
        if can_pin_services(redis_port):
            cores = len(os.sched_getaffinity(0)) - 1
            dedicated = {
                "processes": cores,
                **efficiency(
                    lambda index: dedicated_run(corpus, env, redis_port, index), args.repeat
                ),
            }
    ingest = ingest_rate(args.ingest_files, workdir) if args.ingest_files else None
    redis.Redis.from_url(broker_url).flushdb()

    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "corpus": {"documents": args.docs, "pages_per_document": args.pages},
                "processes": args.processes,
                "bare_pipeline": shared.get("bare_pipeline"),
                "through_celery": shared.get("through_celery"),
                "efficiency_ratio": shared.get("efficiency_ratio"),
                "efficiency_ratios": shared.get("efficiency_ratios"),
                "dedicated_services_core": dedicated,
                "ingest": ingest,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
