"""Bulk agent imports: validation before queueing, idempotent upserts, knowledge bases, admin."""

from __future__ import annotations

import io
import json
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from documents import imports, services
from documents.agent_import import ImportFileError
from documents.models import Agent, AgentImport, Document, ImportStatus, Organization

pytestmark = pytest.mark.django_db

HEADER = "organization,name,slug,persona,model,temperature,documents\n"


def csv_file(*lines: str) -> bytes:
    return (HEADER + "".join(f"{line}\n" for line in lines)).encode()


@pytest.fixture
def queued_jobs():
    """Capture the import task messages instead of sending them."""
    with mock.patch.object(imports, "_publish_import") as publish:
        yield publish


def run(job: AgentImport) -> str:
    return imports.agent_import_run(import_id=job.pk, task_id=job.task_id)


def test_valid_rows_are_queued_and_bad_ones_reported_per_row(
    organization, queued_jobs, django_capture_on_commit_callbacks
):
    data = csv_file(
        "acme,Support Bot,,Helps customers,gpt-4o,0.2,",
        "acme,Sales Bot,sales,,,,",
        "acme,Too Hot,hot,,,5,",
        "nowhere,Lost,lost,,,,",
    )

    with django_capture_on_commit_callbacks(execute=True):
        job, check = imports.agent_import_start(data=data, filename="agents.csv")

    assert [row.slug for row in check.rows] == ["support-bot", "sales"]
    assert [(e.row, e.column) for e in check.errors] == [(4, "temperature"), (5, "organization")]
    assert (job.status, job.total_rows, job.failed_count) == (ImportStatus.QUEUED, 4, 2)
    queued_jobs.assert_called_once_with(job.pk, job.task_id)
    assert not Agent.objects.exists()  # nothing applied before the worker runs


def test_a_refused_file_creates_nothing(organization, queued_jobs):
    with pytest.raises(ImportFileError):
        imports.agent_import_start(data=b"", filename="agents.csv")

    assert not AgentImport.objects.exists()


def test_only_invalid_rows_queue_nothing(organization, queued_jobs):
    job, check = imports.agent_import_start(
        data=csv_file("acme,Too Hot,hot,,,9,"), filename="agents.csv"
    )

    assert job is None
    assert len(check.errors) == 1
    assert not AgentImport.objects.exists()


def test_applying_creates_then_the_same_file_again_changes_nothing(organization, queued_jobs):
    data = csv_file("acme,Support Bot,,Helps,gpt-4o,0.2,", "acme,Sales Bot,sales,,,,")
    first, _ = imports.agent_import_start(data=data, filename="a.csv")

    assert run(first) == "done"
    assert run(first) == "skipped"  # the same message delivered twice
    second, _ = imports.agent_import_start(data=data, filename="a.csv")
    run(second)

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.created_count, first.updated_count, first.unchanged_count) == (2, 0, 0)
    assert (second.created_count, second.updated_count, second.unchanged_count) == (0, 0, 2)
    assert (second.status, second.progress) == (ImportStatus.DONE, 100)
    bot = Agent.objects.get(slug="support-bot")
    assert (bot.persona, bot.model_name, bot.temperature) == ("Helps", "gpt-4o", 0.2)
    assert Agent.objects.count() == 2


def test_changed_rows_are_updated_in_place(organization, queued_jobs):
    first, _ = imports.agent_import_start(data=csv_file("acme,Bot,bot,Old,,,"), filename="a.csv")
    run(first)
    pk = Agent.objects.get().pk

    second, _ = imports.agent_import_start(data=csv_file("acme,Bot,bot,New,,,"), filename="a.csv")
    run(second)

    second.refresh_from_db()
    assert second.updated_count == 1
    assert Agent.objects.get().pk == pk
    assert Agent.objects.get().persona == "New"


def test_unknown_organizations_are_created_only_when_asked(db, queued_jobs):
    data = csv_file("newco,Bot,bot,,,,")

    job, check = imports.agent_import_start(data=data, filename="a.csv")
    assert job is None
    assert check.errors[0].column == "organization"

    job, _ = imports.agent_import_start(data=data, filename="a.csv", create_organizations=True)
    run(job)
    assert Organization.objects.get(slug="newco").agents.get().slug == "bot"


def test_knowledge_base_urls_become_documents_once(organization, queued_jobs):
    data = csv_file("acme,Bot,bot,,,,https://example.com/a|https://example.com/b")

    with mock.patch.object(services, "documents_publish"):
        for _ in range(2):
            job, _ = imports.agent_import_start(data=data, filename="a.csv")
            run(job)

    documents = Document.objects.filter(agent__slug="bot").order_by("source_url")
    assert [d.source_url for d in documents] == ["https://example.com/a", "https://example.com/b"]
    assert {d.status for d in documents} == {"queued"}
    assert AgentImport.objects.order_by("pk").first().documents_queued == 2


