"""Celery tasks for profiles (queue `medium`): thin callers of profiles.services."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from documents.tasks import retry_countdown
from profiles import services

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="profiles.tasks.profile_enrich_task",
    max_retries=3,
    soft_time_limit=120,
    time_limit=150,
)
def profile_enrich_task(self: Task, profile_id: int) -> str:
    """Enrich one profile from its whole history; a second delivery finds nothing to claim."""
    delivery = self.request.delivery_info or {}
    try:
        return services.profile_enrich(
            profile_id=profile_id,
            task_id=self.request.id,
            redelivered=bool(delivery.get("redelivered")) or self.request.retries > 0,
        )
    except (OperationalError, InterfaceError) as exc:
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc
    except Exception as exc:
        logger.exception("profile %s: enrichment failed", profile_id)
        services.profile_enrich_fail(
            profile_id=profile_id,
            task_id=self.request.id,
            error=f"Unexpected error ({type(exc).__name__}: {exc}). This is a bug; report it.",
        )
        raise


@shared_task(
    bind=True,
    name="profiles.tasks.profiles_enrich_batch_task",
    max_retries=3,
    soft_time_limit=600,
    time_limit=660,
)
def profiles_enrich_batch_task(self: Task, profile_ids: list[int]) -> int:
    """Enrich a batch of profiles (bulk runs); a second delivery finds nothing to claim."""
    delivery = self.request.delivery_info or {}
    try:
        return services.profiles_enrich_batch(
            profile_ids=profile_ids,
            task_id=self.request.id,
            redelivered=bool(delivery.get("redelivered")) or self.request.retries > 0,
        )
    except (OperationalError, InterfaceError) as exc:
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc


@shared_task(name="profiles.tasks.profiles_enrich_stale_task", soft_time_limit=600, time_limit=660)
def profiles_enrich_stale_task(stale_hours: float = 24.0) -> int:
    """Beat, nightly: queue enrichment of profiles not enriched for `stale_hours`."""
    return services.profiles_enrich_stale(stale_hours=stale_hours)
