"""Small documents several to a task: grouping at publish time, the batch's outcomes, and the
hand-over to one task each when anything goes wrong (in-process, on PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError

from documents import pipeline, samples, selectors, services
from documents.models import Agent, Chunk, Document, DocumentStatus
from documents.pipeline import run_pipeline
from documents.tasks import document_process_task, documents_process_batch_task

pytestmark = pytest.mark.django_db
publishes = pytest.mark.skipif(
    settings.CELERY_TASK_ALWAYS_EAGER, reason="tasks run inline: nothing is published"
)


def queued(agent: Agent, path: Path, name: str | None = None) -> Document:
    """Queued under a task id, its message not sent (this test never commits)."""
    document = services.document_create_from_upload(
        agent=agent,
        upload=SimpleUploadedFile(name or path.name, path.read_bytes()),
        original_name=name or path.name,
    )
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    return document


def pdfs(folder: Path, count: int) -> list[Path]:
    paths = [folder / f"doc-{index}.pdf" for index in range(count)]
    for index, path in enumerate(paths):
        samples.make_pdf(path, pages=2, seed=index + 1, title=f"Document {index}")
    return paths


@pytest.fixture
def sent():
    """The messages documents_publish sends: ("batch", [(id, task id), …]) or ("single", …)."""
    messages: list[tuple[str, object]] = []
    batch = mock.patch.object(
        documents_process_batch_task,
        "apply_async",
        side_effect=lambda args, **kw: messages.append(("batch", [tuple(p) for p in args[0]])),
    )
    single = mock.patch.object(
        document_process_task,
        "apply_async",
        side_effect=lambda args, task_id, **kw: messages.append(("single", (args[0], task_id))),
    )
    with batch, single:
        yield messages


def pair(document: Document) -> tuple[int, str]:
    return (document.pk, document.task_id)


@publishes
def test_small_first_tries_share_tasks_and_the_rest_go_alone(
    agent, media_root, tmp_path, settings, sent
):
    settings.DOCFLOW = {**settings.DOCFLOW, "PROCESS_BATCH_SIZE": 2}
    small = [queued(agent, path) for path in pdfs(tmp_path, 5)]
    tried_before, big = small[3], small[4]
    Document.objects.filter(pk=tried_before.pk).update(attempts=1)
    Document.objects.filter(pk=big.pk).update(
        size_bytes=settings.DOCFLOW["PROCESS_BATCH_MAX_BYTES"] + 1
    )
    page = Document.objects.create(agent=agent, source_url="https://example.com/a")
    page.refresh_from_db()
    documents = [*small, page]

    services.documents_publish([pair(d) for d in documents], queue="low")

    assert sent == [
        ("batch", [pair(small[0]), pair(small[1])]),
        ("single", pair(tried_before)),
        ("single", pair(big)),
        ("single", pair(page)),
        # The third small one would be alone in its batch: it goes as a task of its own.
        ("single", pair(small[2])),
    ]


@pytest.mark.parametrize(
    "setting",
    [{"PROCESS_BATCH_SIZE": 1}, {"EMBEDDING_PROVIDER": "openai"}, {"OPENAI_SUMMARY_MODEL": "m"}],
)
@publishes
def test_no_batches_when_turned_off_or_with_a_model_provider(
    agent, media_root, tmp_path, settings, sent, setting
):
    settings.DOCFLOW = {**settings.DOCFLOW, **setting}
    documents = [queued(agent, path) for path in pdfs(tmp_path, 3)]

    services.documents_publish([pair(d) for d in documents], queue="high")

    assert sent == [("single", pair(d)) for d in documents]


def test_a_batch_records_each_outcome_and_a_second_run_changes_nothing(
    agent, media_root, tmp_path, sent
):
    good, other = pdfs(tmp_path, 2)
    corrupt = tmp_path / "broken.pdf"
    samples.make_corrupt_pdf(corrupt)
    first = queued(agent, good)
    copy = queued(agent, good, name="copy.pdf")
    broken = queued(agent, corrupt)
    cancelled = queued(agent, other)
    services.documents_cancel(document_ids=[cancelled.pk])
    pairs = [pair(d) for d in (first, copy, broken, cancelled)]

    outcome = services.documents_process_batch(pairs=pairs, queue="high")

    assert [(o.document_id, o.status) for o in outcome.documents] == [
        (first.pk, "done"),
        (copy.pk, "duplicate"),
        (broken.pk, "failed"),
    ]
    assert outcome.handed_over == []
    rows = {d.pk: d for d in Document.objects.filter(pk__in=[p for p, _ in pairs])}
    expected = len(run_pipeline(good).chunks)
    assert (rows[first.pk].status, rows[first.pk].attempts) == (DocumentStatus.DONE, 1)
    assert (rows[first.pk].chunk_count, rows[first.pk].kind) == (expected, "pdf")
    assert rows[first.pk].processing_seconds is not None
    assert sorted(Chunk.objects.filter(document=first).values_list("ordinal", flat=True)) == list(
        range(expected)
    )
    assert (rows[copy.pk].status, rows[copy.pk].duplicate_of_id) == ("duplicate", first.pk)
    assert (rows[broken.pk].status, rows[broken.pk].error_code) == ("failed", "corrupt")
    assert rows[broken.pk].error
    assert rows[cancelled.pk].status == DocumentStatus.CANCELLED
    assert sent == []

    again = services.documents_process_batch(pairs=pairs, queue="high")

    assert (again.documents, again.handed_over) == ([], [])
    assert Chunk.objects.filter(document=first).count() == expected
    assert Document.objects.get(pk=first.pk).attempts == 1


def test_a_reprocessed_document_gets_its_chunks_replaced(agent, media_root, tmp_path, sent):
    documents = [queued(agent, path) for path in pdfs(tmp_path, 2)]
    services.documents_process_batch(pairs=[pair(d) for d in documents], queue="high")
    before = {
        d.pk: d.chunk_count for d in Document.objects.filter(pk__in=[d.pk for d in documents])
    }

    services.documents_reprocess(document_ids=[d.pk for d in documents])
    again = list(Document.objects.filter(pk__in=[d.pk for d in documents]).order_by("pk"))
    services.documents_process_batch(pairs=[pair(d) for d in again], queue="high")

    for document in again:
        ordinals = list(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
        assert sorted(ordinals) == list(range(before[document.pk]))


def handed_over(documents: list[Document]) -> list[Document]:
    """The rows after a hand-over: queued under a new task id each."""
    rows = list(Document.objects.filter(pk__in=[d.pk for d in documents]).order_by("pk"))
    for before, after in zip(documents, rows, strict=True):
        assert after.status == DocumentStatus.QUEUED
        assert after.task_id != before.task_id
    return rows


def test_a_transient_error_hands_the_rest_over_one_task_each(agent, media_root, tmp_path, sent):
    documents = [queued(agent, path) for path in pdfs(tmp_path, 3)]
    real = pipeline.run_pipeline
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise pipeline.TransientPipelineError("provider unavailable")
        return real(*args, **kwargs)

    with mock.patch.object(pipeline, "run_pipeline", side_effect=second_fails):
        outcome = services.documents_process_batch(pairs=[pair(d) for d in documents], queue="high")

    done = Document.objects.get(pk=documents[0].pk)
    stopped, never_started = handed_over(documents[1:])
    assert [(o.document_id, o.status) for o in outcome.documents] == [(done.pk, "done")]
    assert outcome.handed_over == [stopped.pk, never_started.pk]
    assert (done.status, done.attempts) == (DocumentStatus.DONE, 1)
    # Their own tasks count their own attempts.
    assert (stopped.attempts, never_started.attempts) == (0, 0)
    assert sent == [("single", pair(stopped)), ("single", pair(never_started))]
    assert Chunk.objects.filter(document__in=[stopped, never_started]).count() == 0
    # The old message can no longer touch them; the new one processes each.
    old = services.documents_process_batch(pairs=[pair(d) for d in documents], queue="high")
    assert (old.documents, old.handed_over) == ([], [])
    outcome = services.document_process(document_id=stopped.pk, task_id=stopped.task_id)
    assert (outcome.status, Document.objects.get(pk=stopped.pk).attempts) == ("done", 1)


def test_a_failure_while_storing_hands_everything_over(agent, media_root, tmp_path, sent):
    documents = [queued(agent, path) for path in pdfs(tmp_path, 2)]

    with mock.patch.object(services, "_store_batch", side_effect=SoftTimeLimitExceeded()):
        outcome = services.documents_process_batch(pairs=[pair(d) for d in documents], queue="high")

    rows = handed_over(documents)
    assert (outcome.documents, outcome.handed_over) == ([], [d.pk for d in documents])
    assert [d.attempts for d in rows] == [0, 0]
    assert sent == [("single", pair(d)) for d in rows]
    # Chunks the batch wrote before it failed are not searched (the rows are not done) and are
    # replaced, not added to, by each document's own task.
    word = Chunk.objects.filter(document__in=rows).first().keywords[0]
    assert selectors.chunk_search(query=word) == []
    for row in rows:
        services.document_process(document_id=row.pk, task_id=row.task_id)
    assert [Chunk.objects.filter(document=row).count() for row in rows] == [
        Document.objects.get(pk=row.pk).chunk_count for row in rows
    ]
    assert selectors.chunk_search(query=word)


@pytest.mark.parametrize(
    ("mishap", "first_status"), [("corrupt", "failed"), ("cancelled", "cancelled")]
)
def test_a_copy_of_a_batch_mate_that_did_not_finish_is_decided_on_its_own(
    agent, media_root, tmp_path, sent, mishap, first_status
):
    (path,) = pdfs(tmp_path, 1)
    first, copy = queued(agent, path), queued(agent, path, name="copy.pdf")
    real = pipeline.run_pipeline

    def first_goes_wrong(*args, **kwargs):
        if kwargs["name"] == first.original_name and mishap == "corrupt":
            raise pipeline.CorruptDocumentError("The file is damaged.")
        result = real(*args, **kwargs)
        if mishap == "cancelled":  # while it ran: its outcome will not be stored
            services.documents_cancel(document_ids=[first.pk])
        return result

    with mock.patch.object(pipeline, "run_pipeline", side_effect=first_goes_wrong):
        outcome = services.documents_process_batch(pairs=[pair(first), pair(copy)], queue="high")

    assert [(o.document_id, o.status) for o in outcome.documents] == [(first.pk, first_status)]
    assert Document.objects.get(pk=first.pk).status == first_status
    (copy,) = handed_over([copy])
    assert sent == [("single", pair(copy))]
    # An earlier copy that failed or was cancelled does not make it a duplicate.
    outcome = services.document_process(document_id=copy.pk, task_id=copy.task_id)
    assert outcome.status == "done"
    assert Document.objects.get(pk=copy.pk).duplicate_of_id is None


def test_the_batch_task_retries_a_database_error_at_claim_by_handing_over(
    agent, media_root, tmp_path, sent
):
    documents = [queued(agent, path) for path in pdfs(tmp_path, 2)]
    claim = mock.patch.object(
        services, "_claim_batch", side_effect=OperationalError("server closed the connection")
    )

    with claim as claimed:
        documents_process_batch_task.apply(args=[[pair(d) for d in documents], "high"])

    assert claimed.call_count == 1  # the retry does not claim again: it hands them over
    rows = handed_over(documents)
    assert [d.attempts for d in rows] == [0, 0]
    assert sent == [("single", pair(d)) for d in rows]


def test_a_redelivered_batch_claims_nothing_and_hands_everything_over(
    agent, media_root, tmp_path, sent
):
    documents = [queued(agent, path) for path in pdfs(tmp_path, 2)]
    # As the batch left them when its worker was killed: claimed, nothing stored.
    Document.objects.filter(pk=documents[0].pk).update(status=DocumentStatus.PROCESSING, attempts=1)

    outcome = services.documents_process_batch(
        pairs=[pair(d) for d in documents], queue="low", redelivered=True
    )

    rows = handed_over(documents)
    assert (outcome.documents, outcome.handed_over) == ([], [d.pk for d in documents])
    # Either may have killed the worker: the attempt counted by the batch stays.
    assert [d.attempts for d in rows] == [1, 0]
    assert sent == [("single", pair(d)) for d in rows]


def test_a_redelivered_batch_leaves_documents_finished_meanwhile_alone(
    agent, media_root, tmp_path, sent
):
    finished, waiting = (queued(agent, path) for path in pdfs(tmp_path, 2))
    services.document_process(document_id=finished.pk, task_id=finished.task_id)

    outcome = services.documents_process_batch(
        pairs=[pair(finished), pair(waiting)], queue="high", redelivered=True
    )

    (waiting,) = handed_over([waiting])
    assert outcome.handed_over == [waiting.pk]
    assert sent == [("single", pair(waiting))]
    assert Document.objects.get(pk=finished.pk).status == DocumentStatus.DONE


def test_a_hand_over_the_broker_refuses_is_recorded_on_the_rows(agent, media_root, tmp_path):
    documents = [queued(agent, path) for path in pdfs(tmp_path, 2)]
    refused = mock.patch.object(
        document_process_task, "apply_async", side_effect=ConnectionError("broker down")
    )

    with refused:
        services.documents_process_batch(
            pairs=[pair(d) for d in documents], queue="high", redelivered=True
        )

    rows = list(Document.objects.filter(pk__in=[d.pk for d in documents]))
    assert {(d.status, d.error_code) for d in rows} == {("failed", "transient")}
    assert all("broker down" in d.error for d in rows)


def test_a_hand_over_cut_short_by_the_broker_fails_only_the_unsent(agent, media_root, tmp_path):
    documents = [queued(agent, path) for path in pdfs(tmp_path, 2)]
    sent_first = mock.patch.object(
        document_process_task,
        "apply_async",
        side_effect=[None, ConnectionError("broker down")],
    )

    with sent_first:
        services.documents_process_batch(
            pairs=[pair(d) for d in documents], queue="high", redelivered=True
        )

    first, second = Document.objects.filter(pk__in=[d.pk for d in documents]).order_by("pk")
    # The first one's message is in the broker: its task will claim it.
    assert (first.status, first.error) == (DocumentStatus.QUEUED, "")
    assert (second.status, second.error_code) == (DocumentStatus.FAILED, "transient")


@pytest.mark.parametrize("kind", ["pdf", "txt"])
def test_a_batch_stores_the_same_outcome_fields_as_a_single_task(
    agent, media_root, tmp_path, sent, kind
):
    # A text note has no author, dates or page count: NULLs in the batch's typed arrays.
    path = pdfs(tmp_path, 1)[0] if kind == "pdf" else samples.make_text(tmp_path / "note.txt")
    other_agent = Agent.objects.create(organization=agent.organization, name="Other", slug="other")
    alone, batched = queued(agent, path), queued(other_agent, path)
    services.document_process(document_id=alone.pk, task_id=alone.task_id)

    services.documents_process_batch(pairs=[pair(batched)], queue="high")

    outcome_fields = [
        "status", "stage", "progress", "error", "error_code", "kind", "page_count", "title",
        "author", "language", "authored_at", "modified_at", "keywords", "summary",
        "text_length", "chunk_count", "embedding_model",
    ]  # fmt: skip
    rows = Document.objects.filter(pk__in=[alone.pk, batched.pk]).order_by("pk")
    alone_row, batched_row = rows.values(*outcome_fields)
    assert batched_row == alone_row
    assert batched_row["keywords"]
    assert batched_row["status"] == DocumentStatus.DONE
    chunk_fields = ("ordinal", "text", "keywords", "embedding", "page_start", "page_end")
    assert list(Chunk.objects.filter(document=batched).values_list(*chunk_fields)) == list(
        Chunk.objects.filter(document=alone).values_list(*chunk_fields)
    )


def test_outcomes_are_written_only_on_rows_still_processing_under_their_task_id(agent):
    from documents.bulk import update_processing_documents

    mine, other_task, not_processing = (
        Document.objects.create(
            agent=agent, original_name=f"{name}.txt", status=status, task_id="task-1"
        )
        for name, status in [
            ("mine", DocumentStatus.PROCESSING),
            ("other", DocumentStatus.PROCESSING),
            ("queued", DocumentStatus.QUEUED),
        ]
    )
    Document.objects.filter(pk=other_task.pk).update(task_id="task-2")
    failed = {"status": DocumentStatus.FAILED, "error": "Broken.", "error_code": "corrupt"}

    written = update_processing_documents(
        [
            (
                mine.pk,
                "task-1",
                {"status": DocumentStatus.DONE, "title": "Mine", "keywords": ["a"]},
            ),
            (other_task.pk, "task-1", failed),
            (not_processing.pk, "task-1", failed),
        ],
        processing=DocumentStatus.PROCESSING,
    )

    assert written == {mine.pk}
    rows = {d.pk: d for d in Document.objects.all()}
    assert (rows[mine.pk].status, rows[mine.pk].title, rows[mine.pk].keywords) == (
        "done", "Mine", ["a"]
    )  # fmt: skip
    assert (rows[other_task.pk].status, rows[other_task.pk].error) == ("processing", "")
    assert (rows[not_processing.pk].status, rows[not_processing.pk].error) == ("queued", "")


@pytest.mark.django_db(transaction=True)
def test_a_chunk_write_the_database_refuses_stores_nothing_and_hands_everything_over(
    agent, media_root, tmp_path, sent, monkeypatch
):
    from django.db import connection

    from documents import bulk

    documents = [queued(agent, path) for path in pdfs(tmp_path, 3)]
    sent.clear()  # their first messages, sent on commit
    # Fails in PostgreSQL, while the worker already processes the next document.
    monkeypatch.setattr(
        bulk,
        "_INSERT_CHUNKS_BINARY",
        bulk._INSERT_CHUNKS_BINARY.replace("length(c.text)", "length(c.text) / 0"),
    )

    connection.ensure_connection()
    failed_on = connection.connection

    outcome = services.documents_process_batch(pairs=[pair(d) for d in documents], queue="high")

    rows = handed_over(documents)
    assert (outcome.documents, outcome.handed_over) == ([], [d.pk for d in documents])
    assert sent == [("single", pair(d)) for d in rows]
    assert [d.attempts for d in rows] == [0, 0, 0]
    assert Chunk.objects.count() == 0
    # That connection was closed (its state after a failed pipeline is unsure); the hand-over
    # opened another.
    assert connection.connection is not failed_on
    assert connection.connection._pipeline is None
    assert Document.objects.filter(pk__in=[d.pk for d in rows]).update(stage="x") == 3


@pytest.mark.parametrize("leaving", [SystemExit, KeyboardInterrupt])
def test_a_batch_left_midway_leaves_the_connection_out_of_pipeline_mode(
    agent, media_root, tmp_path, sent, leaving
):
    from django.db import connection

    first, second = (queued(agent, path) for path in pdfs(tmp_path, 2))
    real = pipeline.run_pipeline

    def leave_on_the_second(*args, **kwargs):
        if kwargs["name"] == second.original_name:  # the first one's chunks are in flight
            raise leaving
        return real(*args, **kwargs)

    with (
        mock.patch.object(pipeline, "run_pipeline", side_effect=leave_on_the_second),
        pytest.raises(leaving),
    ):
        services.documents_process_batch(pairs=[pair(first), pair(second)], queue="high")

    assert connection.connection._pipeline is None
    # The ORM works as before: an UPDATE reports the rows it changed.
    assert Document.objects.filter(pk__in=[first.pk, second.pk]).update(stage="x") == 2


def test_an_over_long_outcome_value_is_refused_not_cut(agent):
    from django.db import DataError

    from documents.bulk import update_processing_documents

    document = Document.objects.create(
        agent=agent, original_name="long.txt", status=DocumentStatus.PROCESSING, task_id="t"
    )

    with pytest.raises(DataError):
        update_processing_documents(
            [(document.pk, "t", {"title": "x" * 501})], processing=DocumentStatus.PROCESSING
        )
