"""Management commands other than ingest (which the worker suite runs end to end)."""

from __future__ import annotations

import json
from io import StringIO
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from documents import services
from documents.models import Agent, Document, DocumentStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def processed(agent, pdf_file, media_root) -> Document:
    document = services.document_create_from_upload(
        agent=agent, upload=SimpleUploadedFile("h.pdf", pdf_file.read_bytes()), original_name="h"
    )
    document.refresh_from_db()
    services.document_process(document_id=document.pk, task_id=document.task_id)
    document.refresh_from_db()
    return document


def run(*args: str, **options: object) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue()


def test_search_prints_ranked_hits(processed):
    keyword = processed.keywords[0]

    hits = json.loads(run("search", keyword, agent="support", json=True))

    assert hits
    assert {hit["document_id"] for hit in hits} == {processed.pk}
    assert hits == sorted(hits, key=lambda hit: -hit["score"])
    assert all(keyword.split()[0] in hit["text"].lower() for hit in hits)


def test_search_says_when_nothing_matches(processed):
    assert run("search", "zyzzyva quokka") == "No matches.\n"


def test_search_for_an_unknown_agent_is_an_error(db):
    with pytest.raises(CommandError, match="No agent with slug 'ghost'"):
        run("search", "anything", agent="ghost")


def test_reprocess_failed_queues_only_that_agents_failures(agent, media_root):
    other = Agent.objects.create(organization=agent.organization, name="Other", slug="other")
    mine = Document.objects.create(agent=agent, file="documents/a.txt", status="failed")
    theirs = Document.objects.create(agent=other, file="documents/b.txt", status="failed")

    with mock.patch.object(services, "documents_publish"):
        output = run("reprocess_failed", agent="support")

    assert output == "Queued 1 failed document.\n"
    assert Document.objects.get(pk=mine.pk).status == DocumentStatus.QUEUED
    assert Document.objects.get(pk=theirs.pk).status == DocumentStatus.FAILED


def test_ingest_refuses_missing_paths_and_unknown_agents(agent, tmp_path):
    with pytest.raises(CommandError, match="Not found"):
        run("ingest_documents", str(tmp_path / "nope"), agent="support")
    with pytest.raises(CommandError, match="No agent"):
        run("ingest_documents", str(tmp_path), agent="nobody")


def test_ingest_reports_a_refused_archive_and_registers_the_rest(agent, tmp_path, media_root):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "note.txt").write_text("Opening hours are nine to five.")

    with mock.patch.object(services, "documents_publish"):
        summary = json.loads(run("ingest_documents", str(tmp_path), agent="support", json=True))

    assert summary["total"] == 2
    assert summary["failed"] == 1
    assert summary["unfinished"] == 1  # queued; no worker in this test
    assert summary["failures"][0]["path"] == str(tmp_path / "bad.zip")
    assert "cannot be read" in summary["failures"][0]["error"]
