"""Analytics reads for the dashboard: series built from snapshots, never from raw tables."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from analytics.models import Granularity, Scope, Snapshot
from analytics.rollups import periods_between

TOTALS = (
    "documents_uploaded",
    "documents_processed",
    "documents_failed",
    "documents_duplicate",
    "pages",
    "chunks",
    "interactions",
    "tokens_used",
    "profiles_enriched",
    "agents_created",
)
SENTIMENT_LABELS = ("positive", "neutral", "negative")


@dataclass
class DashboardData:
    granularity: str
    labels: list[str] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    processing_p50: list[float | None] = field(default_factory=list)
    processing_p95: list[float | None] = field(default_factory=list)
    wait_p50: list[float | None] = field(default_factory=list)
    wait_p95: list[float | None] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    sentiment_by_segment: dict[str, dict[str, int]] = field(default_factory=dict)
    failure_reasons: list[tuple[str, int]] = field(default_factory=list)
    periods_missing: int = 0


def _label(granularity: str, period_start: datetime) -> str:
    if granularity == Granularity.DAILY:
        return period_start.date().isoformat()
    return timezone.localtime(period_start).strftime("%d %b %H:%M")


def dashboard_data(
    *, organization_id: int | None, start: datetime, end: datetime, granularity: str
) -> DashboardData:
    """One organization's (or the whole system's) figures per period of [start, end)."""
    periods = periods_between(granularity, start, end)
    scope = (
        {"scope": Scope.ORGANIZATION, "scope_id": organization_id}
        if organization_id
        else {"scope": Scope.SYSTEM, "scope_id": 0}
    )
    snapshots: dict[datetime, dict[str, Any]] = {
        row["period_start"]: row
        for row in Snapshot.objects.filter(
            granularity=granularity, period_start__gte=start, period_start__lt=end, **scope
        ).values()
    }
    filled = set(
        Snapshot.objects.filter(
            granularity=granularity,
            scope=Scope.SYSTEM,
            period_start__gte=start,
            period_start__lt=end,
        ).values_list("period_start", flat=True)
    )
    data = DashboardData(granularity=granularity, totals=dict.fromkeys(TOTALS, 0))
    data.periods_missing = sum(1 for period in periods if period not in filled)
    sentiment: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    reasons: dict[str, int] = defaultdict(int)
    for period in periods:
        row = snapshots.get(period, {})
        data.labels.append(_label(granularity, period))
        data.processed.append(row.get("documents_processed", 0))
        data.failed.append(row.get("documents_failed", 0))
        data.processing_p50.append(row.get("processing_seconds_p50"))
        data.processing_p95.append(row.get("processing_seconds_p95"))
        data.wait_p50.append(row.get("queue_wait_seconds_p50"))
        data.wait_p95.append(row.get("queue_wait_seconds_p95"))
        for name in TOTALS:
            data.totals[name] += row.get(name, 0)
        for segment, labels in (row.get("sentiment_by_segment") or {}).items():
            for label, count in labels.items():
                sentiment[segment][label] += count
        for code, count in (row.get("failure_reasons") or {}).items():
            reasons[code] += count
    data.sentiment_by_segment = {s: dict(labels) for s, labels in sorted(sentiment.items())}
    data.failure_reasons = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))[:10]
    return data
