"""Dead letters: recorded once with full arguments, replayed through their owner, capped."""

from __future__ import annotations

import pytest
from django.urls import reverse

from documents.models import Document, DocumentStatus
from operations.dead_letters import dead_letter_record, dead_letters_replay
from operations.models import DeadLetter, DeadLetterStatus

pytestmark = pytest.mark.django_db


def record(task_id: str, name: str, args=(), kwargs=None) -> DeadLetter:
    return dead_letter_record(
        task_id=task_id,
        task_name=name,
        args=list(args),
        kwargs=kwargs or {},
        exception=RuntimeError("boom"),
    )


@pytest.fixture
def failed_document(agent, django_capture_on_commit_callbacks) -> Document:
    with django_capture_on_commit_callbacks():
        document = Document.objects.create(agent=agent, source_url="https://example.com/x")
    Document.objects.filter(pk=document.pk).update(status=DocumentStatus.FAILED, error="boom")
    return document


def test_a_failure_reported_twice_is_one_letter_with_its_full_arguments() -> None:
    ids = list(range(1000))  # longer than django-celery-results' 1,024-character repr

    record("t1", "profiles.tasks.profiles_enrich_batch_task", args=[ids])
    letter = record("t1", "profiles.tasks.profiles_enrich_batch_task", args=[ids])

    assert DeadLetter.objects.count() == 1
    assert letter.args == [ids]
    assert letter.exception == "RuntimeError: boom"
    assert letter.status == DeadLetterStatus.DEAD


def test_a_dead_document_task_is_replayed_through_the_documents_service(
    failed_document, django_capture_on_commit_callbacks
) -> None:
    letter = record("t2", "documents.tasks.document_process_task", args=[failed_document.pk])
    old_task_id = Document.objects.get(pk=failed_document.pk).task_id

    with django_capture_on_commit_callbacks() as callbacks:
        first = dead_letters_replay(letter_ids=[letter.pk])
    second = dead_letters_replay(letter_ids=[letter.pk])

    document = Document.objects.get(pk=failed_document.pk)
    assert (document.status, document.error) == (DocumentStatus.QUEUED, "")
    assert document.task_id != old_task_id
    assert len(callbacks) == 1
    assert (first.replayed, second.replayed) == (1, 0)  # a replayed letter is not dead
    letter.refresh_from_db()
    assert (letter.status, letter.replays) == (DeadLetterStatus.REPLAYED, 1)
    assert letter.replay_note == f"document {failed_document.pk}: queued again"


def test_a_dead_batch_requeues_only_the_documents_still_under_its_task_ids(
    agent, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks():
        stuck, moved_on, finished = (
            Document.objects.create(agent=agent, source_url=f"https://example.com/{n}")
            for n in range(3)
        )
    rows = {d.pk: d for d in Document.objects.filter(pk__in=[stuck.pk, moved_on.pk, finished.pk])}
    pairs = [[pk, rows[pk].task_id] for pk in (stuck.pk, moved_on.pk, finished.pk)]
    Document.objects.filter(pk=stuck.pk).update(status=DocumentStatus.PROCESSING, attempts=1)
    Document.objects.filter(pk=moved_on.pk).update(task_id="handed-over")  # its own task has it
    Document.objects.filter(pk=finished.pk).update(status=DocumentStatus.DONE)
    letter = record("t4", "documents.tasks.documents_process_batch_task", args=[pairs, "high"])

    with django_capture_on_commit_callbacks() as callbacks:
        outcome = dead_letters_replay(letter_ids=[letter.pk])

    after = {d.pk: d for d in Document.objects.filter(pk__in=rows)}
    assert outcome.replayed == 1
    assert len(callbacks) == 1
    assert (after[stuck.pk].status, after[stuck.pk].attempts) == (DocumentStatus.QUEUED, 1)
    assert after[stuck.pk].task_id != rows[stuck.pk].task_id
    assert after[moved_on.pk].task_id == "handed-over"
    assert after[finished.pk].status == DocumentStatus.DONE
    letter.refresh_from_db()
    assert letter.replay_note == "1 of 3 document(s) of the batch queued again"


def test_other_tasks_are_sent_again_after_commit_with_their_arguments(
    django_capture_on_commit_callbacks,
) -> None:
    from unittest import mock

    letter = record("t3", "analytics.tasks.analytics_fill_task", kwargs={"granularity": "daily"})

    with (
        mock.patch("config.celery.app.send_task") as send,
        django_capture_on_commit_callbacks(execute=True),  # runs the callbacks while patched
    ):
        outcome = dead_letters_replay(letter_ids=[letter.pk])

    assert outcome.replayed == 1
    send.assert_called_once_with(
        "analytics.tasks.analytics_fill_task", args=[], kwargs={"granularity": "daily"}
    )


def test_the_replay_cap_follows_the_work_across_new_letters(settings, failed_document) -> None:
    settings.DOCFLOW = {**settings.DOCFLOW, "DEAD_LETTER_MAX_REPLAYS": 1}
    first = record("t4", "documents.tasks.document_process_task", args=[failed_document.pk])
    dead_letters_replay(letter_ids=[first.pk])
    Document.objects.filter(pk=failed_document.pk).update(status=DocumentStatus.FAILED)

    # The replay failed for good too: its new letter remembers the earlier replay.
    second = record("t5", "documents.tasks.document_process_task", args=[failed_document.pk])
    outcome = dead_letters_replay(letter_ids=[second.pk])

    assert second.replays == 1
    assert (outcome.replayed, outcome.over_cap) == (0, [second.pk])
    assert Document.objects.get(pk=failed_document.pk).status == DocumentStatus.FAILED


def test_a_replay_that_cannot_run_is_reported_on_the_letter() -> None:
    letter = record("t6", "documents.tasks.document_process_task", args=["not-an-id"])

    outcome = dead_letters_replay(letter_ids=[letter.pk])

    letter.refresh_from_db()
    assert outcome.replayed == 0
    assert "ValueError" in outcome.errors[0]
    assert (letter.status, letter.replays) == (DeadLetterStatus.DEAD, 0)
    assert letter.replay_note.startswith("Replay failed: ValueError")


def test_admin_actions_replay_and_report_the_cap(admin_client, settings, failed_document):
    settings.DOCFLOW = {**settings.DOCFLOW, "DEAD_LETTER_MAX_REPLAYS": 0}
    letter = record("t7", "documents.tasks.document_process_task", args=[failed_document.pk])
    url = reverse("admin:operations_deadletter_changelist")

    response = admin_client.post(
        url, {"action": "replay", "_selected_action": [letter.pk]}, follow=True
    )
    discarded = admin_client.post(
        url, {"action": "discard", "_selected_action": [letter.pk]}, follow=True
    )

    assert "Replayed 0 task(s)." in response.content.decode()
    assert "already replayed 0 times" in response.content.decode()
    assert "Discarded 1 dead task(s)." in discarded.content.decode()
    assert DeadLetter.objects.get().status == DeadLetterStatus.DISCARDED
