"""The JSON API on PostgreSQL: auth, permissions, task state, cancel, upload, queues."""

from __future__ import annotations

import json
from io import StringIO
from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django_celery_results.models import TaskResult
from kombu import Connection, Queue
from rest_framework.authtoken.models import Token

from documents.models import Document, DocumentStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    user = django_user_model.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_document", "add_document", "change_document", "view_taskresult"]
        )
    )
    return user


@pytest.fixture
def api(staff) -> Client:
    token = Token.objects.create(user=staff)
    return Client(HTTP_AUTHORIZATION=f"Token {token.key}")


def test_no_credentials_get_401_with_the_token_challenge(client, queued) -> None:
    response = client.get(f"/api/v1/documents/{queued.pk}")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_non_staff_and_staff_without_the_permission_get_403(django_user_model, queued) -> None:
    plain = django_user_model.objects.create_user("plain", password="pw-plain-12345")
    bare_staff = django_user_model.objects.create_user(
        "bare", password="pw-bare-1234", is_staff=True
    )
    for user in (plain, bare_staff):
        token = Token.objects.create(user=user)
        response = Client(HTTP_AUTHORIZATION=f"Token {token.key}").get(
            f"/api/v1/documents/{queued.pk}"
        )
        assert response.status_code == 403, user


def test_a_session_needs_csrf_for_unsafe_methods(staff, queued) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)

    assert browser.get(f"/api/v1/documents/{queued.pk}").status_code == 200
    response = browser.delete(f"/api/v1/tasks/{queued.task_id}")

    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert Document.objects.get(pk=queued.pk).status == DocumentStatus.QUEUED


def test_a_queued_documents_task_merges_the_row_and_celery(api, queued) -> None:
    body = api.get(f"/api/v1/tasks/{queued.task_id}").json()

    assert body["kind"] == "document"
    assert (body["state"], body["status"], body["stage"], body["progress"]) == (
        "PENDING",
        "queued",
        "queued",
        0,
    )
    assert body["object"]["id"] == queued.pk


def test_a_task_known_only_to_celery_shows_its_result_or_error(api) -> None:
    TaskResult.objects.create(
        task_id="t-ok",
        task_name="analytics.tasks.analytics_fill_task",
        status="SUCCESS",
        result=json.dumps({"periods": 1}),
    )
    TaskResult.objects.create(
        task_id="t-bad",
        task_name="analytics.tasks.analytics_fill_task",
        status="FAILURE",
        result=json.dumps({"exc_type": "ValueError", "exc_message": ["bad granularity"]}),
    )

    ok = api.get("/api/v1/tasks/t-ok").json()
    bad = api.get("/api/v1/tasks/t-bad").json()

    assert (ok["kind"], ok["state"], ok["result"]) == ("task", "SUCCESS", {"periods": 1})
    assert (bad["state"], bad["error"]) == ("FAILURE", "ValueError: bad granularity")


def test_a_task_is_unknown_to_those_who_may_not_view_its_kind(api, staff) -> None:
    TaskResult.objects.create(task_id="t-ok", task_name="x", status="SUCCESS", result="1")
    assert api.get("/api/v1/tasks/t-ok").status_code == 200

    staff.user_permissions.remove(Permission.objects.get(codename="view_taskresult"))

    assert api.get("/api/v1/tasks/t-ok").status_code == 404


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/v1/tasks/nope"),
        ("delete", "/api/v1/tasks/nope"),
        ("get", "/api/v1/documents/999999"),
    ],
)
def test_unknown_ids_are_404(api, method, url) -> None:
    response = getattr(api, method)(url)

    assert response.status_code == 404
    assert "No " in response.json()["detail"]


def test_delete_cancels_the_document_once(api, queued) -> None:
    first = api.delete(f"/api/v1/tasks/{queued.task_id}")
    second = api.delete(f"/api/v1/tasks/{queued.task_id}")

    assert first.status_code == 200
    assert (first.json()["cancelled"], first.json()["status"]) == (1, "cancelled")
    assert second.status_code == 409
    assert Document.objects.get(pk=queued.pk).status == DocumentStatus.CANCELLED


def test_only_document_tasks_can_be_cancelled(api) -> None:
    TaskResult.objects.create(task_id="t-x", task_name="x", status="SUCCESS")

    response = api.delete("/api/v1/tasks/t-x")

    assert response.status_code == 400
    assert "cannot be cancelled" in response.json()["task_id"]


def test_upload_answers_with_the_document_and_task_ids_and_queues_after_commit(
    api, agent, django_capture_on_commit_callbacks, media_root, pdf_file
) -> None:
    upload = SimpleUploadedFile("guide.pdf", pdf_file.read_bytes(), "application/pdf")

    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post("/api/v1/documents", {"agent": agent.pk, "file": upload})

    assert response.status_code == 201
    body = response.json()
    document = Document.objects.get(pk=body["id"])
    assert (body["status"], body["task_id"]) == ("queued", document.task_id)
    assert body["task_id"]
    assert len(callbacks) == 1  # the publish, after commit
    assert api.get(f"/api/v1/documents/{document.pk}").json()["name"] == "guide.pdf"


def test_an_agent_can_be_named_by_slug_and_organization(api, agent, organization) -> None:
    response = api.post(
        "/api/v1/documents",
        {"agent": agent.slug, "organization": organization.slug, "url": "https://example.com/"},
    )

    assert response.status_code == 201
    assert response.json()["agent"] == agent.pk


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"url": "https://example.com/"}, "agent", "Name the agent"),
        ({"agent": "9999", "url": "https://example.com/"}, "agent", "No agent '9999'"),
        ({"agent": "AGENT"}, "file", "exactly one of"),
        ({"agent": "AGENT", "url": "file:///etc/passwd"}, "url", "is not an http(s) URL"),
    ],
)
def test_bad_uploads_are_400_with_a_message_and_create_nothing(
    api, agent, data, field, message
) -> None:
    data = {k: (agent.pk if v == "AGENT" else v) for k, v in data.items()}

    response = api.post("/api/v1/documents", data)

    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert not Document.objects.exists()


def test_queues_lists_every_queue_with_its_depth(api, settings) -> None:
    probe = Queue("api-test-probe")
    settings.CELERY_TASK_QUEUES = [*settings.CELERY_TASK_QUEUES, probe]
    with Connection(settings.CELERY_BROKER_URL) as conn:
        producer = conn.Producer()
        for number in range(3):
            producer.publish({"n": number}, routing_key=probe.name, declare=[probe])
        try:
            body = api.get("/api/v1/queues").json()
        finally:
            probe.bind(conn.default_channel).purge()

    assert body["queues"]["api-test-probe"] == 3
    assert set(body["queues"]) >= {"high", "medium", "low", "scheduled"}
    assert body["broker_error"] == ""


def test_a_broker_that_does_not_answer_is_reported_not_raised(api) -> None:
    with mock.patch("operations.queues.queue_depths", side_effect=OSError("connection refused")):
        body = api.get("/api/v1/queues").json()

    assert body["broker_error"] == "The broker did not answer: connection refused"
    assert body["queues"]["high"] is None


def test_queue_stats_command_and_admin_page_show_the_same_figures(admin_client) -> None:
    out = StringIO()
    call_command("queue_stats", "--json", "--timeout=0.2", stdout=out)
    figures = json.loads(out.getvalue())

    page = admin_client.get("/admin/operations/queues/").content.decode()

    assert set(figures) >= {"queues", "workers", "pending", "workers_online", "broker_error"}
    for name in figures["queues"]:
        assert f'data-queue="{name}"' in page
