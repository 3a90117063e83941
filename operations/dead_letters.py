"""Dead letters: recording tasks that failed for good, and replaying them.

A replay goes through the service that owns the work wherever the task claims its row by task
id (documents, reports, profile enrichment): re-sending the old message would find the row
failed and do nothing. Other tasks are re-sent with their stored arguments. Each letter may
be replayed DOCFLOW_DEAD_LETTER_MAX_REPLAYS times; a replay that fails again records a new
letter under its new task id.
"""

from __future__ import annotations

import json
import logging
import traceback as tb
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from operations.models import DeadLetter, DeadLetterStatus

logger = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def dead_letter_record(
    *,
    task_id: str,
    task_name: str,
    args: Iterable[Any] | None,
    kwargs: dict[str, Any] | None,
    exception: BaseException,
    traceback: Any = None,
    worker: str = "",
) -> DeadLetter:
    """Idempotent per task id: a failure reported twice updates one letter. A replay that
    failed again inherits the replay count of the letter it came from, so the cap holds."""
    stored_args, stored_kwargs = _jsonable(list(args or [])), _jsonable(dict(kwargs or {}))
    previous = (
        DeadLetter.objects.filter(
            task_name=task_name,
            args=stored_args,
            kwargs=stored_kwargs,
            status=DeadLetterStatus.REPLAYED,
        )
        .exclude(task_id=task_id)
        .order_by("-replayed_at")
        .first()
    )
    failure = {
        "task_name": task_name,
        "args": stored_args,
        "kwargs": stored_kwargs,
        "exception": f"{type(exception).__name__}: {exception}"[:10_000],
        "traceback": "".join(tb.format_tb(traceback))[-20_000:] if traceback else "",
        "worker": worker,
        "failed_at": timezone.now(),
        "status": DeadLetterStatus.DEAD,
    }
    letter, _ = DeadLetter.objects.update_or_create(
        task_id=task_id,
        defaults=failure,
        create_defaults={**failure, "replays": previous.replays if previous else 0},
    )
    return letter


def _replay_document(args: list[Any], kwargs: dict[str, Any]) -> str:
    from documents.services import documents_retry_failed

    document_id = kwargs.get("document_id", args[0] if args else None)
    queued = documents_retry_failed(document_ids=[int(document_id)])
    return f"document {document_id}: {'queued again' if queued else 'not failed any more'}"


def _replay_document_batch(args: list[Any], kwargs: dict[str, Any]) -> str:
    """A batch that failed as a whole left its documents queued or processing under its task
    ids: queue those again, a task each, their attempts kept. Documents that moved on since
    (handed over, re-queued, cancelled, finished) are left alone."""
    from django.db.models import Q

    from documents.models import DocumentStatus
    from documents.services import documents_enqueue

    pairs = kwargs.get("pairs", args[0] if args else [])
    queued = documents_enqueue(
        document_ids=[int(pk) for pk, _ in pairs],
        statuses=(DocumentStatus.QUEUED, DocumentStatus.PROCESSING),
        keep_attempts=True,
        only_if=Q(task_id__in=[str(task_id) for _, task_id in pairs]),
    )
    return f"{queued} of {len(pairs)} document(s) of the batch queued again"


def _replay_report(args: list[Any], kwargs: dict[str, Any]) -> str:
    from analytics.models import UsageReport
    from analytics.services import usage_reports_request

    report_id = kwargs.get("report_id", args[0] if args else None)
    report = UsageReport.objects.filter(pk=report_id).first()
    if report is None:
        return f"usage report {report_id} no longer exists"
    usage_reports_request(
        organization_ids=[report.organization_id], month=report.month, formats=[report.format]
    )
    return f"usage report {report_id}: queued again"


def _replay_profiles(args: list[Any], kwargs: dict[str, Any]) -> str:
    from profiles.services import profiles_request_enrichment

    ids = kwargs.get("profile_ids") or kwargs.get("profile_id") or (args[0] if args else [])
    ids = ids if isinstance(ids, list) else [ids]
    queued = profiles_request_enrichment(profile_ids=[int(i) for i in ids], batch_size=200)
    return f"{queued} profile(s) queued for enrichment again"


REPLAYERS: dict[str, Callable[[list[Any], dict[str, Any]], str]] = {
    "documents.tasks.document_process_task": _replay_document,
    "documents.tasks.documents_process_batch_task": _replay_document_batch,
    "analytics.tasks.usage_report_task": _replay_report,
    "profiles.tasks.profile_enrich_task": _replay_profiles,
    "profiles.tasks.profiles_enrich_batch_task": _replay_profiles,
}


def _resend(name: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    from config.celery import app

    app.send_task(name, args=args, kwargs=kwargs)


@dataclass
class ReplayOutcome:
    replayed: int = 0
    over_cap: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def dead_letters_replay(*, letter_ids: Iterable[int]) -> ReplayOutcome:
    """Replay dead letters (not those already replayed or discarded, nor past the cap)."""
    cap = settings.DOCFLOW["DEAD_LETTER_MAX_REPLAYS"]
    outcome = ReplayOutcome()
    for letter_id in letter_ids:
        with transaction.atomic():
            letter = (
                DeadLetter.objects.select_for_update()
                .filter(pk=letter_id, status=DeadLetterStatus.DEAD)
                .first()
            )
            if letter is None:
                continue
            if letter.replays >= cap:
                outcome.over_cap.append(letter.pk)
                continue
            replayer = REPLAYERS.get(letter.task_name)
            try:
                if replayer is not None:
                    note = replayer(list(letter.args), dict(letter.kwargs))
                else:
                    transaction.on_commit(
                        partial(_resend, letter.task_name, list(letter.args), dict(letter.kwargs))
                    )
                    note = "sent again with its stored arguments"
            except Exception as exc:  # a bad stored argument: say so on the letter
                logger.exception("dead letter %s could not be replayed", letter.pk)
                outcome.errors.append(
                    f"{letter.task_name} {letter.task_id}: {type(exc).__name__}: {exc}"
                )
                DeadLetter.objects.filter(pk=letter.pk).update(
                    replay_note=f"Replay failed: {type(exc).__name__}: {exc}"
                )
                continue
            DeadLetter.objects.filter(pk=letter.pk).update(
                status=DeadLetterStatus.REPLAYED,
                replays=F("replays") + 1,
                replayed_at=timezone.now(),
                replay_note=note,
            )
            outcome.replayed += 1
    return outcome


def dead_letters_discard(*, letter_ids: Iterable[int]) -> int:
    return DeadLetter.objects.filter(pk__in=list(letter_ids), status=DeadLetterStatus.DEAD).update(
        status=DeadLetterStatus.DISCARDED
    )
