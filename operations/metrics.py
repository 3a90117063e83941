"""Prometheus metrics: task counters shared by every worker (in Redis), and gauges read at
scrape time from the database and the broker.

Each worker process adds its task outcomes to one Redis hash, so the counters cover every
worker on every machine and survive worker restarts (not a broker flush: then they restart
from zero, which Prometheus' `rate()` treats as a counter reset). Recording never raises: a
metric must not fail a task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from operations.broker import broker_redis

logger = logging.getLogger(__name__)

KEY = "docflow:metrics:tasks"
_started: dict[str, float] = {}


def _enabled() -> bool:
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


def task_started(task_id: str) -> None:
    _started[task_id] = time.monotonic()


def task_finished(task_id: str, task_name: str, state: str) -> None:
    """Count the outcome (SUCCESS, FAILURE, RETRY, …) and the run time of one task."""
    started = _started.pop(task_id, None)
    if not _enabled():
        return
    try:
        pipe = broker_redis().pipeline(transaction=False)
        pipe.hincrby(KEY, f"count|{task_name}|{state}", 1)
        if started is not None:
            pipe.hincrbyfloat(KEY, f"seconds|{task_name}", time.monotonic() - started)
            pipe.hincrby(KEY, f"timed|{task_name}", 1)
        pipe.execute()
    except Exception as exc:
        logger.warning("task metrics not recorded: %s", exc)


def task_counters() -> dict[str, float]:
    if not _enabled():
        return {}
    raw = broker_redis().hgetall(KEY)
    return {key.decode(): float(value) for key, value in raw.items()}


class DocflowCollector(Collector):
    """Read at each scrape; every figure costs one indexed query or one Redis call."""

    def collect(self) -> Iterator[Any]:
        from documents.models import Document, DocumentStatus
        from operations.queues import queue_depths
        from operations.services import heartbeat_age_seconds

        documents = GaugeMetricFamily(
            "docflow_documents", "Documents by status.", labels=["status"]
        )
        counts = dict(Document.objects.order_by().values_list("status").annotate(n=Count("id")))
        for status in DocumentStatus.values:
            documents.add_metric([status], counts.get(status, 0))
        yield documents

        oldest = Document.objects.filter(status=DocumentStatus.QUEUED).aggregate(
            at=Min("queued_at")
        )["at"]
        yield GaugeMetricFamily(
            "docflow_oldest_queued_document_age_seconds",
            "Age of the oldest document waiting in queued (0 when none).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )
        age = heartbeat_age_seconds()
        yield GaugeMetricFamily(
            "docflow_heartbeat_age_seconds",
            "Seconds since the beat canary task last ran on a worker (-1: never).",
            value=-1.0 if age is None else age,
        )

        if not _enabled():
            return
        depth = GaugeMetricFamily(
            "docflow_queue_depth", "Messages waiting in a queue.", labels=["queue"]
        )
        try:
            for queue, waiting in queue_depths().items():
                depth.add_metric([queue], waiting or 0)
            counters = task_counters()
        except Exception as exc:
            logger.warning("metrics: broker unavailable: %s", exc)
            yield GaugeMetricFamily("docflow_broker_up", "The broker answered.", value=0)
            return
        yield GaugeMetricFamily("docflow_broker_up", "The broker answered.", value=1)
        yield depth

        tasks = CounterMetricFamily(
            "docflow_tasks", "Tasks finished, by task and state.", labels=["task", "state"]
        )
        retries = CounterMetricFamily(
            "docflow_task_retries", "Task retries scheduled, by task.", labels=["task"]
        )
        runtime = SummaryMetricFamily(
            "docflow_task_runtime_seconds", "Time tasks ran, by task.", labels=["task"]
        )
        for key, value in sorted(counters.items()):
            kind, _, rest = key.partition("|")
            if kind == "count":
                name, _, state = rest.rpartition("|")
                tasks.add_metric([name, state], value)
                if state == "RETRY":
                    retries.add_metric([name], value)
            elif kind == "timed":
                runtime.add_metric(
                    [rest], count_value=value, sum_value=counters.get(f"seconds|{rest}", 0.0)
                )
        yield tasks
        yield retries
        yield runtime
