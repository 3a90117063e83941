"""The admin flows through the test client: uploads, actions, progress polling and search."""

from __future__ import annotations

import io
import zipfile
from unittest import mock

import pytest
from django.urls import reverse

from documents import services
from documents.models import Document, DocumentStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def published():
    with mock.patch.object(services, "documents_publish", return_value=0) as publish:
        yield publish


def test_add_form_uploads_one_file_and_queues_it(
    admin_client, agent, pdf_file, media_root, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), pdf_file.open("rb") as handle:
        response = admin_client.post(
            reverse("admin:documents_document_add"), {"agent": agent.pk, "file": handle}
        )

    document = Document.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:documents_document_change", args=[document.pk])
    assert (document.status, document.original_name) == (DocumentStatus.QUEUED, "handbook.pdf")
    assert published.call_count == 1


def test_add_form_rejects_an_empty_file(admin_client, agent, media_root):
    empty = io.BytesIO(b"")
    empty.name = "empty.txt"

    response = admin_client.post(
        reverse("admin:documents_document_add"), {"agent": agent.pk, "file": empty}
    )

    assert response.status_code == 200
    assert not Document.objects.exists()


def test_upload_many_accepts_files_and_archives(admin_client, agent, media_root, published):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("faq.txt", "Frequently asked questions about refunds.")
        zipped.writestr("guide/setup.md", "# Setup\n\nInstall the agent.")
    archive.seek(0)
    archive.name = "kb.zip"
    single = io.BytesIO(b"Opening hours are nine to five.")
    single.name = "hours.txt"

    response = admin_client.post(
        reverse("admin:documents_document_upload"),
        {"agent": agent.pk, "files": [archive, single]},
    )

    assert response.status_code == 302
    names = sorted(Document.objects.values_list("original_name", flat=True))
    assert names == ["hours.txt", "kb.zip/faq.txt", "kb.zip/guide/setup.md"]
    assert set(Document.objects.values_list("status", flat=True)) == {DocumentStatus.QUEUED}


def test_upload_many_refuses_a_traversal_archive_and_says_why(
    admin_client, agent, media_root, published
):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../../etc/cron.d/evil", "* * * * * root rm -rf /")
    archive.seek(0)
    archive.name = "evil.zip"

    response = admin_client.post(
        reverse("admin:documents_document_upload"),
        {"agent": agent.pk, "files": [archive]},
        follow=True,
    )

    assert not Document.objects.exists()
    assert "outside the archive" in response.content.decode()


def test_add_from_url_validates_every_line(admin_client, agent, published):
    response = admin_client.post(
        reverse("admin:documents_document_add_url"),
        {"agent": agent.pk, "urls": "https://example.com/a\nftp://example.com/b\n"},
    )

    assert response.status_code == 200
    assert "Line 2" in response.content.decode()
    assert not Document.objects.exists()


def test_add_from_url_creates_queued_documents(admin_client, agent, published):
    response = admin_client.post(
        reverse("admin:documents_document_add_url"),
        {"agent": agent.pk, "urls": "https://example.com/a\nhttps://example.com/a\n"},
    )

    assert response.status_code == 302
    document = Document.objects.get()
    assert (document.source_url, document.status) == ("https://example.com/a", "queued")


def _documents(agent, count: int, status: str) -> list[Document]:
    return [
        Document.objects.create(
            agent=agent,
            original_name=f"{status}-{i}.txt",
            file=f"documents/x{i}.txt",
            status=status,
            task_id=f"t{status}{i}",
        )
        for i in range(count)
    ]


def test_changelist_shows_progress_and_errors(admin_client, agent):
    (document,) = _documents(agent, 1, DocumentStatus.FAILED)
    Document.objects.filter(pk=document.pk).update(error="This PDF is password-protected.")

    response = admin_client.get(reverse("admin:documents_document_changelist"))

    body = response.content.decode()
    assert response.status_code == 200
    assert f'data-progress-id="{document.pk}"' in body
    assert "password-protected" in body
    assert "Upload many" in body


