"""Security requirements not covered elsewhere: permissions of every admin page, action and API
method; user-supplied names never choosing a storage path; upload limits; secrets.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from analytics.models import ReportStatus, UsageReport
from documents import services
from documents.models import AgentImport, Document, DocumentStatus

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent.parent
STORAGE_NAME = re.compile(r"documents/[0-9a-f]{2}/[0-9a-f]{64}(\.[a-z0-9]{1,8})?")


def staff_with(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(
        username, password=f"pw-{username}-12345", is_staff=True
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def token_client(user) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")


def action_names(client: Client, changelist: str) -> set[str]:
    response = client.get(reverse(changelist))
    assert response.status_code == 200
    form = response.context["action_form"]
    if form is None:
        return set()
    return {name for name, _ in form.fields["action"].choices if name}


# --- API: each method needs its own model permission ---------------------------------------


def test_api_writes_need_add_or_change_permission_not_just_view(
    django_user_model, agent, queued, media_root
) -> None:
    viewer = token_client(staff_with(django_user_model, "viewer", "view_document"))

    upload = SimpleUploadedFile("a.txt", b"Opening hours are nine to five.")
    created = viewer.post("/api/v1/documents", {"agent": agent.pk, "file": upload})
    cancelled = viewer.delete(f"/api/v1/tasks/{queued.task_id}")

    assert (created.status_code, cancelled.status_code) == (403, 403)
    assert list(Document.objects.values_list("pk", flat=True)) == [queued.pk]
    assert Document.objects.get(pk=queued.pk).status == DocumentStatus.QUEUED
    assert not list(media_root.rglob("*.txt"))


def test_api_queues_and_tasks_refuse_staff_without_view_permission(
    django_user_model, queued
) -> None:
    bare = token_client(staff_with(django_user_model, "bare"))

    assert bare.get("/api/v1/queues").status_code == 403
    assert bare.get(f"/api/v1/tasks/{queued.task_id}").status_code == 403


def test_api_head_needs_the_same_permission_as_get(django_user_model, queued) -> None:
    bare = token_client(staff_with(django_user_model, "bare"))

    assert bare.head(f"/api/v1/documents/{queued.pk}").status_code == 403
    assert bare.head(f"/api/v1/tasks/{queued.task_id}").status_code == 403


# --- Admin pages and actions ----------------------------------------------------------------


def test_view_only_staff_cannot_add_documents_from_any_admin_page(
    client, django_user_model, agent, media_root
) -> None:
    client.force_login(staff_with(django_user_model, "viewer", "view_document", "view_agent"))
    upload = SimpleUploadedFile("a.txt", b"Opening hours are nine to five.")

    responses = [
        client.get(reverse("admin:documents_document_add")),
        client.post(reverse("admin:documents_document_add"), {"agent": agent.pk, "file": upload}),
        client.post(
            reverse("admin:documents_document_add_url"),
            {"agent": agent.pk, "urls": "https://example.com/a"},
        ),
        client.post(reverse("admin:documents_agent_import"), {"file": upload}),
    ]

    assert [r.status_code for r in responses] == [403] * 4
    assert not Document.objects.exists()
    assert not AgentImport.objects.exists()
    assert not list(media_root.rglob("*.*"))


@pytest.mark.parametrize(
    ("codenames", "changelist", "actions"),
    [
        (
            ["view_document"],
            "admin:documents_document_changelist",
            {"process_selected", "cancel_selected", "retry_failed"},
        ),
        (["view_deadletter"], "admin:operations_deadletter_changelist", {"replay", "discard"}),
        (
            ["view_customerprofile"],
            "admin:profiles_customerprofile_changelist",
            {"enrich_selected"},
        ),
        (["view_usagereport"], "admin:analytics_usagereport_changelist", {"regenerate"}),
    ],
)
def test_view_only_staff_do_not_see_state_changing_actions(
    client, django_user_model, codenames, changelist, actions
) -> None:
    client.force_login(staff_with(django_user_model, "viewer", *codenames))
    admin = staff_with(
        django_user_model, "editor", *codenames, codenames[0].replace("view", "change")
    )

    assert actions.isdisjoint(action_names(client, changelist))
    client.force_login(admin)
    assert actions <= action_names(client, changelist)  # the check above can fail


def test_a_posted_action_without_change_permission_changes_nothing(
    client, django_user_model, queued
) -> None:
    client.force_login(staff_with(django_user_model, "viewer", "view_document"))

    client.post(
        reverse("admin:documents_document_changelist"),
        {"action": "cancel_selected", "_selected_action": [queued.pk]},
    )

    assert Document.objects.get(pk=queued.pk).status == DocumentStatus.QUEUED


def test_queues_page_needs_the_view_document_permission(client, django_user_model) -> None:
    client.force_login(staff_with(django_user_model, "bare"))

    assert client.get(reverse("operations-queues")).status_code == 403


def test_a_report_download_needs_the_view_permission(
    client, django_user_model, organization, media_root
) -> None:
    report = UsageReport(organization=organization, month=date(2026, 3, 1), format="csv")
    report.status = ReportStatus.DONE
    report.file.save("usage-acme-2026-03.csv", ContentFile(b"date,agent\n"), save=True)
    url = reverse("admin:analytics_usagereport_download", args=[report.pk])

    client.force_login(staff_with(django_user_model, "bare", "view_organization"))
    refused = client.get(url)
    client.force_login(staff_with(django_user_model, "viewer", "view_usagereport"))
    allowed = client.get(url)

    assert (refused.status_code, allowed.status_code) == (404, 200)


def test_the_dashboard_needs_a_model_permission(client, django_user_model) -> None:
    client.force_login(staff_with(django_user_model, "bare"))

    assert client.get(reverse("analytics-dashboard")).status_code == 403


@pytest.mark.parametrize(
    ("row", "options"),
    [
        ("newco,Bot,bot,,,,", {"create_organizations": "on"}),  # needs add_organization
        ("acme,Bot,bot,,,,https://example.com/kb", {}),  # needs add_document
    ],
)
def test_agent_import_needs_the_permissions_of_what_it_creates(
    client, django_user_model, organization, media_root, row, options
) -> None:
    client.force_login(staff_with(django_user_model, "clerk", "add_agent", "view_agent"))
    upload = SimpleUploadedFile(
        "agents.csv",
        f"organization,name,slug,persona,model,temperature,documents\n{row}\n".encode(),
        content_type="text/csv",
    )

    client.post(reverse("admin:documents_agent_import"), {"file": upload, **options})

    assert not AgentImport.objects.exists()


# --- User-supplied names never choose a path -------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../../../etc/passwd",
        "..\\..\\evil.PDF",
        "/abs/olute.txt",
        "C:\\Windows\\x.exe",
        "report.pdf/../../x",
        "a.b c;rm -rf",
        "x.\u00e9t\u00e9",
        "no-suffix",
        "a." + "z" * 20,
    ],
)
def test_storage_names_are_content_addresses_whatever_the_original_name(name: str) -> None:
    stored = services.storage_name_for("ab" + "0" * 62, name)

    assert STORAGE_NAME.fullmatch(stored), stored


def test_an_uploaded_files_name_cannot_place_it_outside_the_media_folder(
    django_user_model, agent, media_root, tmp_path
) -> None:
    api = token_client(staff_with(django_user_model, "ops", "add_document", "view_document"))
    upload = SimpleUploadedFile("../../../../escaped.txt", b"Opening hours are nine to five.")

    response = api.post("/api/v1/documents", {"agent": agent.pk, "file": upload})

    assert response.status_code == 201
    document = Document.objects.get()
    assert STORAGE_NAME.fullmatch(document.file.name)
    stored = [p for p in media_root.rglob("*") if p.is_file()]
    assert stored == [media_root / document.file.name]
    assert not list(tmp_path.parent.rglob("escaped.txt"))


@pytest.mark.parametrize("member", ["..\\..\\evil.txt", "C:/evil.txt", "sub/../../evil.txt"])
def test_archives_with_windows_style_or_nested_escapes_are_refused(
    agent, media_root, member
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("fine.txt", "Fine.")
        zipped.writestr(member, "evil")
    archive.seek(0)

    outcome = services.documents_create_from_archive(
        agent=agent, archive=archive, archive_name="bad.zip"
    )

    assert "outside the archive" in outcome.error
    assert not Document.objects.exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()]


# --- Upload size limits ------------------------------------------------------------------------


def test_admin_forms_refuse_a_file_over_the_limit_before_storing_it(
    admin_client, agent, media_root, settings
) -> None:
    settings.DOCFLOW = {**settings.DOCFLOW, "MAX_DOCUMENT_BYTES": 10}
    one = SimpleUploadedFile("big.txt", b"x" * 11)
    many = SimpleUploadedFile("big2.txt", b"y" * 11)

    single = admin_client.post(
        reverse("admin:documents_document_add"), {"agent": agent.pk, "file": one}
    )
    several = admin_client.post(
        reverse("admin:documents_document_upload"), {"agent": agent.pk, "files": [many]}
    )

    assert (single.status_code, several.status_code) == (200, 200)
    assert "the largest accepted file is 10 bytes" in single.content.decode()
    assert "the largest accepted file is 10 bytes" in several.content.decode()
    assert not Document.objects.exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_an_api_upload_over_the_limit_is_failed_and_not_stored(
    django_user_model, agent, media_root, settings
) -> None:
    settings.DOCFLOW = {**settings.DOCFLOW, "MAX_DOCUMENT_BYTES": 10}
    api = token_client(staff_with(django_user_model, "ops", "add_document", "view_document"))

    response = api.post(
        "/api/v1/documents", {"agent": agent.pk, "file": SimpleUploadedFile("b.txt", b"x" * 11)}
    )

    assert response.status_code == 201
    assert (response.json()["status"], response.json()["error_code"]) == ("failed", "too_large")
    assert not [p for p in media_root.rglob("*") if p.is_file()]


# --- Secrets ------------------------------------------------------------------------------------


def test_the_web_process_refuses_to_start_on_the_development_secret_key(tmp_path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL", "CELERY_BROKER_URL"}
    }
    env.update(DEBUG="false", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    result = subprocess.run(
        [sys.executable, "-c", "import config.wsgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
