"""Agent import benchmark: 10,000 agents through `bulk_create_agents --wait` and a real worker.

    python bench/agents.py [--agents 10000]

Needs DATABASE_URL (PostgreSQL; a database `<name>_bench` is created) and CELERY_BROKER_URL
(Redis; the database given is flushed). Prints one JSON object with the first import (all
created) and the second (all unchanged), and the queries the worker ran per row.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402  (path set above)
    prepare_bench,
    start_worker,
    stop_worker,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=10_000)
    args = parser.parse_args()
    env, workdir = prepare_bench("docflow-bench-agents-")
    from django.core.management import call_command

    from documents.models import Organization

    Organization.objects.create(name="Bench", slug="bench")
    path = workdir / "agents.csv"
    lines = [
        f"bench,Agent {i},agent-{i},You are agent {i}; answer briefly.,gpt-4o-mini,0.{i % 10},"
        for i in range(args.agents)
    ]
    header = "organization,name,slug,persona,model,temperature,documents\n"
    path.write_text(header + "\n".join(lines) + "\n")

    worker = start_worker(env, 1, "low")
    runs = []
    for label in ("first (creates)", "second (unchanged)"):
        out = open(os.devnull, "w")  # noqa: SIM115
        started = time.perf_counter()
        call_command("bulk_create_agents", str(path), wait=True, json=True, stdout=out)
        elapsed = time.perf_counter() - started
        runs.append({"run": label, "seconds": elapsed, "agents_per_second": args.agents / elapsed})
    stop_worker(worker)
    print(json.dumps({"agents": args.agents, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
