"""Registering and enqueueing: signals, bulk registration, archives, cancel and retry."""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from documents import services
from documents.archives import SourceFile
from documents.models import Agent, Document, DocumentStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def published() -> list[tuple[int, str, str]]:
    """Capture what would be sent to the broker (the worker suites send it for real)."""
    sent: list[tuple[int, str, str]] = []

    def record(pairs: list[tuple[int, str]], *, queue: str) -> int:
        sent.extend((pk, task_id, queue) for pk, task_id in pairs)
        return len(pairs)

    with mock.patch.object(services, "documents_publish", side_effect=record):
        yield sent


def test_a_new_document_is_queued_and_published_only_after_commit(
    agent, pdf_file, media_root, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        document = services.document_create_from_upload(
            agent=agent,
            upload=SimpleUploadedFile("a.pdf", pdf_file.read_bytes()),
            original_name="a.pdf",
        )
        document.refresh_from_db()
        assert document.status == DocumentStatus.QUEUED
        assert published == []

    for callback in callbacks:
        callback()

    assert published == [(document.pk, document.task_id, "high")]
    assert document.sha256
    assert document.size_bytes == pdf_file.stat().st_size
    assert document.queued_at is not None


def test_saving_an_existing_document_does_not_enqueue_again(
    agent, pdf_file, media_root, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        document = services.document_create_from_upload(
            agent=agent,
            upload=SimpleUploadedFile("a.pdf", pdf_file.read_bytes()),
            original_name="a.pdf",
        )
    with django_capture_on_commit_callbacks(execute=True):
        document.refresh_from_db()
        document.title = "edited"
        document.save()

    assert len(published) == 1


def test_identical_uploads_share_one_stored_file(agent, pdf_file, media_root, published):
    first = services.document_create_from_upload(
        agent=agent, upload=SimpleUploadedFile("a.pdf", pdf_file.read_bytes()), original_name="a"
    )
    second = services.document_create_from_upload(
        agent=agent, upload=SimpleUploadedFile("b.pdf", pdf_file.read_bytes()), original_name="b"
    )

    assert first.file.name == second.file.name
    assert len([p for p in media_root.rglob("*") if p.is_file()]) == 1


def test_reprocess_gives_a_new_task_id_and_resets_state(agent, pdf_file, media_root, published):
    document = services.document_create_from_upload(
        agent=agent, upload=SimpleUploadedFile("a.pdf", pdf_file.read_bytes()), original_name="a"
    )
    document.refresh_from_db()
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.FAILED, error="boom", attempts=3, progress=50
    )

    assert services.documents_reprocess(document_ids=[document.pk]) == 1

    old_task_id = document.task_id
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    assert (document.error, document.attempts, document.progress) == ("", 0, 0)
    assert document.task_id != old_task_id


def test_retry_failed_only_touches_failed_rows(agent, pdf_file, media_root, published):
    docs = [
        services.document_create_from_upload(
            agent=agent,
            upload=SimpleUploadedFile(f"{i}.txt", f"text {i}".encode()),
            original_name=f"{i}.txt",
        )
        for i in range(3)
    ]
    Document.objects.filter(pk=docs[0].pk).update(status=DocumentStatus.FAILED)
    Document.objects.filter(pk=docs[1].pk).update(status=DocumentStatus.DONE)

    assert services.documents_retry_failed(document_ids=[d.pk for d in docs]) == 1

    statuses = dict(Document.objects.values_list("pk", "status"))
    assert statuses[docs[0].pk] == DocumentStatus.QUEUED
    assert statuses[docs[1].pk] == DocumentStatus.DONE


def test_cancel_only_touches_unfinished_rows(agent, media_root, published):
    docs = [
        services.document_create_from_upload(
            agent=agent,
            upload=SimpleUploadedFile(f"{i}.txt", f"text {i}".encode()),
            original_name=f"{i}.txt",
        )
        for i in range(2)
    ]
    Document.objects.filter(pk=docs[1].pk).update(status=DocumentStatus.DONE)

    assert services.documents_cancel(document_ids=[d.pk for d in docs]) == 1

    assert Document.objects.get(pk=docs[0].pk).status == DocumentStatus.CANCELLED
    assert Document.objects.get(pk=docs[1].pk).status == DocumentStatus.DONE


def test_bulk_register_records_duplicates_without_enqueueing_them(
    agent, media_root, published, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    sources = [SourceFile(name=f"f{i}.txt", data=f"content {i % 3}".encode()) for i in range(9)]
    batch = uuid.uuid4()

    with django_capture_on_commit_callbacks(execute=True):
        stats = services.documents_register(
            agent=agent, sources=sources, batch_id=batch, batch_size=100
        )

    assert (stats.registered, stats.queued, stats.duplicates) == (9, 3, 6)
    assert len(published) == 3
    assert {q for _, _, q in published} == {"low"}
    duplicates = Document.objects.filter(batch_id=batch, status=DocumentStatus.DUPLICATE)
    assert duplicates.count() == 6
    assert all(d.duplicate_of_id for d in duplicates)

    # The same files again: all duplicates, nothing published.
    with django_capture_on_commit_callbacks(execute=True), django_assert_max_num_queries(12):
        again = services.documents_register(
            agent=agent, sources=sources, batch_id=uuid.uuid4(), batch_size=100
        )
    assert (again.queued, again.duplicates) == (0, 9)
    assert len(published) == 3


def test_bulk_register_costs_a_few_queries_per_batch_not_per_file(
    agent, media_root, published, django_assert_max_num_queries
):
    sources = [SourceFile(name=f"f{i}.txt", data=f"unique {i}".encode()) for i in range(300)]

    with django_assert_max_num_queries(12):
        stats = services.documents_register(
            agent=agent, sources=sources, batch_id=uuid.uuid4(), batch_size=1000
        )

    assert stats.queued == 300


def _zip(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_archive_members_become_documents(
    agent, media_root, published, django_capture_on_commit_callbacks
):
    archive = _zip({"a.txt": b"alpha text", "sub/b.md": b"# Beta\n\ntext", "__MACOSX/._a": b"x"})

    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.documents_create_from_archive(
            agent=agent, archive=archive, archive_name="kb.zip"
        )

    assert (outcome.error, outcome.registered) == ("", 2)
    documents = Document.objects.filter(batch_id=outcome.batch_id)
    assert sorted(d.original_name for d in documents) == ["kb.zip/a.txt", "kb.zip/sub/b.md"]
    assert {d.status for d in documents} == {DocumentStatus.QUEUED}
    assert published == [(d.pk, d.task_id, "high") for d in documents.order_by("pk")]


@pytest.mark.parametrize(
    ("members", "setting", "message"),
    [
        ({"../evil.txt": b"x"}, {}, "outside the archive"),
        ({"/etc/passwd": b"x"}, {}, "outside the archive"),
        ({f"{i}.txt": b"x" for i in range(5)}, {"ARCHIVE_MAX_MEMBERS": 4}, "at most 4"),
        ({"a.txt": b"x" * 100}, {"ARCHIVE_MAX_TOTAL_BYTES": 50}, "unpacks to 100"),
        ({"bomb.txt": b"\0" * (5 * 1024 * 1024)}, {}, "zip bomb"),
    ],
)
def test_unsafe_archives_are_refused_whole(agent, media_root, settings, members, setting, message):
    settings.DOCFLOW = {**settings.DOCFLOW, **setting}

    outcome = services.documents_create_from_archive(
        agent=agent, archive=_zip(members), archive_name="bad.zip"
    )

    assert outcome.registered == 0
    assert message in outcome.error
    assert not Document.objects.exists()


def test_corrupt_archive_is_refused(agent, media_root):
    outcome = services.documents_create_from_archive(
        agent=agent, archive=io.BytesIO(b"PK\x03\x04 not really"), archive_name="bad.zip"
    )

    assert "cannot be read" in outcome.error


def test_agent_resolve_reports_unknown_and_ambiguous_slugs(agent):
    other_org = agent.organization.__class__.objects.create(name="B", slug="b")
    Agent.objects.create(organization=other_org, name="Support", slug="support")

    with pytest.raises(Agent.MultipleObjectsReturned):
        services.agent_resolve(agent_slug="support")
    with pytest.raises(Agent.DoesNotExist):
        services.agent_resolve(agent_slug="nobody")
    assert services.agent_resolve(agent_slug="support", organization_slug="b").organization == (
        other_org
    )


def test_sources_from_paths_read_lazily(tmp_path: Path):
    path = tmp_path / "a.txt"
    path.write_text("hello")
    source = SourceFile(name="a.txt", path=path)

    assert source.read() == b"hello"


def test_bulk_register_refuses_oversized_files_and_stores_nothing_of_them(
    agent, media_root, published, settings, tmp_path
):
    settings.DOCFLOW = {**settings.DOCFLOW, "MAX_DOCUMENT_BYTES": 100}
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    big.write_bytes(b"x" * 101)
    small.write_bytes(b"fits")
    batch = uuid.uuid4()

    stats = services.documents_register(
        agent=agent,
        sources=[SourceFile(name="big.txt", path=big), SourceFile(name="small.txt", path=small)],
        batch_id=batch,
    )

    refused = Document.objects.get(batch_id=batch, original_name="big.txt")
    assert (stats.queued, stats.failed) == (1, 1)
    assert (refused.status, refused.error_code, refused.size_bytes) == ("failed", "too_large", 101)
    assert not refused.file
    assert "101 bytes" in refused.error
    assert [p.stat().st_size for p in media_root.rglob("*") if p.is_file()] == [4]


def test_unreadable_files_are_reported_and_the_rest_registered(
    agent, media_root, published, tmp_path
):
    good = tmp_path / "good.txt"
    good.write_text("readable")

    stats = services.documents_register(
        agent=agent,
        sources=[
            SourceFile(name="gone.txt", path=tmp_path / "gone.txt"),
            SourceFile(name="good.txt", path=good),
        ],
        batch_id=uuid.uuid4(),
    )

    assert stats.queued == 1
    assert stats.failures == [
        {"path": "gone.txt", "error": "Cannot read the file: No such file or directory"}
    ]


def test_archive_members_are_batched_by_bytes_held_in_memory(agent, media_root, published):
    sources = [SourceFile(name=f"m{i}.txt", data=bytes([65 + i]) * 600) for i in range(5)]
    seen: list[int] = []

    services.documents_register(
        agent=agent,
        sources=sources,
        batch_id=uuid.uuid4(),
        batch_size=100,
        batch_bytes=1000,
        on_batch=seen.append,
    )

    assert seen == [2, 2, 1]
