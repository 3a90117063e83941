"""Where a worker's time goes: py-spy samples of a real worker processing documents.

    python bench/worker_profile.py [--docs 400] [--pages 5] [--processes 2] [--rate 250]
                                   [--raw FILE]

A worker (`celery worker -c N`, warmed as in pipeline.py) processes the same generated PDFs as
the efficiency benchmark, registered twenty at a time, while `py-spy record --subprocesses`
samples its main process and children. The samples are summarized as one JSON object, every
figure a share of all samples: the main process; `run_pipeline`, and each of its stages (the
module of `documents/pipeline/` the sample is in); and the rest, by the place in this
project's code it went through and the library it ended in. The efficiency ratio says how
much the system adds; this says where.

py-spy (requirements-dev.txt) reads other processes' memory: it needs ptrace rights (root, or
CAP_SYS_PTRACE in a container). Idle samples (waiting on a socket) are not counted, as py-spy
leaves them out by default, so the shares are of CPU-bound time. Needs DATABASE_URL and
CELERY_BROKER_URL as the other benchmarks (a database `<name>_profile` is created).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402
    _segment,
    make_corpus,
    prepare_bench,
    start_worker,
    stop_worker,
    system_segment,
    warm_worker,
)

# "function (path:line)", as py-spy's raw format writes a Python frame ("function (path)"
# when it has no line number).
_FRAME = re.compile(r"^(?P<function>.+) \((?P<path>[^()]+?)(?::(?P<line>\d+))?\)$")
# "process 123:\"command\"", the first frames of each stack with --subprocesses.
_PROCESS = re.compile(r"^process (?P<pid>\d+):")
_PIPELINE_ENTRY = ("run_pipeline", "documents/pipeline/runner.py")
SEGMENT = 20  # documents registered at a time, as in the efficiency benchmark
_OWN_PACKAGES = ("documents/", "profiles/", "analytics/", "operations/", "config/")


def _project_path(path: str) -> str | None:
    """`path` relative to the project when it is this project's code, else None. py-spy writes
    it from the package on ("documents/services.py"), or in full."""
    relative = path.removeprefix(f"{ROOT}/")
    return relative if relative.startswith(_OWN_PACKAGES) else None


def _library(path: str) -> str:
    """The top-level package a frame's file belongs to ("psycopg", "kombu", "json", …).

    py-spy writes a library's path from its package on ("psycopg/cursor.py") and a frozen
    module as "<frozen posixpath>"; a full path is cut after site-packages or lib/pythonX.Y."""
    if path.startswith("<frozen "):
        return path.removeprefix("<frozen ").removesuffix(">")
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    if "/lib/python3" in path:
        path = path.split("/lib/python3", 1)[1].split("/", 1)[-1]
    return path.split("/", 1)[0].removesuffix(".py")


def summarize_profile(lines: Iterable[str], *, main_pid: int, top: int = 15) -> dict[str, Any]:
    """The py-spy raw profile (`stack count` lines, root frame first, recorded with
    --subprocesses) of a worker whose main process is `main_pid`. Every share, stages and
    places included, is a share of all samples."""
    total = 0
    main = 0
    pipeline = 0
    stages: Counter[str] = Counter()
    outside: Counter[tuple[str, str]] = Counter()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        # With --subprocesses a child's stack starts with its parent's process frame, then
        # its own: the last one says whose sample it is.
        pids = [int(match["pid"]) for frame in frames if (match := _PROCESS.match(frame))]
        if not pids:
            raise ValueError("a stack without its process: record with --subprocesses")
        if pids[-1] == main_pid:
            main += count
            continue
        parsed = [match for frame in frames if (match := _FRAME.match(frame))]
        if any(
            (match["function"], _project_path(match["path"])) == _PIPELINE_ENTRY for match in parsed
        ):
            pipeline += count
            stage = next(
                (
                    Path(match["path"]).stem
                    for match in reversed(parsed)
                    if (_project_path(match["path"]) or "").startswith("documents/pipeline/")
                ),
                "runner",
            )
            stages[stage] += count
            continue
        own = next(
            (
                (f"{project}:{match['function']}", match)
                for match in reversed(parsed)
                if (project := _project_path(match["path"]))
            ),
            None,
        )
        leaf = "?"
        if parsed:
            leaf_path = parsed[-1]["path"]
            leaf = "(own code)" if _project_path(leaf_path) else _library(leaf_path)
        outside[(own[0] if own else "(no project frame)", leaf)] += count

    def share(count: int) -> float:
        return round(count / total, 4) if total else 0.0

    children = total - main
    return {
        "samples": total,
        "main_process_share": share(main),
        "children_share": share(children),
        "pipeline_share": share(pipeline),
        "pipeline_stages": {stage: share(count) for stage, count in stages.most_common()},
        "outside_pipeline_share": share(children - pipeline),
        "outside_pipeline_top": [
            {"where": where, "ends_in": leaf, "share": share(count)}
            for (where, leaf), count in outside.most_common(top)
        ],
    }


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        sys.exit("py-spy is not installed (pip install -r requirements-dev.txt)")
    return found


def record(worker_pid: int, raw: Path, rate: int) -> subprocess.Popen[bytes]:
    recorder = subprocess.Popen(
        [
            py_spy(),
            "record",
            "--pid",
            str(worker_pid),
            "--subprocesses",
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(2)  # py-spy attaches to each process first
    if recorder.poll() is not None:
        error = recorder.stderr.read().decode(errors="replace") if recorder.stderr else ""
        sys.exit(f"py-spy could not attach (ptrace rights?): {error.strip()}")
    return recorder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=400, help="documents processed while sampled")
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rate", type=int, default=250, help="samples per second and process")
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw profile here")
    args = parser.parse_args()
    py_spy()  # before minutes of setup

    env, workdir = prepare_bench("docflow-profile-", suffix="_profile")
    from documents import services

    corpus = make_corpus(workdir / "corpus", args.docs, args.pages)
    raw = args.raw or workdir / "profile.txt"
    documents = not_done = 0
    recorder: subprocess.Popen[bytes] | None = None
    worker = start_worker(env, args.processes, "high,medium,low")
    try:
        warm_worker(worker, "profile", args.processes)
        recorder = record(worker.pid, raw, args.rate)
        started = time.perf_counter()
        for index in range(-(-args.docs // SEGMENT)):
            agent = services.agent_get_or_create(
                organization_slug="bench", agent_slug=f"profile-{index}"
            )
            segment = system_segment(worker, agent, _segment(corpus, index, SEGMENT))
            documents += segment["documents"]
            not_done += segment["not_done"]
        seconds = time.perf_counter() - started
    finally:
        if recorder is not None:
            stop_recording(recorder)
        stop_worker(worker)
    if recorder is None or recorder.returncode != 0 or not raw.exists():
        code = recorder.returncode if recorder else None
        sys.exit(f"py-spy failed (exit code {code}); no profile written")
    with raw.open() as lines:
        summary = summarize_profile(lines, main_pid=worker.pid)
    print(
        json.dumps(
            {
                "documents": documents,
                "not_done": not_done,
                "processes": args.processes,
                "seconds": round(seconds, 1),
                "rate_per_process": args.rate,
                "raw_profile": str(raw),
                **summary,
            },
            indent=2,
        )
    )


def stop_recording(recorder: subprocess.Popen[bytes]) -> None:
    """py-spy writes its output when interrupted; one that does not stop is killed."""
    if recorder.poll() is None:
        recorder.send_signal(signal.SIGINT)
    try:
        recorder.wait(timeout=60)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait()


if __name__ == "__main__":
    main()
