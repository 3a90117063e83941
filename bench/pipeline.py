"""Pipeline benchmark: the system's throughput against the bare pipeline, and ingest speed.

    python bench/pipeline.py --json [--docs 400] [--pages 5] [--processes 2] [--rounds 60]
                             [--segment 20] [--ingest-files 100000]

1. efficiency: the same generated multi-page PDFs go through
   a) the bare pipeline (`run_pipeline`) in a pool of N spawned processes, no database, no
      broker, handed out in groups of DOCFLOW_PROCESS_BATCH_SIZE;
   b) the real system: registered, sent through Redis, processed by `celery worker -c N`,
      stored in PostgreSQL; timed from the first claim to the last outcome (and, also
      reported, from registration).
   The two take turns, a segment of documents each, for a number of rounds in one warm pool
   and one warm worker (bare first, system first, system first, bare first, …), so a drift in
   this machine's speed weighs on both alike. ratio = (b docs/s) / (a docs/s) over all rounds;
   the aim is 0.95 or better.
   Measured twice: with PostgreSQL and Redis sharing the cores with the pipeline processes
   (`shared`), and with them moved to a core of their own, the pipeline processes on the others
   (`dedicated`: how every deployment runs, the database on its own machine). The second needs
   the right to change those processes' CPU affinity (root, or the same user); it is skipped
   otherwise, and on a machine with one core.
   Then, in this process alone, groups through `documents_process_batch` with the time in
   `run_pipeline` taken apart: what the batch's service code and database work add per
   document, without Celery (`batch_path_in_process`).
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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import (  # noqa: E402
    cpu_seconds,
    process_cpu_seconds,
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


def prepare_bench(
    prefix: str, suffix: str = "_bench", *, resume: Path | None = None
) -> tuple[dict[str, str], Path]:
    """A fresh `<name><suffix>` database (migrated), a flushed Redis database, a work folder,
    and the environment a worker subprocess needs; Django is set up in this process.

    `resume`: the work folder of an earlier run, whose database and stored files are kept."""
    database_url = bench_database_url(suffix)
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    if not broker_url.startswith("redis"):
        sys.exit("CELERY_BROKER_URL must point at Redis (e.g. make bench)")
    if resume is not None and not (resume / "media").is_dir():
        sys.exit(f"{resume} is not the work folder of an earlier run (it has no media/)")
    workdir = resume or Path(tempfile.mkdtemp(prefix=prefix))
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MEDIA_ROOT": str(workdir / "media"),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    os.environ.update(env)
    if resume is None:
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


def _bare_group(paths: list[str]) -> int:
    from documents.pipeline import run_pipeline

    return sum(len(run_pipeline(Path(path)).chunks) for path in paths)


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


def _register(agent: Any, paths: list[Path]) -> Any:
    """The files registered as queued documents of `agent` (their messages sent on commit);
    returns their batch id."""
    import uuid

    from documents import services
    from documents.archives import SourceFile

    batch = uuid.uuid4()
    services.documents_register(
        agent=agent,
        sources=[SourceFile(name=path.name, path=path) for path in paths],
        batch_id=batch,
        queue="high",
    )
    return batch


def _segment(paths: list[Path], index: int, size: int) -> list[Path]:
    """Round `index`'s `size` documents, going round the corpus."""
    first = (index * size) % len(paths)
    return (paths[first:] + paths[:first])[:size]


def efficiency(
    paths: list[Path],
    processes: int,
    env: dict[str, str],
    *,
    label: str,
    rounds: int,
    segment: int,
    group: int,
    cores: set[int] | None = None,
) -> dict[str, Any]:
    """Bare and system segments in turn, `rounds` times, in one warm pool and one warm worker.

    Each round gives both sides the same `segment` documents; the order alternates (bare first,
    system first, system first, bare first, …) so that a drift of this machine's speed weighs on
    both alike. Both sides hand out the documents in groups of `group`, the system's batch size:
    at the end of a segment both wait alike for the last group.
    """
    from documents import services

    bare_runs: list[dict[str, Any]] = []
    system_runs: list[dict[str, Any]] = []
    with bare_pool(processes, cores) as pool:
        pool.map(_bare_group, [[str(paths[0])]] * processes, chunksize=1)  # warm, as the worker
        worker = start_worker(env, processes, "high,low", cores=cores)
        try:
            warm_worker(worker, label, processes)
            for index in range(rounds):
                part = _segment(paths, index, segment)
                # An agent per round: the same files for another agent are not duplicates.
                agent = services.agent_get_or_create(
                    organization_slug="bench", agent_slug=f"{label}-{index}"
                )
                bare_first = index % 4 in (0, 3)
                for side in ("bare", "system") if bare_first else ("system", "bare"):
                    if side == "bare":
                        bare_runs.append(bare_segment(pool, part, group))
                    else:
                        system_runs.append(system_segment(worker, agent, part))
        finally:
            stop_worker(worker)
    return summarize(bare_runs, system_runs)


