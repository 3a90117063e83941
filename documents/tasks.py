"""Celery tasks for documents: thin callers of documents.services.

Retries: only transient errors (network, provider, database) retry, with exponential backoff
and full jitter; a file that is itself the problem fails at once with a readable message.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Reject, Retry, SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.utils import timezone
from django_celery_results.backends.database import DatabaseBackend
from django_celery_results.models import TaskResult
from kombu.exceptions import OperationalError as BrokerOperationalError

from documents import imports, pipeline, services

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    pipeline.TransientPipelineError,
    OperationalError,
    InterfaceError,
    BrokerOperationalError,
    ConnectionError,
    TimeoutError,
)
MAX_RETRIES = 3


def retry_countdown(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than a provider's Retry-After."""
    base = settings.DOCFLOW["RETRY_BACKOFF_SECONDS"]
    cap = settings.DOCFLOW["RETRY_BACKOFF_MAX_SECONDS"]
    countdown = random.uniform(base, min(cap, base * 2**retries))  # noqa: S311  (jitter)
    # A Retry-After beyond the cap would park the message for days: the cap wins.
    return min(max(countdown, retry_after or 0.0), cap)


def _report_state(task: Task, stage: str, progress: int) -> None:
    if not task.request.is_eager:
        record_celery_progress(task, stage, progress)


def record_celery_progress(task: Task, stage: str, progress: int) -> None:
    """Set the task's Celery state to PROGRESS with {stage, progress}.

    Once the row exists one UPDATE does it; `update_state` would read, rebuild and save the
    whole row in its own transaction. (Only documents that run long report progress at all.)
    """
    meta = {"stage": stage, "progress": progress}
    if isinstance(task.backend, DatabaseBackend):
        content_type, content_encoding, result = task.backend.encode_content(meta)
        updated = TaskResult.objects.filter(task_id=task.request.id).update(
            status="PROGRESS",
            result=result,
            content_type=content_type,
            content_encoding=content_encoding,
            date_done=timezone.now(),
        )
        if updated:
            return
    task.update_state(state="PROGRESS", meta=meta)


@shared_task(
    bind=True,
    name="documents.tasks.document_process_task",
    max_retries=MAX_RETRIES,
    soft_time_limit=settings.DOCFLOW["PROCESS_SOFT_TIME_LIMIT"],
    time_limit=settings.DOCFLOW["PROCESS_TIME_LIMIT"],
    # The document row says "processing" from its claim on; a STARTED result row as well
    # would cost two more writes for each of 500,000 documents. The outcome is still stored.
    track_started=False,
)
def document_process_task(self: Task, document_id: int) -> dict[str, Any]:
    """Process one document into chunks; idempotent, and safe after a worker was killed."""
    task_id: str = self.request.id
    delivery = self.request.delivery_info or {}
    try:
        outcome = services.document_process(
            document_id=document_id,
            task_id=task_id,
            redelivered=bool(delivery.get("redelivered")) or self.request.retries > 0,
            on_progress=lambda stage, progress: _report_state(self, stage, progress),
        )
    except services.DocumentCancelled:
        return {"status": "cancelled", "document_id": document_id}
    except SoftTimeLimitExceeded:
        # Also how a running task learns of "Cancel" (revoke with SIGUSR1).
        limit = settings.DOCFLOW["PROCESS_SOFT_TIME_LIMIT"]
        error = (
            f"Processing took longer than {limit} seconds and was stopped. "
            "Split the document into smaller files and upload them again."
        )
        if services.document_fail(
            document_id=document_id, task_id=task_id, error=error, code="time_limit"
        ):
            return {"status": "failed", "document_id": document_id, "error": error}
        return {"status": "cancelled", "document_id": document_id}
    except pipeline.ThrottledError as exc:
        return _wait_for_rate_limit(self, document_id, exc)
    except TRANSIENT_ERRORS as exc:
        return _retry_or_give_up(self, document_id, exc)
    except Exception as exc:
        # A bug, or a database error that will not heal by waiting (DataError, IntegrityError):
        # the row must not stay `processing` with its message acknowledged.
        logger.exception("document %s: unexpected error", document_id)
        _record_failure(
            document_id,
            task_id,
            f"Unexpected error while processing ({type(exc).__name__}: {exc}). "
            "This is a bug: retry the document, and report it if it fails again.",
            "internal",
        )
        raise
    return outcome.as_dict()


@shared_task(
    bind=True,
    name="documents.tasks.documents_process_batch_task",
    max_retries=MAX_RETRIES,
    soft_time_limit=settings.DOCFLOW["PROCESS_SOFT_TIME_LIMIT"],
    time_limit=settings.DOCFLOW["PROCESS_TIME_LIMIT"],
    track_started=False,
)
def documents_process_batch_task(self: Task, pairs: list[list[Any]], queue: str) -> dict[str, Any]:
    """Process several small documents, given as (document id, task id) pairs, in one task.

    Celery's own cost of a task is about that of a small document's database writes; shared by
    DOCFLOW_PROCESS_BATCH_SIZE documents it nearly vanishes. Trouble hands the documents left
    to a document_process_task each (services.documents_process_batch).
    """
    delivery = self.request.delivery_info or {}
    try:
        return services.documents_process_batch(
            pairs=[(int(pk), str(task_id)) for pk, task_id in pairs],
            queue=queue,
            # A retry finds its documents as the failed run left them: it hands them over.
            redelivered=bool(delivery.get("redelivered")) or self.request.retries > 0,
        ).as_dict()
    except TRANSIENT_ERRORS as exc:
        # Raised only by the claim or the hand-over (the database is away): nothing is lost
        # by trying again later.
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc


