"""/healthz and /metrics: what they check and count, on PostgreSQL and Redis."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from documents.models import Document
from operations import metrics
from operations.models import Heartbeat
from operations.services import heartbeat_stamp

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters(settings):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(metrics.KEY)


def test_without_a_heartbeat_the_system_is_unhealthy(client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert "No heartbeat yet" in body["checks"]["heartbeat"]["error"]


def test_a_fresh_heartbeat_is_healthy_and_a_stale_one_is_not(client) -> None:
    heartbeat_stamp(worker="w1@host")
    assert client.get("/healthz").status_code == 200

    Heartbeat.objects.update(beat_at=timezone.now() - timedelta(minutes=10))
    response = client.get("/healthz")

    assert response.status_code == 503
    assert "Older than 180 s" in response.json()["checks"]["heartbeat"]["error"]


def test_probes_are_not_redirected_to_https(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    heartbeat_stamp(worker="w1@host")

    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/admin/login/").status_code == 301


def sample(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # exposition order
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    match = re.search(pattern, text, re.M)
    return float(match.group(1)) if match else None


def test_metrics_count_documents_tasks_and_the_oldest_queued(
    client, agent, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks():
        queued = Document.objects.create(agent=agent, source_url="https://example.com/")
    Document.objects.filter(pk=queued.pk).update(queued_at=timezone.now() - timedelta(minutes=5))
    for state in ("SUCCESS", "SUCCESS", "RETRY"):
        metrics.task_started("t")
        metrics.task_finished("t", "documents.tasks.document_process_task", state)

    text = client.get("/metrics").content.decode()

    assert sample(text, "docflow_documents", status="queued") == 1
    assert sample(text, "docflow_documents", status="done") == 0
    assert 299 < sample(text, "docflow_oldest_queued_document_age_seconds") < 400
    task = "documents.tasks.document_process_task"
    assert sample(text, "docflow_tasks_total", task=task, state="SUCCESS") == 2
    assert sample(text, "docflow_task_retries_total", task=task) == 1
    assert sample(text, "docflow_task_runtime_seconds_count", task=task) == 3
    assert sample(text, "docflow_queue_depth", queue="high") is not None
    assert sample(text, "docflow_broker_up") == 1
    assert sample(text, "docflow_heartbeat_age_seconds") == -1


def test_metrics_can_require_a_bearer_token(client, settings) -> None:
    settings.DOCFLOW = {**settings.DOCFLOW, "METRICS_TOKEN": "s3cret-token"}

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200
    assert "docflow_documents" in response.content.decode()
