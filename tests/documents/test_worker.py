"""End to end with a real worker process on real Redis and PostgreSQL (routing, acks, retries,
on_commit timing: what eager mode hides)."""

from __future__ import annotations

import json
import os
import signal
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django_celery_results.models import TaskResult

from config.celery import app
from documents import samples, services
from documents.models import Chunk, Document, DocumentStatus
from documents.pipeline import run_pipeline
from documents.tasks import document_process_task, documents_process_batch_task
from tests.conftest import document_runs, register, upload, wait_for, wait_terminal

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def redeliver(document: Document) -> dict:
    """Send the document's own message again and wait for this delivery's result."""
    TaskResult.objects.filter(task_id=document.task_id).delete()
    return document_process_task.apply_async(args=[document.pk], task_id=document.task_id).get(
        timeout=30
    )


def test_uploaded_documents_are_processed_by_the_worker(
    celery_worker, shared_media, agent, tmp_path
):
    good, corrupt = tmp_path / "guide.pdf", tmp_path / "broken.pdf"
    samples.make_pdf(good, pages=4, title="Guide")
    samples.make_corrupt_pdf(corrupt)

    docs = [upload(agent, good), upload(agent, corrupt)]

    done, failed = wait_terminal([d.pk for d in docs])
    assert (done.status, done.progress, done.page_count) == ("done", 100, 4)
    assert done.chunk_count == Chunk.objects.filter(document=done).count() > 0
    assert (failed.status, failed.error_code, failed.attempts) == ("failed", "corrupt", 1)


def test_a_message_delivered_again_after_completion_changes_nothing(
    celery_worker, shared_media, agent, pdf_file
):
    document = upload(agent, pdf_file)
    (document,) = wait_terminal([document.pk])
    chunks = list(Chunk.objects.filter(document=document).values_list("pk", flat=True))

    assert redeliver(document)["status"] == "skipped"

    document.refresh_from_db()
    assert (document.status, document.attempts) == (DocumentStatus.DONE, 1)
    assert list(Chunk.objects.filter(document=document).values_list("pk", flat=True)) == chunks


