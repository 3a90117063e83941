"""Celery tasks for operations: the beat canary (queue `scheduled`)."""

from __future__ import annotations

from celery import Task, shared_task

from operations import services


@shared_task(
    bind=True,
    name="operations.tasks.heartbeat_task",
    ignore_result=True,  # one a minute: the Heartbeat row is its outcome
    soft_time_limit=20,
    time_limit=30,
)
def heartbeat_task(self: Task) -> None:
    """Beat, every minute: stamp the heartbeat that /healthz reads."""
    services.heartbeat_stamp(worker=self.request.hostname or "")
