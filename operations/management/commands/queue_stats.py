"""Print messages waiting per queue and what each worker is doing."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from operations.queues import queue_stats


class Command(BaseCommand):
    help = "Messages waiting per queue (from the broker) and each worker's active, reserved and "
    "scheduled tasks (Celery inspect)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
        parser.add_argument(
            "--timeout", type=float, default=1.0, help="Seconds to wait for workers to answer."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        stats = queue_stats(timeout=options["timeout"])
        if options["json"]:
            self.stdout.write(json.dumps(stats.as_dict()))
            return
        if stats.inline:
            self.stdout.write("No broker configured: tasks run inline, nothing is queued.")
            return
        if stats.broker_error:
            self.stderr.write(stats.broker_error)
        self.stdout.write("queue       waiting")
        for name, depth in stats.queues.items():
            self.stdout.write(f"{name:10} {'?' if depth is None else depth:>8}")
        self.stdout.write(f"\n{len(stats.workers)} worker(s) online")
        for worker in stats.workers:
            self.stdout.write(
                f"{worker.name}: queues {','.join(worker.queues) or '-'}, "
                f"concurrency {worker.concurrency or '?'}, active {worker.active}, "
                f"reserved {worker.reserved}, scheduled {worker.scheduled}, "
                f"processed {worker.processed if worker.processed is not None else '?'}"
            )
