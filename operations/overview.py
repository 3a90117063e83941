"""The figures on the admin index: documents by status, queue depths and the last hour's
failures, each linking to the rows behind it.

The index is the page everyone opens first, so every figure is one indexed query (or one
broker round trip with a short timeout) and is cached for a few seconds per process: a room
full of people reloading it does not turn into a COUNT storm on 500,000 rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.core.cache import cache
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from analytics.models import ReportStatus, UsageReport
from documents.models import Document, DocumentStatus
from operations.models import DeadLetter
from operations.queues import queue_stats

CACHE_SECONDS = 10


@dataclass
class Figure:
    label: str
    value: int | None  # None: could not be read
    url: str = ""
    tone: str = ""  # a status, for the badge colour


@dataclass
class Overview:
    documents: list[Figure] = field(default_factory=list)
    queues: list[Figure] = field(default_factory=list)
    queue_error: str = ""
    failures: list[Figure] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.documents or self.queues or self.failures)


def _changelist(model: type, **filters: Any) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def _document_counts() -> dict[str, int]:
    rows = Document.objects.order_by().values_list("status").annotate(n=Count("pk"))
    return dict(rows)


def _queue_depths() -> tuple[dict[str, int | None], str]:
    stats = queue_stats(workers=False)  # a broker that does not answer is a figure, not a 500
    if stats.inline:
        return {}, "No broker: tasks run inline."
    return stats.queues, stats.broker_error


def _failures_since(since: Any) -> dict[str, int]:
    return {
        "documents": Document.objects.filter(
            status=DocumentStatus.FAILED, finished_at__gte=since
        ).count(),
        "dead_letters": DeadLetter.objects.filter(failed_at__gte=since).count(),
        "reports": UsageReport.objects.filter(
            status=ReportStatus.FAILED, finished_at__gte=since
        ).count(),
    }


def _cached(key: str, compute: Any) -> Any:
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, CACHE_SECONDS)
    return value


def admin_overview(user: Any) -> Overview:
    """What `user` may see of the figures (each block needs the view permission of its rows)."""
    overview = Overview()
    if user.has_perm("documents.view_document"):
        counts = _cached("docflow:overview:documents", _document_counts)
        overview.documents = [
            Figure(
                status.label,
                counts.get(status.value, 0),
                _changelist(Document, status__exact=status.value),
                status.value,
            )
            for status in DocumentStatus
        ]
        depths, overview.queue_error = _cached("docflow:overview:queues", _queue_depths)
        queues_url = reverse("operations-queues")
        overview.queues = [Figure(name, depth, queues_url) for name, depth in depths.items()]
    hour_ago = timezone.now() - timedelta(hours=1)
    failures = _cached("docflow:overview:failures", lambda: _failures_since(hour_ago))
    since = hour_ago.strftime("%Y-%m-%d %H:%M:%S")
    blocks = (
        ("documents.view_document", "Documents failed", "documents", Document,
         {"status__exact": "failed", "finished_at__gte": since}),
        ("operations.view_deadletter", "Dead letters", "dead_letters", DeadLetter,
         {"failed_at__gte": since}),
        ("analytics.view_usagereport", "Usage reports failed", "reports", UsageReport,
         {"status__exact": "failed", "finished_at__gte": since}),
    )  # fmt: skip
    overview.failures = [
        Figure(
            label, failures[key], _changelist(model, **filters), "failed" if failures[key] else ""
        )
        for permission, label, key, model, filters in blocks
        if user.has_perm(permission)
    ]
    return overview
