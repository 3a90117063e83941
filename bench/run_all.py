"""`make bench`: every benchmark in turn, one JSON file with every figure and its aim.

    DATABASE_URL=postgres://…/docflow CELERY_BROKER_URL=redis://…/13 \
        python bench/run_all.py [--quick] [--only NAME …] [--output bench/results/latest.json]

Each benchmark runs as its own process (its own database `<name>_bench`, flushed Redis
database) and prints one JSON object; this collects them under their names, adds the machine,
and a `figures` summary that puts each headline figure beside its aim. `--quick` runs every
benchmark at about a tenth of its size (a smoke run: the figures are not the ones to quote).
A benchmark that fails is recorded with its error and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import release_services  # noqa: E402

# name, script and arguments (full run), arguments of the quick run. Order matters: `admin`
# reuses the 500,000 documents `analytics` leaves in the bench database.
BENCHES: list[tuple[str, list[str], list[str]]] = [
    ("pipeline", ["pipeline.py", "--docs", "400", "--ingest-files", "100000"],
     ["pipeline.py", "--docs", "40", "--rounds", "2", "--ingest-files", "10000"]),
    ("chunk_store", ["chunk_store.py"], ["chunk_store.py", "--documents", "20", "--repeat", "1"]),
    ("ingest_500k", ["pipeline.py", "--docs", "0", "--ingest-files", "500000"],
     ["pipeline.py", "--docs", "0", "--ingest-files", "50000"]),
    ("analytics_50k", ["analytics.py", "--documents", "50000"],
     ["analytics.py", "--documents", "5000"]),
    ("analytics", ["analytics.py", "--documents", "500000"],
     ["analytics.py", "--documents", "50000"]),
    ("admin", ["admin.py", "--documents", "500000"],
     ["admin.py", "--documents", "50000", "--action-rows", "1000", "--repeat", "2"]),
    ("search", ["search.py"], ["search.py", "--chunks", "100000"]),
    ("memory", ["memory.py", "--production-tasks", "0"],
     ["memory.py", "--tasks", "1000", "--production-tasks", "0", "--skip-small"]),
    ("agents", ["agents.py", "--agents", "10000"], ["agents.py", "--agents", "1000"]),
    ("profiles", ["profiles.py", "--profiles", "20000", "--interactions", "200000"],
     ["profiles.py", "--profiles", "2000", "--interactions", "20000"]),
    # Last and longest: 500,000 documents generated and registered, then an hour of processing.
    ("scale", ["scale.py", "--documents", "500000", "--minutes", "60"],
     ["scale.py", "--documents", "5000", "--minutes", "2"]),
]  # fmt: skip

# figure name: (benchmark, path into its JSON, aim, how the aim reads); no aim: reported only
FIGURES: dict[str, tuple[str, tuple[str | int, ...], float | None, str]] = {
    "pipeline_efficiency_ratio": ("pipeline", ("efficiency_ratio",), 0.95, ">="),
    "pipeline_efficiency_ratio_dedicated_services_core": (
        "pipeline",
        ("dedicated_services_core", "efficiency_ratio"),
        0.95,
        ">=",
    ),
    "batch_overhead_ms_per_document_in_process": (
        "pipeline",
        ("batch_path_in_process", "overhead_ms_per_document"),
        None,
        "",
    ),
    "chunk_insert_server_ms_per_document": (
        "chunk_store",
        ("insert_server_ms_per_document",),
        None,
        "",
    ),
    "ingest_100k_files_per_second": ("pipeline", ("ingest", "files_per_second"), 5000, ">="),
    "ingest_500k_files_per_second": ("ingest_500k", ("ingest", "files_per_second"), 5000, ">="),
    "admin_action_10k_documents_ms": ("admin", ("action_process_selected_ids", "ms"), 1000, "<"),
    "admin_document_list_ms": ("admin", ("admin", "documents", "median_ms"), 1000, "<"),
    "search_p95_ms": ("search", ("figures", "p95_ms"), 100, "<"),
    "daily_rollup_500k_s": ("analytics", ("daily_rollup_s",), 5, "<"),
    "worker_memory_mb_per_1000_tasks": (
        "memory",
        ("runs", -1, "slope_mb_per_1000_tasks", "child_rss"),
        1,
        "<",
    ),
    "scale_docs_per_second_2_cores_shared": ("scale", ("run", "docs_per_second"), None, ""),
    "scale_500k_projected_hours_16_worker_cores": (
        "scale",
        ("projections", 1, "total_hours_with_registration"),
        None,
        "",
    ),
    "scale_500k_projected_hours_50_worker_cores": (
        "scale",
        ("projections", 2, "total_hours_with_registration"),
        None,
        "",
    ),
}


def run(name: str, command: list[str], timeout: float) -> dict[str, Any]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / command[0]), *command[1:]],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the benchmark stops its workers and gives back the cores it pinned.
        process.terminate()
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        return {"error": f"timed out after {timeout:.0f} s"}
    finally:
        # Whatever happened to it, PostgreSQL and Redis run on every core again.
        release_services(None, os.sched_getaffinity(0))
    elapsed = round(time.perf_counter() - started, 1)
    if process.returncode != 0:
        return {"error": stderr.strip()[-2000:], "seconds": elapsed}
    try:
        output = json.loads(stdout)
    except json.JSONDecodeError:
        return {"error": "no JSON on stdout", "stdout": stdout[-2000:]}
    return {**output, "bench_seconds": elapsed}


def dig(data: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        if isinstance(key, int):
            if not isinstance(data, list) or not -len(data) <= key < len(data):
                return None
        elif not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def figures(results: dict[str, Any]) -> dict[str, Any]:
    summary = {}
    for name, (bench, path, aim, sense) in FIGURES.items():
        value = dig(results.get(bench), path)
        met = None
        if aim is None:
            summary[name] = {"value": value, "aim": None, "met": None}
            continue
        if isinstance(value, int | float):
            met = value >= aim if sense == ">=" else value < aim
        summary[name] = {"value": value, "aim": f"{sense} {aim:g}", "met": met}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about a tenth of the sizes")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    parser.add_argument("--timeout", type=float, default=3 * 3600, help="per benchmark, seconds")
    parser.add_argument(
        "--update",
        action="store_true",
        help="keep the other benchmarks' results already in the output file",
    )
    parser.add_argument(
        "--result",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="take this benchmark's JSON from a file (a long run made on its own)",
    )
    args = parser.parse_args()
    names = {name for name, _, _ in BENCHES}
    given: dict[str, Path] = {}
    for item in args.result:
        name, _, path = item.partition("=")
        if name not in names or not path:
            parser.error(f"--result wants NAME=FILE with NAME one of {sorted(names)}")
        given[name] = Path(path)
    # A result taken from a file joins the others already in the output, never replaces them.
    update = args.update or bool(given)
    to_run = [
        (name, quick if args.quick else full)
        for name, full, quick in BENCHES
        if name not in given and (name in args.only if args.only else not given)
    ]
    for variable in ("DATABASE_URL", "CELERY_BROKER_URL"):
        if to_run and not os.environ.get(variable):
            sys.exit(f"{variable} must be set (PostgreSQL and Redis, as for the tests)")

    results: dict[str, Any] = {}
    if update and args.output.exists():
        results = json.loads(args.output.read_text())["benchmarks"]
    for name, path in given.items():
        when = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
        results[name] = {**json.loads(path.read_text()), "bench_when": when}
    for name, command in to_run:
        print(f"bench: {name} …", file=sys.stderr, flush=True)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        results[name] = {
            **run(name, command, args.timeout),
            "bench_when": when,
            "bench_quick": args.quick,
        }
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "figures": figures(results),
        "benchmarks": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["figures"], indent=2))
    print(f"Written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
