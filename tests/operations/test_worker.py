"""The API with a real worker: an upload followed to SUCCESS, workers seen by /queues."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def api(admin_user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")


def test_an_upload_is_followed_to_success_through_the_task_endpoint(
    celery_worker, api, agent, pdf_file, shared_media
):
    upload = SimpleUploadedFile("handbook.pdf", pdf_file.read_bytes(), "application/pdf")
    created = api.post("/api/v1/documents", {"agent": agent.pk, "file": upload}).json()

    def task() -> dict:
        return api.get(f"/api/v1/tasks/{created['task_id']}").json()

    wait_for(lambda: task()["state"] in ("SUCCESS", "FAILURE"), timeout=90)
    body = task()
    assert (body["state"], body["status"], body["progress"]) == ("SUCCESS", "done", 100)
    assert body["task_name"] == "documents.tasks.document_process_task"
    assert body["object"]["chunk_count"] > 0


def test_queues_shows_the_worker_online_with_its_queues(celery_worker, api):
    body = api.get("/api/v1/queues").json()

    assert body["broker_error"] == ""
    assert body["workers_online"] >= 1
    worker = next(w for w in body["workers"] if w["name"].startswith("test-"))
    assert worker["queues"] == ["high", "low", "medium", "scheduled"]
    assert worker["concurrency"] == 2


def test_the_beat_canary_stamps_the_heartbeat_on_a_worker(celery_worker, client):
    from operations.models import Heartbeat
    from operations.tasks import heartbeat_task

    heartbeat_task.apply_async()

    wait_for(lambda: Heartbeat.objects.exists(), timeout=30)
    assert Heartbeat.objects.get().worker.startswith("test-")
    assert client.get("/healthz").status_code == 200


def test_workers_count_their_tasks_for_metrics(
    celery_worker, client, api, agent, pdf_file, shared_media
):
    upload = SimpleUploadedFile("handbook.pdf", pdf_file.read_bytes(), "application/pdf")
    created = api.post("/api/v1/documents", {"agent": agent.pk, "file": upload}).json()
    wait_for(
        lambda: api.get(f"/api/v1/documents/{created['id']}").json()["status"] == "done",
        timeout=90,
    )

    def successes() -> float:
        text = client.get("/metrics").content.decode()
        line = 'docflow_tasks_total{state="SUCCESS",task="documents.tasks.document_process_task"}'
        found = [row for row in text.splitlines() if row.startswith(line)]
        return float(found[0].split()[-1]) if found else 0.0

    wait_for(lambda: successes() >= 1, timeout=10)


def test_a_task_that_fails_for_good_leaves_a_dead_letter(celery_worker):
    from analytics.tasks import analytics_fill_task
    from operations.models import DeadLetter

    result = analytics_fill_task.apply_async(kwargs={"granularity": "weekly"})

    wait_for(lambda: DeadLetter.objects.filter(task_id=result.id).exists(), timeout=30)
    letter = DeadLetter.objects.get(task_id=result.id)
    assert letter.task_name == "analytics.tasks.analytics_fill_task"
    assert letter.kwargs == {"granularity": "weekly"}
    assert letter.exception.startswith("ValueError: Unknown granularity 'weekly'")
    assert letter.worker.startswith("test-")