def test_server_paths_must_lie_inside_the_allowed_roots(
    organization, queued_jobs, settings, tmp_path
):
    inside = tmp_path / "kb" / "faq.txt"
    inside.parent.mkdir()
    inside.write_text("Opening hours are nine to five.")
    settings.DOCFLOW = {**settings.DOCFLOW, "IMPORT_ALLOWED_ROOTS": [str(tmp_path / "kb")]}
    data = csv_file(f"acme,Bot,bot,,,,{inside}", "acme,Snoop,snoop,,,,/etc/passwd")

    _, check = imports.agent_import_start(data=data, filename="a.csv")

    assert [row.slug for row in check.rows] == ["bot"]
    assert (check.errors[0].row, check.errors[0].column) == (3, "documents")


def test_bulk_create_agents_command_prints_json(organization, tmp_path, queued_jobs):
    path = tmp_path / "agents.json"
    path.write_text(json.dumps([{"organization": "acme", "name": "Bot"}, {"name": "No org"}]))
    out = StringIO()

    call_command("bulk_create_agents", str(path), json=True, stdout=out)

    summary = json.loads(out.getvalue())
    assert summary["failed"] == 1
    assert summary["errors"][0]["row"] == 2


def test_bulk_create_agents_refuses_a_broken_file(tmp_path, db):
    path = tmp_path / "agents.csv"
    path.write_bytes(b"\xff\xfe not utf-8")

    with pytest.raises(CommandError, match="UTF-8"):
        call_command("bulk_create_agents", str(path))


def test_admin_import_page_queues_and_shows_the_job(admin_client, organization, queued_jobs):
    upload = io.BytesIO(csv_file("acme,Bot,bot,,,,", "acme,Bad,bad,,,7,"))
    upload.name = "agents.csv"

    response = admin_client.post(reverse("admin:documents_agent_import"), {"file": upload})

    job = AgentImport.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("admin:documents_agentimport_change", args=[job.pk])
    page = admin_client.get(response.url).content.decode()
    assert "Line 3, temperature" in page


def test_admin_import_page_shows_row_errors_when_nothing_is_valid(admin_client, organization):
    upload = io.BytesIO(csv_file("acme,Bad,bad,,,7,"))
    upload.name = "agents.csv"

    response = admin_client.post(reverse("admin:documents_agent_import"), {"file": upload})

    assert response.status_code == 200
    assert "Line 2, temperature" in response.content.decode()
    assert not AgentImport.objects.exists()


def test_rows_without_an_organization_take_the_commands_default(
    organization, tmp_path, queued_jobs
):
    path = tmp_path / "agents.csv"
    path.write_text("name,slug\nBot,bot\n")
    out = StringIO()

    call_command("bulk_create_agents", str(path), organization="acme", json=True, stdout=out)

    job = AgentImport.objects.get()
    assert job.default_organization == "acme"
    run(job)
    assert organization.agents.get().slug == "bot"


def test_applying_costs_a_few_queries_per_batch_not_per_row(
    organization, queued_jobs, django_assert_max_num_queries
):
    data = csv_file(*(f"acme,Agent {i},agent-{i},,,," for i in range(400)))
    job, _ = imports.agent_import_start(data=data, filename="a.csv")

    with django_assert_max_num_queries(15):
        run(job)

    assert organization.agents.count() == 400


def test_agent_page_shows_its_knowledge_base(admin_client, agent):
    Document.objects.create(agent=agent, file="documents/a.txt", status="done", chunk_count=7)
    Document.objects.create(agent=agent, file="documents/b.txt", status="failed")

    page = admin_client.get(reverse("admin:documents_agent_change", args=[agent.pk]))

    body = page.content.decode()
    assert "2 documents (1 done, 1 failed); 7 chunks" in body
    assert f"?agent__id__exact={agent.pk}" in body


def test_a_running_import_page_refreshes_itself_and_a_finished_one_does_not(
    admin_client, organization, queued_jobs
):
    job, _ = imports.agent_import_start(data=csv_file("acme,Bot,bot,,,,"), filename="a.csv")
    url = reverse("admin:documents_agentimport_change", args=[job.pk])

    assert 'http-equiv="refresh"' in admin_client.get(url).content.decode()
    run(job)
    assert 'http-equiv="refresh"' not in admin_client.get(url).content.decode()


def test_an_agent_added_in_the_admin_records_who_created_it(admin_client, admin_user, organization):
    response = admin_client.post(
        reverse("admin:documents_agent_add"),
        {
            "organization": organization.pk,
            "name": "Helper",
            "slug": "helper",
            "persona": "",
            "model_name": "gpt-4o-mini",
            "temperature": "0.5",
            "status": "active",
        },
    )

    assert response.status_code == 302
    assert Agent.objects.get(slug="helper").created_by == admin_user
