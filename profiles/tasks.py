"""Celery tasks for profiles (queue `medium`): thin callers of profiles.services."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from celery import Task, shared_task
from django.db import DatabaseError, InterfaceError, OperationalError

from documents.tasks import retry_countdown
from profiles import services

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _redelivered(task: Task) -> bool:
    delivery = task.request.delivery_info or {}
    return bool(delivery.get("redelivered")) or task.request.retries > 0


def _run(task: Task, work: Callable[[bool], T], what: str) -> T:
    """Retry an unavailable database with backoff; on anything else, or when retries run
    out, mark the task's profiles failed (a stale profile is queued again by the next
    interaction or the nightly run) and let Celery record the failure."""
    try:
        return work(_redelivered(task))
    except (OperationalError, InterfaceError) as exc:
        if task.request.retries < task.max_retries:
            raise task.retry(exc=exc, countdown=retry_countdown(task.request.retries)) from exc
        _record_failure(task, f"Database unavailable: {exc}")
        raise
    except Exception as exc:
        logger.exception("%s: enrichment failed", what)
        _record_failure(
            task, f"Unexpected error ({type(exc).__name__}: {exc}). This is a bug; report it."
        )
        raise


def _record_failure(task: Task, error: str) -> None:
    try:
        services.profile_enrich_fail(task_id=task.request.id, error=error)
    except DatabaseError:
        logger.exception("could not record the enrichment failure of task %s", task.request.id)


@shared_task(
    bind=True,
    name="profiles.tasks.profile_enrich_task",
    max_retries=3,
    soft_time_limit=120,
    time_limit=150,
)
def profile_enrich_task(self: Task, profile_id: int) -> str:
    """Enrich one profile from its whole history; a second delivery finds nothing to claim."""
    return _run(
        self,
        lambda redelivered: services.profile_enrich(
            profile_id=profile_id, task_id=self.request.id, redelivered=redelivered
        ),
        f"profile {profile_id}",
    )


@shared_task(
    bind=True,
    name="profiles.tasks.profiles_enrich_batch_task",
    max_retries=3,
    soft_time_limit=600,
    time_limit=660,
)
def profiles_enrich_batch_task(self: Task, profile_ids: list[int]) -> int:
    """Enrich a batch of profiles (bulk runs); a second delivery finds nothing to claim."""
    return _run(
        self,
        lambda redelivered: services.profiles_enrich_batch(
            profile_ids=profile_ids, task_id=self.request.id, redelivered=redelivered
        ),
        f"batch of {len(profile_ids)} profiles",
    )


@shared_task(name="profiles.tasks.profiles_enrich_stale_task", soft_time_limit=600, time_limit=660)
def profiles_enrich_stale_task(stale_hours: float = 24.0) -> int:
    """Beat, nightly: queue enrichment of profiles not enriched for `stale_hours`."""
    return services.profiles_enrich_stale(stale_hours=stale_hours)