def test_a_worker_killed_mid_task_loses_nothing_and_duplicates_nothing(
    celery_worker, shared_media, agent, tmp_path
):
    long_pdf = tmp_path / "long.pdf"
    samples.make_pdf(long_pdf, pages=1200, seed=7)
    expected_chunks = len(run_pipeline(long_pdf).chunks)
    document = upload(agent, long_pdf)
    wait_for(
        lambda: Document.objects.get(pk=document.pk).status == DocumentStatus.PROCESSING,
        timeout=60,
        interval=0.02,
    )

    active = app.control.inspect(timeout=1).active() or {}
    (pid,) = [t["worker_pid"] for ts in active.values() for t in ts if t["id"] == document.task_id]
    os.kill(pid, signal.SIGKILL)

    (document,) = wait_terminal([document.pk], timeout=180)
    assert document.status == DocumentStatus.DONE
    assert document.attempts == 2
    ordinals = list(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
    assert sorted(ordinals) == list(range(expected_chunks))


def test_a_transient_failure_is_retried_then_succeeds(
    celery_worker, shared_media, agent, web_server
):
    base, pages = web_server
    article = (
        b"<html><head><title>Refunds</title></head><body><article><h1>Refunds</h1>"
        + (b"<p>Customers may ask for a refund within thirty days of purchase.</p>" * 20)
        + b"</article></body></html>"
    )
    pages.add(
        "/refunds",
        (503, {"Retry-After": "0"}, b"busy"),
        (503, {}, b"busy"),
        (200, {}, article),
    )

    document = services.document_create_from_url(agent=agent, url=f"{base}/refunds")

    (document,) = wait_terminal([document.pk])
    assert document.status == DocumentStatus.DONE
    assert document.kind == "html"
    assert document.title == "Refunds"
    assert pages.hits["/refunds"] == 3
    assert document.attempts == 3
    assert document.sha256


def test_a_page_that_stays_down_fails_after_the_retries(
    celery_worker, shared_media, agent, web_server
):
    base, pages = web_server
    pages.add("/down", (502, {}, b"bad gateway"))

    document = services.document_create_from_url(agent=agent, url=f"{base}/down")

    (document,) = wait_terminal([document.pk])
    assert (document.status, document.error_code) == ("failed", "transient")
    assert pages.hits["/down"] == 4
    assert "Gave up after 4 attempts" in document.error


def test_a_missing_page_fails_at_once(celery_worker, shared_media, agent, web_server):
    base, pages = web_server

    document = services.document_create_from_url(agent=agent, url=f"{base}/missing")

    (document,) = wait_terminal([document.pk])
    assert (document.status, document.error_code, document.attempts) == ("failed", "fetch", 1)
    assert pages.hits["/missing"] == 1


def test_cancel_a_queued_document(celery_worker, shared_media, agent, pdf_file):
    # Park the document on a queue no worker listens to, then cancel it.
    document = services.document_create_from_upload(
        agent=agent, upload=SimpleUploadedFile("a.pdf", pdf_file.read_bytes()), original_name="a"
    )
    wait_terminal([document.pk])
    Document.objects.filter(pk=document.pk).update(status=DocumentStatus.QUEUED, task_id="parked")

    assert services.documents_cancel(document_ids=[document.pk]) == 1
    # A late delivery of the parked message must not resurrect it.
    document_process_task.apply_async(args=[document.pk], task_id="parked").get(
        timeout=30, propagate=False
    )

    document.refresh_from_db()
    assert document.status == DocumentStatus.CANCELLED


def test_ingest_documents_waits_and_summarises(celery_worker, shared_media, agent, tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    samples.make_pdf(folder / "one.pdf", pages=2, seed=1)
    samples.make_pdf(folder / "two.pdf", pages=2, seed=2)
    samples.make_corrupt_pdf(folder / "bad.pdf")
    (folder / "notes.md").write_text("# Notes\n\nSupport hours are nine to five on weekdays.\n")

    def ingest() -> dict:
        out = StringIO()
        call_command(
            "ingest_documents",
            str(folder),
            agent="support",
            wait=True,
            json=True,
            timeout=120,
            stdout=out,
        )
        return json.loads(out.getvalue())

    first = ingest()
    assert {k: first[k] for k in ("total", "done", "failed", "duplicates", "cancelled")} == {
        "total": 4,
        "done": 3,
        "failed": 1,
        "duplicates": 0,
        "cancelled": 0,
    }
    assert [f["path"] for f in first["failures"]] == [str(folder / "bad.pdf")]
    chunks = Chunk.objects.count()

    # Again: processed files are duplicates; the failed one gets another try (and fails).
    second = ingest()
    assert {k: second[k] for k in ("total", "done", "failed", "duplicates")} == {
        "total": 4,
        "done": 0,
        "failed": 1,
        "duplicates": 3,
    }
    assert Chunk.objects.count() == chunks


def test_many_documents_fan_out_through_the_low_queue(celery_worker, shared_media, agent, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(60):  # above the direct-publish limit: batches go through fan-out
        (folder / f"note-{index}.txt").write_text(f"Note {index}: opening hours and refunds.\n")

    out = StringIO()
    call_command(
        "ingest_documents",
        str(folder),
        agent="support",
        wait=True,
        json=True,
        timeout=120,
        stdout=out,
    )

    summary = json.loads(out.getvalue())
    assert (summary["total"], summary["done"]) == (60, 60)
    wait_for(lambda: Chunk.objects.count() == 60)


def test_bulk_create_agents_waits_for_the_worker(
    celery_worker, shared_media, organization, tmp_path
):
    path = tmp_path / "agents.csv"
    rows = [f"acme,Agent {i},agent-{i},Persona {i},gpt-4o,0.{i % 10}," for i in range(1500)]
    rows.append("acme,Too hot,too-hot,,,3.5,")  # a bad row: reported, the rest still lands
    path.write_text(
        "organization,name,slug,persona,model,temperature,documents\n" + "\n".join(rows)
    )

    def bulk_import() -> dict:
        out = StringIO()
        call_command("bulk_create_agents", str(path), wait=True, json=True, timeout=120, stdout=out)
        return json.loads(out.getvalue())

    first, second = bulk_import(), bulk_import()

    assert (first["created"], first["unchanged"], first["failed"]) == (1500, 0, 1)
    assert first["errors"][0]["row"] == 1502
    assert "temperature" in first["errors"][0]["message"]
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 1500)
    assert organization.agents.count() == 1500


def test_small_documents_registered_together_share_tasks_and_finish_once_each(
    celery_worker, shared_media, agent, tmp_path
):
    paths = [tmp_path / f"note-{index}.pdf" for index in range(6)]
    for index, path in enumerate(paths):
        samples.make_pdf(path, pages=2, seed=index + 1, title=f"Note {index}")

    documents = register(agent, paths)

    finished = wait_terminal([d.pk for d in documents])
    assert {(d.status, d.attempts) for d in finished} == {(DocumentStatus.DONE, 1)}
    for document, path in zip(finished, paths, strict=True):
        assert document.chunk_count == len(run_pipeline(path).chunks)
        assert Chunk.objects.filter(document=document).count() == document.chunk_count
    assert document_runs("done") == {d.pk: 1 for d in documents}
    batches = TaskResult.objects.filter(task_name=documents_process_batch_task.name)
    assert batches.count() == 1
    assert batches.get().status == "SUCCESS"
