"""The reconciler: documents whose message was lost are queued again, never processed twice."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
import redis
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from documents import services
from documents.models import Document, DocumentStatus
from tests.conftest import wait_terminal

LEASE = {"queued_for": timedelta(minutes=15), "processing_for": timedelta(minutes=12)}


@pytest.fixture
def published():
    sent: list[tuple[int, str, str]] = []

    def record(pairs, *, queue):
        sent.extend((pk, task_id, queue) for pk, task_id in pairs)
        return len(pairs)

    with mock.patch.object(services, "documents_publish", side_effect=record):
        yield sent


def stuck(agent, status: str, minutes: int, **fields) -> Document:
    long_ago = timezone.now() - timedelta(minutes=minutes)
    return Document.objects.create(
        agent=agent,
        file="documents/x.txt",
        status=status,
        task_id="lost-message",
        queued_at=long_ago,
        started_at=long_ago if status == DocumentStatus.PROCESSING else None,
        **fields,
    )


@pytest.mark.django_db
def test_processing_past_its_lease_is_requeued_with_a_new_task_id(
    agent, published, django_capture_on_commit_callbacks
):
    old = stuck(agent, DocumentStatus.PROCESSING, minutes=30, attempts=1)
    recent = stuck(agent, DocumentStatus.PROCESSING, minutes=1, attempts=1)

    with (
        mock.patch.object(services, "_document_queues_idle", return_value=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        outcome = services.documents_requeue_stuck(**LEASE)

    old.refresh_from_db()
    assert (outcome.requeued, outcome.failed, outcome.skipped_queued) == (1, 0, True)
    assert (old.status, old.attempts) == (DocumentStatus.QUEUED, 1)
    assert old.task_id != "lost-message"
    assert published == [(old.pk, old.task_id, "high")]
    assert Document.objects.get(pk=recent.pk).status == DocumentStatus.PROCESSING


@pytest.mark.django_db
def test_queued_rows_are_requeued_only_when_the_broker_queues_are_empty(agent, published):
    old = stuck(agent, DocumentStatus.QUEUED, minutes=30)

    with mock.patch.object(services, "_document_queues_idle", return_value=False):
        assert services.documents_requeue_stuck(**LEASE).requeued == 0
    with mock.patch.object(services, "_document_queues_idle", return_value=True):
        assert services.documents_requeue_stuck(**LEASE).requeued == 1

    assert Document.objects.get(pk=old.pk).task_id != "lost-message"


@pytest.mark.django_db
def test_documents_out_of_attempts_fail_instead(agent, published, settings):
    tired = stuck(
        agent, DocumentStatus.PROCESSING, minutes=30, attempts=settings.DOCFLOW["MAX_ATTEMPTS"]
    )

    outcome = services.documents_requeue_stuck(**LEASE)

    tired.refresh_from_db()
    assert (outcome.requeued, outcome.failed) == (0, 1)
    assert (tired.status, tired.error_code) == (DocumentStatus.FAILED, "stuck")


@pytest.mark.django_db
def test_requeue_stuck_command_takes_queued_age_but_never_interrupts_running_work(agent, published):
    lost = stuck(agent, DocumentStatus.QUEUED, minutes=5)
    running = stuck(agent, DocumentStatus.PROCESSING, minutes=5, attempts=1)
    out = StringIO()

    with mock.patch.object(services, "_document_queues_idle", return_value=True):
        call_command("requeue_stuck", older_than=3, stdout=out)

    assert out.getvalue() == "Requeued 1, failed 0.\n"
    assert Document.objects.get(pk=lost.pk).task_id != "lost-message"
    assert Document.objects.get(pk=running.pk).task_id == "lost-message"


@pytest.mark.django_db
def test_a_row_claimed_again_meanwhile_is_left_to_its_worker(agent, published):
    old = stuck(agent, DocumentStatus.PROCESSING, minutes=30, attempts=1)
    real_enqueue = services.documents_enqueue

    def claimed_first(**kwargs):
        # A redelivered message claims the row between the reconciler's pick and its lock.
        Document.objects.filter(pk=old.pk).update(started_at=timezone.now(), attempts=2)
        return real_enqueue(**kwargs)

    with (
        mock.patch.object(services, "_document_queues_idle", return_value=False),
        mock.patch.object(services, "documents_enqueue", side_effect=claimed_first),
    ):
        outcome = services.documents_requeue_stuck(**LEASE)

    old.refresh_from_db()
    assert outcome.requeued == 0
    assert (old.status, old.task_id, old.attempts) == ("processing", "lost-message", 2)


@pytest.mark.django_db
def test_a_document_waiting_out_a_retry_backoff_is_not_taken_for_lost(agent, published):
    document = stuck(agent, DocumentStatus.PROCESSING, minutes=60, attempts=1)

    services.document_release_for_retry(
        document_id=document.pk, task_id="lost-message", error="Will retry: 503"
    )
    with mock.patch.object(services, "_document_queues_idle", return_value=True):
        outcome = services.documents_requeue_stuck(**LEASE)

    document.refresh_from_db()
    assert outcome.requeued == 0
    assert (document.status, document.stage) == ("queued", "waiting to retry")


@pytest.mark.django_db
def test_the_reconciler_is_scheduled_by_migrate():
    entry = PeriodicTask.objects.get(task="documents.tasks.documents_requeue_stuck_task")
    assert (entry.queue, entry.interval.every, entry.interval.period) == ("scheduled", 5, "minutes")
    assert entry.expire_seconds < 5 * 60


@pytest.mark.skipif(not django_settings.CELERY_BROKER_URL.startswith("redis"), reason="Redis")
def test_queues_idle_reads_redis():
    client = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    queues = ("docflow-test-idle",)  # no worker consumes it
    client.delete(*queues)
    assert services._document_queues_idle(queues)
    client.lpush(queues[0], "x")
    try:
        assert not services._document_queues_idle(queues)
    finally:
        client.delete(*queues)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_document_whose_message_was_lost_is_processed_after_reconciling(
    celery_worker, shared_media, agent, pdf_file
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    document = services.document_create_from_upload(
        agent=agent, upload=SimpleUploadedFile("a.pdf", pdf_file.read_bytes()), original_name="a"
    )
    wait_terminal([document.pk])
    # The broker restarted empty while the document was being processed.
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.PROCESSING,
        started_at=timezone.now() - timedelta(hours=1),
        task_id="lost-message",
    )

    outcome = services.documents_requeue_stuck(**LEASE)

    (document,) = wait_terminal([document.pk])
    assert outcome.requeued == 1
    assert document.status == DocumentStatus.DONE
    assert document.chunk_count == document.chunks.count() > 0