def summarize(bare_runs: list[dict[str, Any]], system_runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates over all rounds (documents ÷ seconds, each side), their ratio, and each round's."""
    documents = sum(run["documents"] for run in bare_runs)
    bare_seconds = sum(run["seconds"] for run in bare_runs)
    system_seconds = sum(run["seconds"] for run in system_runs)
    registered_seconds = sum(run["seconds_from_registration"] for run in system_runs)
    per_round = sorted(
        bare["seconds"] / system["seconds"]
        for bare, system in zip(bare_runs, system_runs, strict=True)
    )
    system_cpu = {
        part: round(sum(run["cpu_seconds"][part] for run in system_runs) / documents * 1000, 2)
        for part in system_runs[0]["cpu_seconds"]
    }
    return {
        "bare_pipeline": {
            "seconds": bare_seconds,
            "docs_per_second": documents / bare_seconds,
            "chunks": sum(run["chunks"] for run in bare_runs),
            "cpu_ms_per_document": round(
                sum(run["cpu_seconds"] for run in bare_runs) / documents * 1000, 2
            ),
        },
        "through_celery": {
            "seconds": system_seconds,
            "docs_per_second": documents / system_seconds,
            "docs_per_second_from_registration": documents / registered_seconds,
            "chunks": sum(run["chunks"] for run in system_runs),
            "not_done": sum(run["not_done"] for run in system_runs),
            "cpu_ms_per_document": system_cpu,
        },
        "documents_per_side": documents,
        "rounds": len(bare_runs),
        "efficiency_ratio": bare_seconds / system_seconds,
        "efficiency_ratio_from_registration": bare_seconds / registered_seconds,
        "efficiency_ratio_median_round": statistics.median(per_round),
        "efficiency_ratios": [round(ratio, 3) for ratio in per_round],
    }


def batch_path_overhead(paths: list[Path], group: int, rounds: int) -> dict[str, Any]:
    """What a batch task's service code adds around the pipeline, measured inside it.

    Groups of documents, registered as queued, go through `documents_process_batch` in this
    process (claim, lookup of copies, chunks, outcomes: all its database work, no Celery), with
    the time spent in `run_pipeline` taken apart from the rest. Both are read in the same call,
    so a drift of this machine's speed, which the end-to-end ratio cannot resolve below a few
    points, hardly touches the overhead. The messages registration sends are never consumed
    (no worker runs meanwhile) and are flushed with the broker's database at the end.
    """
    import gc

    from documents import pipeline, services
    from documents.models import Document

    real = pipeline.run_pipeline
    in_pipeline = [0.0]

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            in_pipeline[0] += time.perf_counter() - started

    gc.freeze()  # as a worker child does
    total = 0.0
    done = 0
    pipeline.run_pipeline = timed
    try:
        for index in range(-1, rounds):  # round -1 warms up and is not counted
            part = _segment(paths, index, group)
            agent = services.agent_get_or_create(
                organization_slug="bench", agent_slug=f"in-process-{index}"
            )
            batch = _register(agent, part)
            pairs = list(
                Document.objects.filter(batch_id=batch).order_by("pk").values_list("pk", "task_id")
            )
            if index < 0:
                services.documents_process_batch(pairs=pairs, queue="high")
                in_pipeline[0] = 0.0
                continue
            started = time.perf_counter()
            outcome = services.documents_process_batch(pairs=pairs, queue="high")
            total += time.perf_counter() - started
            done += sum(o.status == "done" for o in outcome.documents)
    finally:
        pipeline.run_pipeline = real
    documents = rounds * group
    return {
        "documents": documents,
        "done": done,
        "pipeline_ms_per_document": round(in_pipeline[0] / documents * 1000, 2),
        "overhead_ms_per_document": round((total - in_pipeline[0]) / documents * 1000, 2),
        "pipeline_share": in_pipeline[0] / total,
    }


def dedicated_layout(
    paths: list[Path], env: dict[str, str], redis_port: int, **measure: Any
) -> dict[str, Any]:
    """The pipeline processes (bare, then the worker) on all cores but the last; PostgreSQL,
    Redis and this process, which registers the documents as a web or ingest process would, on
    the last, as on machines of their own."""
    cores = sorted(os.sched_getaffinity(0))
    service_core, pipeline_cores = cores[-1], set(cores[:-1])
    with services_on(service_core, redis_port), this_process_on({service_core}):
        return {
            "processes": len(pipeline_cores),
            **efficiency(
                paths,
                len(pipeline_cores),
                env,
                label="dedicated",
                cores=pipeline_cores,
                **measure,
            ),
        }


@contextlib.contextmanager
def bare_pool(processes: int, cores: set[int] | None) -> Iterator[Any]:
    """N freshly spawned processes (on `cores`), each warmed once, like a worker's children.

    Spawned, not forked: a fork of this process, once it holds connections and helper threads,
    can inherit a held lock and hang, leaving the pool one process short.
    """
    context = multiprocessing.get_context("spawn")
    with this_process_on(cores) if cores else contextlib.nullcontext():
        pool = context.Pool(processes, initializer=_bare_init)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()


def bare_segment(pool: Any, paths: list[Path], group: int) -> dict[str, Any]:
    pids = [process.pid for process in pool._pool]
    groups = [[str(path) for path in paths[i : i + group]] for i in range(len(paths))[::group]]
    before = process_cpu_seconds(pids)
    started = time.perf_counter()
    chunks = sum(pool.map(_bare_group, groups, chunksize=1))
    elapsed = time.perf_counter() - started
    return {
        "documents": len(paths),
        "seconds": elapsed,
        "chunks": chunks,
        "cpu_seconds": process_cpu_seconds(pids) - before,
    }


def warm_worker(worker: subprocess.Popen[bytes], label: str, processes: int) -> None:
    """Every worker process runs a task before anything is timed, as the bare pool is warmed."""
    import uuid

    from documents import services
    from documents.archives import SourceFile

    agent = services.agent_get_or_create(organization_slug="bench", agent_slug=f"{label}-warm")
    warm = [
        SourceFile(name=f"warm-{i}.txt", data=f"warm up {i} ".encode() * 50)
        for i in range(processes * 2)
    ]
    batch = uuid.uuid4()
    services.documents_register(agent=agent, sources=warm, batch_id=batch, queue="high")
    _wait_done(batch, len(warm))


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


def system_segment(
    worker: subprocess.Popen[bytes], agent: Any, paths: list[Path]
) -> dict[str, Any]:
    """Register the files (one transaction, then their messages), wait for every outcome.

    Timed from the first claim to the last outcome: the system's processing. Registration
    (measured by the ingest figure) comes before the first claim and is also reported.
    """
    from django.db.models import Max, Min, Sum

    from documents.models import Document

    cpu_before = cpu_seconds(worker.pid)
    registered_at = time.time()
    batch = _register(agent, paths)
    _wait_done(batch, len(paths))
    cpu_after = cpu_seconds(worker.pid)
    rows = Document.objects.filter(batch_id=batch)
    figures = rows.aggregate(
        first=Min("started_at"), last=Max("finished_at"), chunks=Sum("chunk_count")
    )
    return {
        "documents": len(paths),
        "seconds": (figures["last"] - figures["first"]).total_seconds(),
        "seconds_from_registration": figures["last"].timestamp() - registered_at,
        "chunks": figures["chunks"],
        "not_done": rows.exclude(status="done").count(),
        # Where the CPU went: the worker (main process and children), PostgreSQL, Redis.
        "cpu_seconds": {part: cpu_after[part] - cpu_before[part] for part in cpu_after},
    }


def _wait_done(batch, total: int, timeout: float = 1800) -> None:  # type: ignore[no-untyped-def]
    from documents import services

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = services.batch_status_counts(batch)
        if counts["pending"] + counts["queued"] + counts["processing"] == 0:
            return
        # The end is read from the rows' finished_at; a poll is one indexed count (about
        # 0.3 ms of database time), five a second.
        time.sleep(0.2)
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
    parser.add_argument("--docs", type=int, default=400, help="corpus size; 0 skips efficiency")
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument(
        "--rounds", type=int, default=60, help="bare/system rounds per layout; 0 skips"
    )
    parser.add_argument("--segment", type=int, default=20, help="documents per side and round")
    parser.add_argument("--in-process-rounds", type=int, default=40, help="groups, in process")
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
    from django.conf import settings

    shared: dict[str, Any] = {}
    dedicated = in_process = None
    redis_port = urlsplit(broker_url).port or 6379
    measure = {
        "rounds": args.rounds,
        "segment": min(args.segment, args.docs),
        "group": settings.DOCFLOW["PROCESS_BATCH_SIZE"],
    }
    if args.docs:
        corpus = make_corpus(workdir / "corpus", args.docs, args.pages)
        if args.rounds:
            shared = efficiency(corpus, args.processes, env, label="shared", **measure)
        if args.rounds and can_pin_services(redis_port):
            dedicated = dedicated_layout(corpus, env, redis_port, **measure)
        in_process = batch_path_overhead(corpus, measure["group"], args.in_process_rounds)
    ingest = ingest_rate(args.ingest_files, workdir) if args.ingest_files else None
    redis.Redis.from_url(broker_url).flushdb()

    print(
        json.dumps(
            {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "corpus": {"documents": args.docs, "pages_per_document": args.pages},
                "processes": args.processes,
                "method": {**measure, "order": "bare/system alternating (ABBA)"},
                **shared,
                "dedicated_services_core": dedicated,
                "batch_path_in_process": in_process,
                "ingest": ingest,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