def _record_failure(document_id: int, task_id: str, error: str, code: str) -> None:
    try:
        services.document_fail(document_id=document_id, task_id=task_id, error=error, code=code)
    except DatabaseError:
        logger.exception("document %s: could not record the failure", document_id)


def _retry_or_give_up(task: Task, document_id: int, exc: BaseException) -> dict[str, Any]:
    task_id: str = task.request.id
    if task.request.retries >= task.max_retries:
        error = f"Gave up after {task.request.retries + 1} attempts: {exc}"
        _record_failure(document_id, task_id, error, "transient")
        raise exc
    try:
        services.document_release_for_retry(
            document_id=document_id, task_id=task_id, error=f"Will retry: {exc}"
        )
    except DatabaseError:
        logger.warning("document %s: database unavailable; retrying anyway", document_id)
    countdown = retry_countdown(task.request.retries, getattr(exc, "retry_after", None))
    logger.info("document %s: transient error, retry in %.1fs: %s", document_id, countdown, exc)
    with _failure_recorded_if_unsent(document_id, task_id, exc):
        raise task.retry(exc=exc, countdown=countdown)


def _wait_for_rate_limit(
    task: Task, document_id: int, exc: pipeline.ThrottledError
) -> dict[str, Any]:
    """Send the same message back with the rate limit's wait as countdown, retries unchanged.

    `task.retry` would count it, and a busy provider quota would then fail healthy documents.
    Jitter spreads the documents that were told the same wait.
    """
    task_id: str = task.request.id
    services.document_release_for_retry(
        document_id=document_id, task_id=task_id, error="", throttled=True
    )
    countdown = min(
        exc.retry_after * random.uniform(1.0, 1.5),  # noqa: S311  (jitter)
        settings.DOCFLOW["RETRY_BACKOFF_MAX_SECONDS"],
    )
    logger.info("document %s: rate limited, back in %.1fs", document_id, countdown)
    again = task.signature_from_request(
        task.request, countdown=countdown, retries=task.request.retries
    )
    with _failure_recorded_if_unsent(document_id, task_id, exc):
        again.apply_async()
    raise Retry(exc=exc, when=countdown, sig=again)


@contextmanager
def _failure_recorded_if_unsent(
    document_id: int, task_id: str, exc: BaseException
) -> Iterator[None]:
    """No retry message exists when publishing it fails: say so on the row rather than leave
    it waiting forever. (`Task.retry` reports a failed publish as Reject.)"""
    try:
        yield
    except (BrokerOperationalError, ConnectionError, Reject) as unsent:
        publish_error = unsent.reason if isinstance(unsent, Reject) else unsent
        _record_failure(
            document_id,
            task_id,
            f"Could not schedule a retry ({publish_error}) after: {exc}. Retry it when the "
            "broker is back.",
            "transient",
        )
        raise


@shared_task(
    name="documents.tasks.documents_fan_out_task",
    soft_time_limit=120,
    time_limit=150,
    autoretry_for=(BrokerOperationalError, ConnectionError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def documents_fan_out_task(pairs: list[list[Any]], queue: str) -> int:
    """Publish one processing message per (document id, task id) pair.

    Bulk callers send one message per few hundred documents and let workers publish the rest,
    so a producer never becomes the bottleneck. Running it twice is harmless.
    """
    return services.documents_publish([(int(pk), str(tid)) for pk, tid in pairs], queue=queue)


@shared_task(
    name="documents.tasks.documents_requeue_stuck_task",
    soft_time_limit=240,
    time_limit=270,
    ignore_result=False,
)
def documents_requeue_stuck_task() -> dict[str, Any]:
    """Beat, every few minutes: re-enqueue documents whose message was lost (DESIGN, inv. 5)."""
    docflow = settings.DOCFLOW
    outcome = services.documents_requeue_stuck(
        queued_for=timedelta(seconds=docflow["QUEUED_LEASE_SECONDS"]),
        processing_for=timedelta(seconds=docflow["PROCESS_TIME_LIMIT"] + 60),
    )
    return {
        "requeued": outcome.requeued,
        "failed": outcome.failed,
        "skipped_queued": outcome.skipped_queued,
    }


@shared_task(
    bind=True,
    name="documents.tasks.agent_import_task",
    max_retries=MAX_RETRIES,
    soft_time_limit=1500,
    time_limit=1560,
)
def agent_import_task(self: Task, import_id: int) -> str:
    """Apply a validated agent import in batches (bulk upserts); safe to run twice."""
    delivery = self.request.delivery_info or {}
    try:
        return imports.agent_import_run(
            import_id=import_id,
            task_id=self.request.id,
            redelivered=bool(delivery.get("redelivered")) or self.request.retries > 0,
        )
    except (OperationalError, InterfaceError) as exc:
        if self.request.retries >= self.max_retries:
            imports.agent_import_fail(
                import_id=import_id, task_id=self.request.id, error=f"Database unavailable: {exc}"
            )
            raise
        raise self.retry(exc=exc, countdown=retry_countdown(self.request.retries)) from exc
    except Exception as exc:
        logger.exception("agent import %s failed", import_id)
        imports.agent_import_fail(
            import_id=import_id,
            task_id=self.request.id,
            error=f"Unexpected error ({type(exc).__name__}: {exc}). This is a bug; report it.",
        )
        raise
