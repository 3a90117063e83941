"""Queue depths read from the broker and worker activity from Celery's remote control.

Both are best effort: a broker that does not answer is reported as an error in the figures,
never as an exception in a page or a command, and `inspect` waits a bounded time, so a busy or
dead worker makes the answer late by at most that, not stuck.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from amqp.exceptions import ChannelError
from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass
class WorkerFigures:
    name: str
    queues: list[str] = field(default_factory=list)
    active: int = 0
    reserved: int = 0
    scheduled: int = 0
    concurrency: int | None = None
    processed: int | None = None  # tasks received since the worker started


@dataclass
class QueueStats:
    queues: dict[str, int | None] = field(default_factory=dict)  # None: could not be read
    workers: list[WorkerFigures] = field(default_factory=list)
    broker_error: str = ""
    inline: bool = False  # no broker: tasks run in the calling process

    @property
    def pending(self) -> int:
        return sum(depth or 0 for depth in self.queues.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "pending": self.pending,
            "workers_online": len(self.workers),
        }


def queue_names() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def queue_depths(names: Iterable[str] | None = None) -> dict[str, int | None]:
    """Messages waiting in each queue (all configured ones by default), on Redis counted over
    every priority list."""
    from config.celery import app

    depths: dict[str, int | None] = {}
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)  # fail fast
        channel = conn.default_channel
        for name in names if names is not None else queue_names():
            try:
                depths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except ChannelError:  # never declared, so nothing waits in it
                depths[name] = 0
    return depths


def worker_figures(timeout: float) -> list[WorkerFigures]:
    """Per worker that answers within `timeout`: what it runs, holds and has scheduled."""
    from config.celery import app

    inspect = app.control.inspect(timeout=timeout)
    replies = {
        "active": inspect.active() or {},
        "reserved": inspect.reserved() or {},
        "scheduled": inspect.scheduled() or {},
        "queues": inspect.active_queues() or {},
        "stats": inspect.stats() or {},
    }
    names = sorted(set().union(*(reply.keys() for reply in replies.values())))
    workers = []
    for name in names:
        stats = replies["stats"].get(name, {})
        workers.append(
            WorkerFigures(
                name=name,
                queues=sorted(q["name"] for q in replies["queues"].get(name, [])),
                active=len(replies["active"].get(name, [])),
                reserved=len(replies["reserved"].get(name, [])),
                scheduled=len(replies["scheduled"].get(name, [])),
                concurrency=(stats.get("pool") or {}).get("max-concurrency"),
                processed=sum((stats.get("total") or {}).values()) if stats else None,
            )
        )
    return workers


def queue_stats(*, timeout: float = 1.0, workers: bool = True) -> QueueStats:
    """Queue depths and, with `workers`, what each worker holds (an `inspect` round trip of up
    to `timeout`; the admin index leaves it out)."""
    from config.celery import app

    if app.conf.task_always_eager:
        return QueueStats(queues=dict.fromkeys(queue_names(), 0), inline=True)
    stats = QueueStats()
    try:
        stats.queues = queue_depths()
        if workers:
            stats.workers = worker_figures(timeout)
    except Exception as exc:  # the broker is down: say so in the figures
        logger.warning("queue stats: broker unavailable: %s", exc)
        stats.queues = dict.fromkeys(queue_names())
        stats.broker_error = f"The broker did not answer: {exc}"
    return stats