def test_actions_process_cancel_and_retry(admin_client, agent, published):
    failed = _documents(agent, 2, DocumentStatus.FAILED)
    queued = _documents(agent, 1, DocumentStatus.QUEUED)
    url = reverse("admin:documents_document_changelist")

    response = admin_client.post(
        url,
        {"action": "cancel_selected", "_selected_action": [d.pk for d in failed + queued]},
        follow=True,
    )
    assert "Cancelled 1 document." in response.content.decode()
    assert Document.objects.get(pk=queued[0].pk).status == DocumentStatus.CANCELLED

    response = admin_client.post(
        url,
        {"action": "retry_failed", "_selected_action": [d.pk for d in failed + queued]},
        follow=True,
    )
    assert "Queued 2 documents." in response.content.decode()
    assert "1 of the selected documents had not failed." in response.content.decode()

    response = admin_client.post(
        url, {"action": "process_selected", "_selected_action": [queued[0].pk]}, follow=True
    )
    assert Document.objects.get(pk=queued[0].pk).status == DocumentStatus.QUEUED


def test_progress_view_returns_rows_as_json(admin_client, agent):
    (document,) = _documents(agent, 1, DocumentStatus.PROCESSING)
    Document.objects.filter(pk=document.pk).update(stage="embed", progress=50)

    response = admin_client.get(
        reverse("admin:documents_document_progress") + f"?ids={document.pk},999999"
    )

    assert response.json() == {
        "documents": [
            {
                "pk": document.pk,
                "status": "processing",
                "stage": "embed",
                "progress": 50,
                "error": "",
                "chunk_count": 0,
                "page_count": None,
                "terminal": False,
                "status_label": "Processing",
            }
        ]
    }


def test_progress_view_rejects_bad_ids_and_anonymous_users(admin_client, client):
    url = reverse("admin:documents_document_progress")

    assert admin_client.get(url + "?ids=1,abc").status_code == 400
    assert client.get(url + "?ids=1").status_code == 302  # to the login page


def test_changelist_search_finds_documents_by_their_text(admin_client, agent, pdf_file, media_root):
    document = services.document_create_from_upload(
        agent=agent,
        upload=io.BytesIO(pdf_file.read_bytes()),
        original_name="handbook.pdf",
    )
    document.refresh_from_db()  # queued by the post_save signal
    services.document_process(document_id=document.pk, task_id=document.task_id)
    document.refresh_from_db()
    other = _documents(agent, 1, DocumentStatus.DONE)[0]
    keyword = document.keywords[0]

    response = admin_client.get(reverse("admin:documents_document_changelist"), {"q": keyword})

    rows = response.context["cl"].result_list
    assert [d.pk for d in rows] == [document.pk]
    assert other.pk not in [d.pk for d in rows]


def test_pages_render_for_staff(admin_client, agent, pdf_file, media_root):
    document = services.document_create_from_upload(
        agent=agent, upload=io.BytesIO(pdf_file.read_bytes()), original_name="handbook.pdf"
    )
    document.refresh_from_db()
    services.document_process(document_id=document.pk, task_id=document.task_id)
    chunk = document.chunks.first()

    change = admin_client.get(reverse("admin:documents_document_change", args=[document.pk]))
    pages = [
        admin_client.get(reverse(name))
        for name in (
            "admin:documents_document_add",
            "admin:documents_document_upload",
            "admin:documents_document_add_url",
            "admin:documents_agent_changelist",
            "admin:documents_organization_changelist",
        )
    ]

    assert change.status_code == 200
    assert chunk.text.splitlines()[0][:25] in change.content.decode()
    assert "Handbook" in change.content.decode()
    assert [page.status_code for page in pages] == [200] * 5


def test_staff_without_permissions_cannot_add_or_act(client, django_user_model, agent):
    clerk = django_user_model.objects.create_user("clerk", password="pw-123456789", is_staff=True)
    client.force_login(clerk)

    assert client.get(reverse("admin:documents_document_upload")).status_code == 403
    assert client.get(reverse("admin:documents_document_progress")).status_code == 403
