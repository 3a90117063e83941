"""Analytics writes: filling rollup periods and generating usage reports.

Filling follows Zulip's FillState: a state row per granularity says how far the snapshots
go; a run fills every complete period since, one transaction per period (delete the period's
snapshots, insert the new ones), so a period computed twice leaves one row per scope and a
run that dies half-way leaves the period `started`, to be recomputed by the next run. Runs of
one granularity are serialized by a PostgreSQL advisory lock: a beat tick delivered twice
finds the first run holding it and returns.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import F, Min
from django.utils import timezone

from analytics import report_files
from analytics.models import (
    FillState,
    Granularity,
    ReportFormat,
    ReportStatus,
    Scope,
    Snapshot,
    UsageReport,
)
from analytics.rollups import compute_period, period_floor, period_length, periods_between
from documents.models import Agent, Document, Organization
from documents.services import docflow_setting, durable
from profiles.models import Interaction

logger = logging.getLogger(__name__)


@dataclass
class FillSummary:
    """What one run did; the task returns it, so it lands in django-celery-results."""

    granularity: str
    periods: int = 0
    snapshots: int = 0
    first_period: str | None = None
    last_period: str | None = None
    seconds: float = 0.0
    skipped: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def _exclusive(name: str, *, wait: bool) -> Iterator[bool]:
    """A session-level advisory lock on PostgreSQL (other databases run one process)."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = _lock_key(name)
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
            acquired = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def period_replace(*, granularity: str, period_start: datetime) -> int:
    """Recompute one period and replace its snapshots; returns how many were written."""
    with durable():
        if connection.vendor == "postgresql":
            # A day's percentiles sort every document of the day: in memory, not on disk.
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('work_mem', %s, true)",
                    [docflow_setting("ANALYTICS_WORK_MEM")],
                )
        snapshots = compute_period(granularity, period_start)
        now = timezone.now()
        for snapshot in snapshots:
            snapshot.computed_at = now
        Snapshot.objects.filter(granularity=granularity, period_start=period_start).delete()
        Snapshot.objects.bulk_create(snapshots)
        FillState.objects.filter(
            granularity=granularity, period_start=period_start, state=FillState.State.STARTED
        ).update(state=FillState.State.DONE)
    return len(snapshots)


def _first_unfilled(granularity: str, horizon: datetime, now: datetime) -> datetime:
    state = FillState.objects.filter(granularity=granularity).first()
    step = period_length(granularity)
    if state is not None:
        return (
            state.period_start
            if state.state == FillState.State.STARTED
            else (state.period_start + step)
        )
    earliest = [
        value
        for value in (
            Document.objects.aggregate(at=Min("created_at"))["at"],
            Interaction.objects.aggregate(at=Min("occurred_at"))["at"],
            Agent.objects.aggregate(at=Min("created_at"))["at"],
        )
        if value is not None
    ]
    if not earliest:
        return horizon - step
    oldest_allowed = now - timedelta(days=docflow_setting("ANALYTICS_BACKFILL_DAYS"))
    return period_floor(granularity, max(min(earliest), oldest_allowed))


def analytics_fill(
    *,
    granularity: str,
    start: datetime | None = None,
    end: datetime | None = None,
    recompute: bool = False,
    wait: bool = False,
    now: datetime | None = None,
) -> FillSummary:
    """Fill complete periods of one granularity.

    Without `start`: every period since the fill state (the beat path). With `start`/`end`:
    the periods in that range that have no snapshots yet, or all of them with `recompute`
    (backfills and corrections after late data); the fill state is left alone.
    """
    if granularity not in Granularity.values:
        raise ValueError(f"Unknown granularity {granularity!r}: use hourly or daily.")
    began = time.monotonic()
    now = now or timezone.now()
    horizon = period_floor(granularity, now)  # periods must have ended by then
    summary = FillSummary(granularity=granularity)
    with _exclusive(f"analytics_fill:{granularity}", wait=wait) as acquired:
        if not acquired:
            summary.skipped = "another run of this granularity is in progress"
            return summary
        if start is None:
            periods = periods_between(
                granularity, _first_unfilled(granularity, horizon, now), horizon
            )
        else:
            periods = periods_between(granularity, start, min(end or horizon, horizon))
            if not recompute:
                filled = set(
                    Snapshot.objects.filter(
                        granularity=granularity,
                        scope=Scope.SYSTEM,
                        period_start__in=periods,
                    ).values_list("period_start", flat=True)
                )
                periods = [p for p in periods if p not in filled]
        for period_start in periods:
            if start is None:
                FillState.objects.update_or_create(
                    granularity=granularity,
                    defaults={"period_start": period_start, "state": FillState.State.STARTED},
                )
            summary.snapshots += period_replace(granularity=granularity, period_start=period_start)
        if periods:
            summary.periods = len(periods)
            summary.first_period = periods[0].isoformat()
            summary.last_period = periods[-1].isoformat()
    summary.seconds = round(time.monotonic() - began, 3)
    return summary


# --- Usage reports ----------------------------------------------------------------------------


def month_start(moment: date) -> date:
    return moment.replace(day=1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) in UTC."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    return start, following


