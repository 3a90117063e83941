"""Celery tasks for analytics (queue `scheduled`, reports on `low`): thin callers of
analytics.services. Their return values are summaries stored by django-celery-results."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from celery import Task, shared_task
from django.db import DatabaseError, InterfaceError, OperationalError

from analytics import services
from documents.tasks import retry_countdown

logger = logging.getLogger(__name__)
TRANSIENT = (OperationalError, InterfaceError)
MAX_RETRIES = 4


@shared_task(
    bind=True,
    name="analytics.tasks.analytics_fill_task",
    max_retries=MAX_RETRIES,
    soft_time_limit=1500,
    time_limit=1560,
)
def analytics_fill_task(self: Task, granularity: str) -> dict[str, Any]:
    """Beat: fill every complete period since the last run. A second delivery of the same
    tick finds the first holding the lock, or nothing left to fill."""
    try:
        return services.analytics_fill(granularity=granularity).as_dict()
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc


@shared_task(
    bind=True,
    name="analytics.tasks.usage_report_task",
    max_retries=MAX_RETRIES,
    soft_time_limit=600,
    time_limit=660,
)
def usage_report_task(self: Task, report_id: int) -> str | None:
    """Write one usage report's file; the row records the outcome."""
    try:
        return services.usage_report_generate(report_id=report_id, task_id=self.request.id)
    except TRANSIENT as exc:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc
        _fail(report_id, self.request.id, f"Database unavailable: {exc}")
        raise
    except Exception as exc:
        logger.exception("usage report %s failed", report_id)
        _fail(
            report_id,
            self.request.id,
            f"Unexpected error ({type(exc).__name__}: {exc}). This is a bug; report it.",
        )
        raise


def _fail(report_id: int, task_id: str, error: str) -> None:
    try:
        services.usage_report_fail(report_id=report_id, task_id=task_id, error=error)
    except DatabaseError:
        logger.exception("could not record the failure of usage report %s", report_id)


@shared_task(
    bind=True,
    name="analytics.tasks.usage_reports_monthly_task",
    max_retries=MAX_RETRIES,
    soft_time_limit=600,
    time_limit=660,
)
def usage_reports_monthly_task(self: Task, today: str | None = None) -> dict[str, Any]:
    """Beat, monthly: queue last month's reports for every organization (re-running only
    regenerates the same rows)."""
    try:
        queued = services.usage_reports_request_monthly(
            today=date.fromisoformat(today) if today else None
        )
    except TRANSIENT as exc:
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc
    return {"reports_queued": queued}
