"""document_process on PostgreSQL, in-process: outcomes, idempotency and claims."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from documents import pipeline, samples, selectors, services
from documents.models import Agent, Chunk, Document, DocumentStatus

pytestmark = pytest.mark.django_db


def upload(agent: Agent, path: Path, name: str | None = None) -> Document:
    return services.document_create_from_upload(
        agent=agent,
        upload=SimpleUploadedFile(name or path.name, path.read_bytes()),
        original_name=name or path.name,
    )


def queued(agent: Agent, path: Path, name: str | None = None) -> Document:
    """A document as the post_save signal leaves it: queued under a task id (the message is
    sent after commit, which this non-transactional test never reaches)."""
    document = upload(agent, path, name)
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    return document


def process(document: Document) -> services.ProcessOutcome:
    return services.document_process(document_id=document.pk, task_id=document.task_id)


def test_pdf_is_processed_into_searchable_chunks(agent, pdf_file, media_root):
    document = queued(agent, pdf_file)

    outcome = process(document)

    document.refresh_from_db()
    assert outcome.status == "done"
    assert document.status == DocumentStatus.DONE
    assert (document.stage, document.progress, document.attempts) == ("done", 100, 1)
    assert document.kind == "pdf"
    assert document.page_count == 3
    assert (document.title, document.author) == ("Handbook", "Ada")
    assert document.chunk_count == Chunk.objects.filter(document=document).count() > 0
    assert document.keywords
    assert document.text_length > 0
    assert document.processing_seconds is not None
    chunk = Chunk.objects.filter(document=document).first()
    assert len(bytes(chunk.embedding)) == 256 * 4
    word = document.keywords[0].split()[0]
    hits = selectors.chunk_search(word, agent=agent)
    assert hits
    assert {hit.document_id for hit in hits} == {document.pk}


def test_processing_the_same_message_twice_changes_nothing(agent, pdf_file, media_root):
    document = queued(agent, pdf_file)
    process(document)
    before = list(Chunk.objects.filter(document=document).values_list("pk", "text"))

    outcome = process(document)

    assert outcome.status == "skipped"
    assert list(Chunk.objects.filter(document=document).values_list("pk", "text")) == before


def test_redelivery_after_a_dead_worker_replaces_chunks(agent, pdf_file, media_root):
    document = queued(agent, pdf_file)
    process(document)
    count = Chunk.objects.filter(document=document).count()
    # The worker died after claiming: the row says processing under the same task id, and the
    # broker hands the message back marked redelivered.
    Document.objects.filter(pk=document.pk).update(status=DocumentStatus.PROCESSING)

    outcome = services.document_process(
        document_id=document.pk, task_id=document.task_id, redelivered=True
    )

    document.refresh_from_db()
    assert outcome.status == "done"
    assert document.attempts == 2
    assert Chunk.objects.filter(document=document).count() == count


def test_a_second_copy_of_a_fresh_message_cannot_claim_a_running_document(
    agent, pdf_file, media_root
):
    document = queued(agent, pdf_file)
    Document.objects.filter(pk=document.pk).update(status=DocumentStatus.PROCESSING, attempts=1)

    outcome = process(document)  # same task id, not a redelivery: a fan-out published twice

    document.refresh_from_db()
    assert outcome.status == "skipped"
    assert (document.status, document.attempts) == (DocumentStatus.PROCESSING, 1)


def test_a_file_that_keeps_killing_workers_ends_failed(agent, pdf_file, media_root, settings):
    document = queued(agent, pdf_file)
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.PROCESSING, attempts=settings.DOCFLOW["MAX_ATTEMPTS"]
    )

    outcome = services.document_process(
        document_id=document.pk, task_id=document.task_id, redelivered=True
    )

    document.refresh_from_db()
    assert outcome.status == "failed"
    assert document.status == DocumentStatus.FAILED
    assert document.error_code == "worker_lost"
    assert not Chunk.objects.filter(document=document).exists()


def test_a_stale_message_is_ignored(agent, pdf_file, media_root):
    document = queued(agent, pdf_file)

    outcome = services.document_process(document_id=document.pk, task_id="some-old-message")

    document.refresh_from_db()
    assert outcome.status == "skipped"
    assert (document.status, document.attempts) == (DocumentStatus.QUEUED, 0)


@pytest.mark.parametrize(
    ("maker", "code"),
    [
        (samples.make_corrupt_pdf, "corrupt"),
        (samples.make_encrypted_pdf, "encrypted"),
        (samples.make_image_only_pdf, "no_text"),
    ],
)
def test_permanent_problems_fail_at_once_with_a_readable_error(
    agent, tmp_path, media_root, maker, code
):
    path = tmp_path / "bad.pdf"
    maker(path)
    document = queued(agent, path)

    outcome = process(document)

    document.refresh_from_db()
    assert outcome.status == "failed"
    assert (document.status, document.error_code, document.attempts) == ("failed", code, 1)
    assert document.kind == "pdf"
    assert len(document.error) > 20
    assert document.chunk_count == 0


def test_binary_junk_is_unsupported(agent, tmp_path, media_root):
    path = tmp_path / "photo.pdf"
    path.write_bytes(bytes(range(256)) * 40)
    document = queued(agent, path)

    process(document)

    document.refresh_from_db()
    assert (document.status, document.error_code, document.kind) == ("failed", "unsupported", "")


def test_same_content_for_the_same_agent_is_a_duplicate(agent, pdf_file, media_root):
    first = queued(agent, pdf_file)
    second = queued(agent, pdf_file, name="copy.pdf")
    process(first)

    outcome = process(second)

    second.refresh_from_db()
    assert outcome.status == "duplicate"
    assert second.status == DocumentStatus.DUPLICATE
    assert second.duplicate_of_id == first.pk
    assert not Chunk.objects.filter(document=second).exists()


def test_a_copy_of_a_failed_document_gets_its_own_try(agent, pdf_file, media_root):
    first = queued(agent, pdf_file)
    Document.objects.filter(pk=first.pk).update(status=DocumentStatus.FAILED)
    second = queued(agent, pdf_file, name="again.pdf")

    assert process(second).status == "done"


def test_same_content_for_another_agent_is_processed(agent, pdf_file, media_root):
    other = Agent.objects.create(organization=agent.organization, name="Other", slug="other")
    queued(agent, pdf_file)
    second = queued(other, pdf_file)

    assert process(second).status == "done"


def every_stage_written(settings) -> None:  # type: ignore[no-untyped-def]
    settings.DOCFLOW = {**settings.DOCFLOW, "PROGRESS_EVERY_SECONDS": 0}


def test_every_stage_is_written_for_a_document_that_takes_its_time(
    agent, pdf_file, media_root, settings
):
    every_stage_written(settings)
    document = queued(agent, pdf_file)
    seen: list[tuple[str, int, str, int]] = []

    def read_the_row(stage: str, progress: int) -> None:
        row = Document.objects.get(pk=document.pk)
        seen.append((stage, progress, row.stage, row.progress))

    services.document_process(
        document_id=document.pk, task_id=document.task_id, on_progress=read_the_row
    )

    assert seen == [
        ("chunk", 20, "chunk", 20),
        ("embed", 50, "embed", 50),
        ("index", 80, "index", 80),
    ]


def test_a_quick_document_skips_the_stages_nobody_could_see(
    agent, pdf_file, media_root, settings, django_assert_max_num_queries
):
    settings.DOCFLOW = {**settings.DOCFLOW, "PROGRESS_EVERY_SECONDS": 60}
    document = queued(agent, pdf_file)
    reported: list[str] = []

    with django_assert_max_num_queries(12):
        outcome = services.document_process(
            document_id=document.pk,
            task_id=document.task_id,
            on_progress=lambda stage, progress: reported.append(stage),
        )

    document.refresh_from_db()
    assert outcome.status == "done"
    assert reported == []
    assert (document.stage, document.progress) == ("done", 100)


def test_with_a_model_provider_every_stage_is_written_at_once(
    agent, pdf_file, media_root, settings, monkeypatch
):
    """A provider other than the hashing one may make any stage long: nothing is skipped."""
    settings.DOCFLOW = {**settings.DOCFLOW, "PROGRESS_EVERY_SECONDS": 60}
    hashing = pipeline.HashingEmbedder()

    class ModelEmbedder:
        name = "model-under-test"
        dimensions = hashing.dimensions

        def embed(self, texts):  # type: ignore[no-untyped-def]
            return hashing.embed(texts)

    monkeypatch.setattr(services, "embedding_provider", ModelEmbedder)
    document = queued(agent, pdf_file)
    reported: list[str] = []

    services.document_process(
        document_id=document.pk,
        task_id=document.task_id,
        on_progress=lambda stage, progress: reported.append(stage),
    )

    document.refresh_from_db()
    assert reported == ["chunk", "embed", "index"]
    assert document.embedding_model == "model-under-test"


def test_cancelled_while_processing_stops_without_chunks(agent, pdf_file, media_root, settings):
    every_stage_written(settings)
    document = queued(agent, pdf_file)

    def cancel_midway(stage: str, progress: int) -> None:
        if progress == 20:  # cancelled while the pipeline runs
            services.documents_cancel(document_ids=[document.pk])

    with pytest.raises(services.DocumentCancelled):
        services.document_process(
            document_id=document.pk, task_id=document.task_id, on_progress=cancel_midway
        )

    document.refresh_from_db()
    assert document.status == DocumentStatus.CANCELLED
    assert not Chunk.objects.filter(document=document).exists()


def test_too_large_upload_is_recorded_failed_and_not_stored(agent, media_root, settings):
    settings.DOCFLOW = {**settings.DOCFLOW, "MAX_DOCUMENT_BYTES": 10}

    document = services.document_create_from_upload(
        agent=agent, upload=SimpleUploadedFile("big.txt", b"x" * 11), original_name="big.txt"
    )

    assert (document.status, document.error_code) == ("failed", "too_large")
    assert not document.file
    assert not list(media_root.rglob("*.txt"))
