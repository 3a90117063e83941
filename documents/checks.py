"""System checks for settings whose wrong values only show under load."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.compatibility)
def check_visibility_timeout(**_: Any) -> list[checks.CheckMessage]:
    """Redis redelivers unacked messages after visibility_timeout, counted from their
    receipt: a task still running by then would run twice. A prefetched message first waits
    for the tasks ahead of it, so the timeout must outlast (prefetch + 1) hard time limits."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    longest = max(settings.CELERY_TASK_TIME_LIMIT, settings.DOCFLOW["PROCESS_TIME_LIMIT"])
    held = (settings.CELERY_WORKER_PREFETCH_MULTIPLIER + 1) * longest
    if visibility <= held:
        return [
            checks.Error(
                f"Redis visibility_timeout ({visibility}s) must exceed the longest time a "
                f"message is held: the longest task hard time limit ({longest}s) times "
                f"CELERY_WORKER_PREFETCH_MULTIPLIER + 1 ({held}s), or long tasks are "
                "delivered twice.",
                id="docflow.E001",
            )
        ]
    return []


@checks.register(checks.Tags.compatibility)
def check_queued_lease(**_: Any) -> list[checks.CheckMessage]:
    """A document waiting out a retry backoff is queued with no message in the broker's lists
    (the countdown is held by a worker): the reconciler's lease must outlast the backoff."""
    docflow = settings.DOCFLOW
    if docflow["QUEUED_LEASE_SECONDS"] <= docflow["RETRY_BACKOFF_MAX_SECONDS"]:
        return [
            checks.Error(
                "DOCFLOW_QUEUED_LEASE_SECONDS must exceed DOCFLOW_RETRY_BACKOFF_MAX_SECONDS, or "
                "documents waiting to retry are re-enqueued as lost.",
                id="docflow.E002",
            )
        ]
    return []
