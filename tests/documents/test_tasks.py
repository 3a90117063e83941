"""document_process_task's own decisions, run in-process with `apply` (the worker suite runs it
for real): failures recorded on the row, retry timing."""

from __future__ import annotations

from unittest import mock

import pytest
from celery.exceptions import Reject
from celery.result import AsyncResult
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError
from django_celery_results.models import TaskResult

from config.celery import app
from documents import services, tasks
from documents.models import Document, DocumentStatus
from documents.tasks import document_process_task, record_celery_progress, retry_countdown

pytestmark = pytest.mark.django_db


@pytest.fixture
def document(agent, pdf_file, media_root) -> Document:
    created = services.document_create_from_upload(
        agent=agent, upload=SimpleUploadedFile("a.pdf", pdf_file.read_bytes()), original_name="a"
    )
    created.refresh_from_db()
    return created


def test_a_non_transient_database_error_fails_the_row_instead_of_leaving_it_processing(
    document,
):
    with mock.patch.object(services, "_store_result", side_effect=IntegrityError("boom")):
        result = document_process_task.apply(args=[document.pk], task_id=document.task_id)

    document.refresh_from_db()
    assert result.failed()
    assert (document.status, document.error_code) == (DocumentStatus.FAILED, "internal")
    assert "IntegrityError: boom" in document.error


def test_permanent_failures_are_a_result_not_a_task_failure(document):
    with mock.patch.object(
        services.pipeline, "run_pipeline", side_effect=services.pipeline.EmptyDocumentError("x")
    ):
        result = document_process_task.apply(args=[document.pk], task_id=document.task_id)

    assert result.successful()
    assert result.result["status"] == "failed"
    assert Document.objects.get(pk=document.pk).error_code == "empty"


@pytest.mark.parametrize("retries", [0, 1, 2, 5])
def test_retry_countdown_grows_with_jitter_within_the_cap(settings, retries):
    base = settings.DOCFLOW["RETRY_BACKOFF_SECONDS"]
    cap = settings.DOCFLOW["RETRY_BACKOFF_MAX_SECONDS"]

    countdowns = [retry_countdown(retries) for _ in range(200)]

    assert all(base <= c <= min(cap, base * 2**retries) for c in countdowns)
    if retries:
        assert len(set(countdowns)) > 100  # jittered, not synchronised


def test_retry_after_is_honoured_but_capped(settings):
    cap = settings.DOCFLOW["RETRY_BACKOFF_MAX_SECONDS"]

    assert retry_countdown(0, retry_after=cap / 2) >= cap / 2
    assert retry_countdown(0, retry_after=10 * cap) == cap


def test_a_broker_outage_after_commit_leaves_the_row_queued_without_an_error(
    agent, pdf_file, media_root, django_capture_on_commit_callbacks, caplog
):
    with (
        mock.patch.object(services, "_publish_now", side_effect=ConnectionError("redis down")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        created = services.document_create_from_upload(
            agent=agent,
            upload=SimpleUploadedFile("a.pdf", pdf_file.read_bytes()),
            original_name="a",
        )

    assert Document.objects.get(pk=created.pk).status == DocumentStatus.QUEUED
    assert "stay queued" in caplog.text


def test_progress_is_visible_as_celery_state(db):
    TaskResult.objects.create(
        task_id="t-progress",
        status="STARTED",
        result='{"pid": 1}',
        content_type="application/json",
        content_encoding="utf-8",
    )
    document_process_task.push_request(id="t-progress")
    try:
        record_celery_progress(document_process_task, "embed", 50)
    finally:
        document_process_task.pop_request()

    result = AsyncResult("t-progress", app=app)
    assert result.state == "PROGRESS"
    assert result.info == {"stage": "embed", "progress": 50}


def test_a_retry_that_cannot_be_published_fails_the_row_with_the_reason(document):
    services.document_claim(document_id=document.pk, task_id=document.task_id)
    broker_down = Reject(ConnectionError("Redis is down"), requeue=False)

    with (
        pytest.raises(Reject),
        tasks._failure_recorded_if_unsent(
            document.pk, document.task_id, TimeoutError("provider timed out")
        ),
    ):
        raise broker_down

    document.refresh_from_db()
    assert (document.status, document.error_code) == (DocumentStatus.FAILED, "transient")
    assert "Could not schedule a retry (Redis is down)" in document.error
    assert "provider timed out" in document.error


def test_waiting_for_the_rate_limit_does_not_count_as_an_attempt(document):
    services.document_claim(document_id=document.pk, task_id=document.task_id)

    services.document_release_for_retry(
        document_id=document.pk, task_id=document.task_id, error="", throttled=True
    )

    document.refresh_from_db()
    assert (document.status, document.attempts) == (DocumentStatus.QUEUED, 0)
    assert (document.stage, document.error) == ("waiting for the rate limit", "")