def previous_month(today: date) -> date:
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def usage_reports_request(
    *,
    organization_ids: Iterable[int],
    month: date,
    formats: Iterable[str],
    created_by: Any = None,
) -> list[UsageReport]:
    """Queue a report per organization and format (regenerating existing ones)."""
    from analytics.tasks import usage_report_task

    month = month_start(month)
    if month > month_start(timezone.now().date()):
        raise ValueError(f"{month:%Y-%m} has not started yet.")
    formats = list(formats)
    unknown = set(formats) - set(ReportFormat.values)
    if unknown:
        raise ValueError(f"Unknown report format {sorted(unknown)[0]!r}: use pdf or csv.")
    reports = []
    with transaction.atomic():
        for organization_id in organization_ids:
            for fmt in formats:
                task_id = str(uuid.uuid4())
                report, _ = UsageReport.objects.update_or_create(
                    organization_id=organization_id,
                    month=month,
                    format=fmt,
                    defaults={
                        "status": ReportStatus.QUEUED,
                        "task_id": task_id,
                        "error": "",
                        "attempts": 0,
                        "queued_at": timezone.now(),
                        "finished_at": None,
                        **({"created_by": created_by} if created_by is not None else {}),
                    },
                )
                transaction.on_commit(
                    partial(usage_report_task.apply_async, args=[report.pk], task_id=task_id)
                )
                reports.append(report)
    return reports


def usage_report_data(
    *, organization: Organization, month: date, generated_at: datetime
) -> report_files.UsageReportData:
    """The month's figures per agent and day, read from the daily agent snapshots."""
    start, end = month_bounds(month)
    rows = (
        Snapshot.objects.filter(
            granularity=Granularity.DAILY,
            scope=Scope.AGENT,
            organization=organization,
            period_start__gte=start,
            period_start__lt=end,
        )
        .order_by("period_start", "agent__slug")
        .values("period_start", "agent__slug", "agent__name", *report_files.METRICS)
    )
    return report_files.UsageReportData(
        organization_name=organization.name,
        organization_slug=organization.slug,
        month=month,
        generated_at=generated_at,
        agents=list(
            Agent.objects.filter(organization=organization)
            .order_by("name")
            .values_list("slug", "name")
        ),
        rows=[
            report_files.UsageRow(
                day=row["period_start"].astimezone(UTC).date(),
                agent_slug=row["agent__slug"],
                agent_name=row["agent__name"],
                **{metric: row[metric] for metric in report_files.METRICS},
            )
            for row in rows
        ],
    )


def usage_report_render(
    *, organization: Organization, month: date, fmt: str, now: datetime | None = None
) -> bytes:
    """The report file's bytes, after filling any missing complete day of the month."""
    now = now or timezone.now()
    start, end = month_bounds(month)
    analytics_fill(granularity=Granularity.DAILY, start=start, end=end, wait=True, now=now)
    data = usage_report_data(organization=organization, month=month, generated_at=now)
    if fmt == ReportFormat.PDF:
        return report_files.render_pdf(data)
    return report_files.render_csv(data)


def usage_report_generate(*, report_id: int, task_id: str) -> str | None:
    """Claim the report for this task, write its file, and mark it done; returns the file
    name, or None when the report is gone or belongs to a newer request."""
    claimed = UsageReport.objects.filter(
        pk=report_id, task_id=task_id, status__in=[ReportStatus.QUEUED, ReportStatus.PROCESSING]
    ).update(status=ReportStatus.PROCESSING, attempts=F("attempts") + 1)
    if not claimed:
        logger.info("usage report %s: nothing to do for task %s", report_id, task_id)
        return None
    report = UsageReport.objects.select_related("organization").get(pk=report_id)
    if report.attempts > docflow_setting("MAX_ATTEMPTS"):  # it killed its worker every time
        usage_report_fail(
            report_id=report_id,
            task_id=task_id,
            error=f"Gave up after {report.attempts - 1} attempts that did not finish.",
        )
        return None
    content = usage_report_render(
        organization=report.organization, month=report.month, fmt=report.format
    )
    name = f"usage-{report.organization.slug}-{report.month:%Y-%m}.{report.format}"
    old_name = report.file.name
    report.file.save(name, ContentFile(content), save=False)
    with durable():
        updated = UsageReport.objects.filter(pk=report_id, task_id=task_id).update(
            status=ReportStatus.DONE, file=report.file.name, error="", finished_at=timezone.now()
        )
    if not updated:  # a newer request took the row over meanwhile: keep its file, not ours
        report.file.storage.delete(report.file.name)
        return None
    if old_name and old_name != report.file.name:
        report.file.storage.delete(old_name)
    return report.file.name


def usage_report_fail(*, report_id: int, task_id: str, error: str) -> None:
    with durable():
        UsageReport.objects.filter(pk=report_id, task_id=task_id).update(
            status=ReportStatus.FAILED, error=error, finished_at=timezone.now()
        )


def usage_reports_request_monthly(*, today: date | None = None) -> int:
    """The monthly beat entry: last month's reports for every organization."""
    month = previous_month(today or timezone.now().date())
    reports = usage_reports_request(
        organization_ids=Organization.objects.order_by("pk").values_list("pk", flat=True),
        month=month,
        formats=docflow_setting("USAGE_REPORT_FORMATS"),
    )
    return len(reports)
