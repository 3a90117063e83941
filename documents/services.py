"""Writes for the documents app: registering, enqueueing, processing and cancelling documents.

Admin actions, signals, commands and tasks are thin callers of these functions. Every state
change is a conditional UPDATE on the Document row, so that concurrent or repeated deliveries of
the same message can never process a document twice at once (DESIGN.md, invariants 1-4).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import CharField, Count, F, Q, Value
from django.db.models.functions import Cast, Concat, Now
from django.utils import timezone

from documents import pipeline
from documents.archives import (
    ArchiveError,
    ArchiveLimits,
    SourceFile,
    SourceTooLarge,
    iter_archive,
)
from documents.bulk import (
    ChunkWriter,
    insert_chunks,
    insert_documents,
    store_content,
    update_processing_documents,
)
from documents.models import (
    Agent,
    Chunk,
    Document,
    DocumentStatus,
    Organization,
)
from documents.pipeline import remote
from documents.selectors import SEARCH_CONFIG
from operations import ratelimit

logger = logging.getLogger(__name__)

# Below this many documents a caller publishes directly; above, workers fan the messages out.
DIRECT_PUBLISH_LIMIT = 50
UNFINISHED = (DocumentStatus.PENDING, DocumentStatus.QUEUED, DocumentStatus.PROCESSING)
# An earlier copy in one of these states does not make a new upload a duplicate.
NOT_ORIGINALS = (DocumentStatus.FAILED, DocumentStatus.CANCELLED, DocumentStatus.DUPLICATE)


def docflow_setting(name: str) -> Any:
    return settings.DOCFLOW[name]


class DocumentCancelled(Exception):
    """The row stopped being ours (cancelled or re-enqueued): stop quietly."""


class ChunksNotStored(Exception):
    """Writing a batch's chunks failed part way: its documents go to a task each."""


# --- Organizations and agents ----------------------------------------------------------------


def agent_resolve(*, agent_slug: str, organization_slug: str | None = None) -> Agent:
    """Find an agent by slug, scoped by organization when the slug alone is ambiguous."""
    agents = Agent.objects.select_related("organization").filter(slug=agent_slug)
    if organization_slug:
        agents = agents.filter(organization__slug=organization_slug)
    found = list(agents[:2])
    if not found:
        scope = f" in organization {organization_slug!r}" if organization_slug else ""
        raise Agent.DoesNotExist(f"No agent with slug {agent_slug!r}{scope}.")
    if len(found) > 1:
        raise Agent.MultipleObjectsReturned(
            f"Several organizations have an agent {agent_slug!r}: pass --organization."
        )
    return found[0]


def agent_get_or_create(*, organization_slug: str, agent_slug: str) -> Agent:
    organization, _ = Organization.objects.get_or_create(
        slug=organization_slug, defaults={"name": organization_slug.replace("-", " ").title()}
    )
    agent, _ = Agent.objects.get_or_create(
        organization=organization,
        slug=agent_slug,
        defaults={"name": agent_slug.replace("-", " ").title()},
    )
    return agent


# --- Storing content ---------------------------------------------------------------------------


_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


def _suffix(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    return suffix if _SUFFIX.fullmatch(suffix) else ""


def storage_name_for(sha256: str, original_name: str) -> str:
    """Content-addressed: the same bytes are stored once, and storing again is a no-op.

    One level of 256 folders: 500,000 files make ~2,000 per folder, and registering does not
    pay for creating tens of thousands of folders.
    """
    return f"documents/{sha256[:2]}/{sha256}{_suffix(original_name)}"


def _store_upload(upload: IO[bytes] | File, original_name: str) -> tuple[str, str, int]:
    """Hash a (possibly large, disk-backed) upload in blocks, then store it once."""
    digest = hashlib.sha256()
    size = 0
    wrapped = upload if isinstance(upload, File) else File(upload)
    for block in wrapped.chunks():
        digest.update(block)
        size += len(block)
    sha256 = digest.hexdigest()
    wrapped.seek(0)
    name = storage_name_for(sha256, original_name)
    return store_content(wrapped.chunks(), name, shown_as=original_name), sha256, size


def _too_large_message(size: int) -> str:
    limit = docflow_setting("MAX_DOCUMENT_BYTES")
    return (
        f"The file is {size:,} bytes; the largest accepted is {limit:,} bytes. "
        "Split it into smaller files."
    )


# --- Registering documents ---------------------------------------------------------------------


def document_create_from_upload(
    *, agent: Agent, upload: IO[bytes] | File, original_name: str, created_by: Any = None
) -> Document:
    """Store an uploaded file and create its pending row; the post_save signal enqueues it.

    A file over the size limit is recorded as failed (the person sees why) and not stored.
    """
    size = getattr(upload, "size", None)
    if size is not None and size > docflow_setting("MAX_DOCUMENT_BYTES"):
        return Document.objects.create(
            agent=agent,
            original_name=original_name,
            size_bytes=size,
            status=DocumentStatus.FAILED,
            error=_too_large_message(size),
            error_code="too_large",
            finished_at=timezone.now(),
            created_by=created_by,
        )
    name, sha256, size = _store_upload(upload, original_name)
    return Document.objects.create(
        agent=agent,
        file=name,
        original_name=original_name,
        size_bytes=size,
        sha256=sha256,
        created_by=created_by,
    )


def document_create_from_url(*, agent: Agent, url: str, created_by: Any = None) -> Document:
    """A pending row for a web page; the worker fetches it (never the web process)."""
    return Document.objects.create(
        agent=agent, source_url=url, original_name=url[:500], created_by=created_by
    )


@dataclass
class ArchiveOutcome:
    registered: int = 0
    batch_id: uuid.UUID | None = None
    error: str = ""


def archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_members=docflow_setting("ARCHIVE_MAX_MEMBERS"),
        max_total_bytes=docflow_setting("ARCHIVE_MAX_TOTAL_BYTES"),
        max_member_bytes=docflow_setting("MAX_DOCUMENT_BYTES"),
        max_ratio=docflow_setting("ARCHIVE_MAX_RATIO"),
    )


def documents_create_from_archive(
    *, agent: Agent, archive: IO[bytes], archive_name: str, created_by: Any = None
) -> ArchiveOutcome:
    """Register every file of a checked zip, in bounded batches, queued on `high`.

    The whole archive is checked (paths, counts, sizes, ratios) before anything is stored, so a
    refused archive leaves nothing behind.
    """
    batch_id = uuid.uuid4()
    try:
        stats = documents_register(
            agent=agent,
            sources=iter_archive(archive, archive_limits(), prefix=f"{archive_name}/"),
            batch_id=batch_id,
            queue="high",
            created_by=created_by,
        )
    except ArchiveError as exc:
        return ArchiveOutcome(error=f"{archive_name}: {exc}")
    return ArchiveOutcome(registered=stats.registered, batch_id=batch_id)


# --- Enqueueing ----------------------------------------------------------------------------------


def _publish(pairs: list[tuple[int, str]], *, queue: str) -> None:
    """Publish after commit; a broker outage must not turn a saved upload into an error page.

    The rows stay queued and say so; publishing again (Process / reprocess) recovers them.
    """
    try:
        _publish_now(pairs, queue=queue)
    except Exception:
        logger.exception(
            "Could not publish %d documents to the broker; they stay queued.", len(pairs)
        )


def _publish_now(pairs: list[tuple[int, str]], *, queue: str) -> None:
    """Publish one message per document through a single producer connection."""
    from documents.tasks import document_process_task, documents_fan_out_task

    if len(pairs) <= DIRECT_PUBLISH_LIMIT or document_process_task.app.conf.task_always_eager:
        documents_publish(pairs, queue=queue)
        return
    batch_size = docflow_setting("ENQUEUE_BATCH_SIZE")
    with documents_fan_out_task.app.producer_or_acquire() as producer:
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            documents_fan_out_task.apply_async(
                args=[batch, queue],
                producer=producer,
                # Celery would repr the whole batch for the task's header: half the publish time.
                argsrepr=f"[<{len(batch)} documents from {batch[0][0]}>, {queue!r}]",
            )


def documents_publish(pairs: list[tuple[int, str]], *, queue: str) -> int:
    """Send the processing messages for (document id, task id) pairs; used by the fan-out task.

    Small stored files on their first try share a documents_process_batch_task; the others get
    a document_process_task each. Publishing the same pair twice is harmless: the task id must
    match the row to be claimed.
    """
    from documents.tasks import document_process_task, documents_process_batch_task

    app = document_process_task.app
    if app.conf.task_always_eager:
        for document_id, task_id in pairs:
            document_process_task.apply_async(args=[document_id], task_id=task_id, queue=queue)
        return len(pairs)
    batchable = _batchable_ids([document_id for document_id, _ in pairs])
    batches = list(_batched((p for p in pairs if p[0] in batchable), _batch_size()))
    singles = [p for p in pairs if p[0] not in batchable]
    if batches and len(batches[-1]) == 1:
        singles.extend(batches.pop())
    with app.producer_or_acquire() as producer:
        for batch in batches:
            documents_process_batch_task.apply_async(
                args=[batch, queue],
                queue=queue,
                producer=producer,
                argsrepr=f"[<{len(batch)} documents from {batch[0][0]}>, {queue!r}]",
            )
        _publish_each(singles, queue=queue, producer=producer)
    return len(pairs)


def _publish_each(pairs: list[tuple[int, str]], *, queue: str, producer: Any) -> None:
    from documents.tasks import document_process_task

    for document_id, task_id in pairs:
        document_process_task.apply_async(
            args=[document_id], task_id=task_id, queue=queue, producer=producer
        )


def _batch_size() -> int:
    return max(1, docflow_setting("PROCESS_BATCH_SIZE"))


def _batchable_ids(ids: list[int]) -> set[int]:
    """The documents that may share a task: stored files up to PROCESS_BATCH_MAX_BYTES, never
    tried before, with the local default pipeline.

    A model or remote provider can make any document slow or throttled and a fetched page waits
    on the network, so those keep a task each; so does anything tried before, so that a file
    that kills its worker cannot take its batch mates down with it a second time.
    """
    if (
        _batch_size() < 2
        or len(ids) < 2
        or docflow_setting("EMBEDDING_PROVIDER") != "hashing"
        or docflow_setting("OPENAI_SUMMARY_MODEL")
    ):
        return set()
    return set(
        Document.objects.filter(
            pk__in=ids,
            file__gt="",
            attempts=0,
            size_bytes__lte=docflow_setting("PROCESS_BATCH_MAX_BYTES"),
        ).values_list("pk", flat=True)
    )


def _batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def documents_enqueue(
    *,
    document_ids: Iterable[int],
    queue: str = "high",
    statuses: Iterable[str] | None = (DocumentStatus.PENDING,),
    keep_attempts: bool = False,
    only_if: Q | None = None,
) -> int:
    """Mark documents queued with a fresh task id each and publish them after commit.

    `statuses` limits which rows may be (re)queued; None means any. Re-queueing a row that is
    processing gives it a new task id, so the running task notices and stops at its next step.
    `keep_attempts` keeps the attempt counter (recovery), instead of starting over (a person's
    retry). `only_if` is re-checked under the row lock, so a row that changed meanwhile (a
    worker claimed it) is left alone. Returns how many documents were queued.
    """
    token = uuid.uuid4().hex
    now = timezone.now()
    pairs: list[tuple[int, str]] = []
    with transaction.atomic():
        for ids in _batched(document_ids, 5000):
            # Rows with nothing to read (a refused upload) cannot be processed.
            rows = Document.objects.filter(Q(file__gt="") | Q(source_url__gt=""), pk__any=ids)
            if statuses is not None:
                rows = rows.filter(status__in=list(statuses))
            if only_if is not None:
                rows = rows.filter(only_if)
            # In id order, as batches lock them: two lockers never wait on each other in a ring.
            locked = list(rows.select_for_update().order_by("pk").values_list("pk", flat=True))
            if not locked:
                continue
            Document.objects.filter(pk__any=locked).update(
                status=DocumentStatus.QUEUED,
                task_id=Concat(Value(f"{token}-"), Cast("pk", CharField())),
                queued_at=now,
                started_at=None,
                finished_at=None,
                processing_seconds=None,
                stage="queued",
                progress=0,
                error="",
                error_code="",
                attempts=F("attempts") if keep_attempts else 0,
                duplicate_of=None,
            )
            pairs.extend((pk, f"{token}-{pk}") for pk in locked)
        if pairs:
            transaction.on_commit(partial(_publish, pairs, queue=queue))
    return len(pairs)


def documents_reprocess(*, document_ids: Iterable[int]) -> int:
    """Process again whatever state the documents are in (admin "Process / reprocess")."""
    return documents_enqueue(document_ids=document_ids, statuses=None)


def documents_retry_failed(
    *, document_ids: Iterable[int] | None = None, agent: Agent | None = None
) -> int:
    """Queue failed documents again, with their attempt counters reset."""
    failed = Document.objects.filter(status=DocumentStatus.FAILED)
    if agent is not None:
        failed = failed.filter(agent=agent)
    if document_ids is not None:
        failed = failed.filter(pk__in=list(document_ids))
    ids = failed.values_list("pk", flat=True).iterator(chunk_size=5000)
    return documents_enqueue(document_ids=ids, statuses=(DocumentStatus.FAILED,))


def documents_cancel(*, document_ids: Iterable[int]) -> int:
    """Cancel documents that have not finished; running tasks are told to stop."""
    ids = list(document_ids)
    with transaction.atomic():
        unfinished = Document.objects.filter(pk__in=ids, status__in=UNFINISHED)
        # Locked in id order, as batches lock them, then read.
        list(unfinished.select_for_update().order_by("pk").values_list("pk", flat=True))
        running = list(
            unfinished.filter(status=DocumentStatus.PROCESSING).values_list("task_id", flat=True)
        )
        queued = list(
            unfinished.filter(status=DocumentStatus.QUEUED).values_list("task_id", flat=True)
        )
        cancelled = Document.objects.filter(pk__in=ids, status__in=UNFINISHED).update(
            status=DocumentStatus.CANCELLED,
            stage="cancelled",
            error="Cancelled by a user.",
            error_code="cancelled",
            finished_at=timezone.now(),
        )
        transaction.on_commit(partial(_revoke, queued=queued, running=running))
    return cancelled


def _revoke(*, queued: list[str], running: list[str]) -> None:
    """Best effort: the row already says cancelled, which is what tasks obey."""
    from config.celery import app

    if app.conf.task_always_eager:
        return
    try:
        if queued:
            app.control.revoke([t for t in queued if t])
        if running:
            # SIGUSR1 raises SoftTimeLimitExceeded inside the task, which then stops cleanly.
            app.control.revoke([t for t in running if t], terminate=True, signal="SIGUSR1")
    except Exception:
        logger.warning("Could not broadcast revoke; the tasks will stop at their next step.")


# --- Recovery: work stuck in queued or processing -----------------------------------------


@dataclass
class RequeueOutcome:
    requeued: int = 0
    failed: int = 0
    skipped_queued: bool = False  # queued rows left alone: their messages may still be waiting


def _document_queues_idle(queues: tuple[str, ...] = ("high", "low")) -> bool:
    """True when the broker holds no waiting document message (counted over all priorities).

    A queued row can only be lost if its message is gone; while the queues still hold
    messages, old queued rows are probably waiting their turn behind a large ingest.
    """
    from config.celery import app
    from operations.queues import queue_depths

    if app.conf.task_always_eager:
        return False
    return not any(queue_depths(queues).values())


def documents_requeue_stuck(*, queued_for: timedelta, processing_for: timedelta) -> RequeueOutcome:
    """Re-enqueue documents whose message was lost (broker restarted empty, worker killed past
    its hard time limit, publish failed), with a new task id and their attempts kept; past
    DOCFLOW_MAX_ATTEMPTS they fail instead.

    Safe to run at any time, twice, or beside live workers: "stuck" is re-checked under each
    row's lock, and ages are measured on the database's clock (the one that stamped them).
    """
    outcome = RequeueOutcome()
    stuck = Q(status=DocumentStatus.PROCESSING, started_at__lt=Now() - processing_for)
    if _document_queues_idle():
        stuck |= Q(status=DocumentStatus.QUEUED, queued_at__lt=Now() - queued_for)
    else:
        outcome.skipped_queued = True
    exhausted = Document.objects.filter(stuck, attempts__gte=docflow_setting("MAX_ATTEMPTS"))
    with durable():
        outcome.failed = exhausted.update(
            status=DocumentStatus.FAILED,
            stage="failed",
            error="Processing never finished after several attempts (the worker was killed or "
            "the broker lost the work). Check the file and retry it.",
            error_code="stuck",
            finished_at=Now(),
        )
    for queue, single in (("high", True), ("low", False)):
        ids = Document.objects.filter(stuck, batch_id__isnull=single).values_list("pk", flat=True)
        outcome.requeued += documents_enqueue(
            document_ids=ids.iterator(chunk_size=5000),
            queue=queue,
            statuses=(DocumentStatus.QUEUED, DocumentStatus.PROCESSING),
            keep_attempts=True,
            only_if=stuck,
        )
    return outcome


# --- Bulk registration (ingest_documents) ------------------------------------------------------


@dataclass
class RegisterStats:
    """`failures` lists files that could not even be read, so have no row to show them."""

    registered: int = 0
    queued: int = 0
    duplicates: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)


def documents_register(
    *,
    agent: Agent,
    sources: Iterable[SourceFile],
    batch_id: uuid.UUID,
    queue: str = "low",
    batch_size: int = 2000,
    batch_bytes: int = 64 * 1024 * 1024,
    created_by: Any = None,
    on_batch: Callable[[int], None] = lambda n: None,
) -> RegisterStats:
    """Register many files with bulk inserts and enqueue them, a batch at a time.

    Known content (same sha256 for the same agent) is recorded as a duplicate at once and never
    enqueued. Each batch commits on its own, and holds at most `batch_bytes` of archive members
    in memory (twice that while the next batch is prepared), so memory stays flat for 500,000
    files.
    """
    stats = RegisterStats()
    common = {
        "agent_id": agent.pk,
        "batch_id": batch_id,
        "created_by_id": created_by.pk if created_by is not None else None,
    }
    max_bytes = docflow_setting("MAX_DOCUMENT_BYTES")
    # One thread reads, hashes and stores the next batch's files while this one waits on the
    # database for the current batch: file system and database latencies overlap.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="docflow-files") as files:
        previous: tuple[list[SourceFile], Future[list[dict[str, Any] | str]]] | None = None
        for batch in _source_batches(sources, batch_size, batch_bytes):
            prepared = files.submit(_prepare_rows, batch, {**common}, max_bytes)
            if previous is not None:
                _register_batch(agent, *previous, queue=queue, stats=stats)
                on_batch(len(previous[0]))
            previous = (batch, prepared)
        if previous is not None:
            _register_batch(agent, *previous, queue=queue, stats=stats)
            on_batch(len(previous[0]))
    return stats


def _prepare_rows(
    batch: list[SourceFile], common: dict[str, Any], max_bytes: int
) -> list[dict[str, Any] | str]:
    """File work only (no database: it runs in a helper thread)."""
    common["created_at"] = timezone.now()
    return [_prepare_row(source, common=common, max_bytes=max_bytes) for source in batch]


def _source_batches(
    sources: Iterable[SourceFile], size: int, max_bytes: int
) -> Iterator[list[SourceFile]]:
    batch: list[SourceFile] = []
    held = 0
    for source in sources:
        batch.append(source)
        held += len(source.data) if source.data is not None else 0
        if len(batch) >= size or held >= max_bytes:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _prepare_row(
    source: SourceFile, *, common: dict[str, Any], max_bytes: int
) -> dict[str, Any] | str:
    """Store one file and describe its row; a string is a reason it could not be read."""
    row = {**common, "original_name": source.name[:500], "status": DocumentStatus.PENDING.value}
    try:
        data = source.read(limit=max_bytes)
    except SourceTooLarge as exc:  # a huge file is never loaded
        row.update(
            size_bytes=exc.size,
            status=DocumentStatus.FAILED.value,
            stage="failed",
            error=_too_large_message(exc.size),
            error_code="too_large",
            finished_at=common["created_at"],
        )
        return row
    except OSError as exc:
        return f"Cannot read the file: {exc.strerror or exc}"
    sha256 = hashlib.sha256(data).hexdigest()
    row.update(
        size_bytes=len(data),
        sha256=sha256,
        file=store_content(data, storage_name_for(sha256, source.name), shown_as=source.name),
    )
    return row


def _register_batch(
    agent: Agent,
    batch: list[SourceFile],
    prepared: Future[list[dict[str, Any] | str]],
    *,
    queue: str,
    stats: RegisterStats,
) -> None:
    """Deduplicate and insert one prepared batch: three queries whatever the batch size."""
    stored: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for source, row in zip(batch, prepared.result(), strict=True):
        if isinstance(row, str):
            stats.failures.append({"path": source.name, "error": row})
            stats.failed += 1
        elif row["status"] == DocumentStatus.FAILED:
            rejected.append(row)
        else:
            stored.append(row)
    if not stored and not rejected:
        return
    now = (stored or rejected)[0]["created_at"]

    known = dict(
        Document.objects.filter(
            agent=agent, sha256__any=[row["sha256"] for row in stored], duplicate_of__isnull=True
        )
        .exclude(status__in=NOT_ORIGINALS)
        .order_by("-pk")
        .values_list("sha256", "pk")
    )
    originals: dict[str, dict[str, Any]] = {}
    duplicates: list[dict[str, Any]] = []
    token = uuid.uuid4().hex  # task ids: one random token per batch, not one per file
    for index, row in enumerate(stored):
        if row["sha256"] in known or row["sha256"] in originals:
            row.update(
                status=DocumentStatus.DUPLICATE.value,
                stage="duplicate",
                progress=100,
                finished_at=now,
            )
            duplicates.append(row)
        else:
            row.update(
                status=DocumentStatus.QUEUED.value,
                stage="queued",
                task_id=f"{token}-{index}",
                queued_at=now,
            )
            originals[row["sha256"]] = row

    with transaction.atomic():
        queued = list(originals.values())
        for pk, row in zip(insert_documents(queued), queued, strict=True):
            row["id"] = pk
        for row in duplicates:
            row["duplicate_of_id"] = known.get(row["sha256"]) or originals[row["sha256"]]["id"]
        insert_documents(duplicates + rejected)
        pairs = [(row["id"], row["task_id"]) for row in queued]
        if pairs:
            transaction.on_commit(partial(_publish, pairs, queue=queue))

    stats.registered += len(queued) + len(duplicates) + len(rejected)
    stats.queued += len(queued)
    stats.duplicates += len(duplicates)
    stats.failed += len(rejected)


def batch_status_counts(batch_id: uuid.UUID) -> dict[str, int]:
    """Counts by status of the documents one ingest run registered (one grouped query)."""
    counts = dict.fromkeys(DocumentStatus.values, 0)
    rows = (
        Document.objects.filter(batch_id=batch_id)
        .values_list("status")
        .order_by()
        .annotate(n=Count("pk"))
    )
    counts.update(dict(rows))
    return counts


# --- Processing (called by document_process_task) ---------------------------------------------


@dataclass
class ProcessOutcome:
    status: str
    document_id: int
    chunks: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "document_id": self.document_id,
            "chunks": self.chunks,
            "error": self.error,
        }


def _owned(document_id: int, task_id: str):  # type: ignore[no-untyped-def]
    """The row while it is processing under this task id; anything else means: not ours."""
    return Document.objects.filter(
        pk=document_id, task_id=task_id, status=DocumentStatus.PROCESSING
    )


def document_claim(*, document_id: int, task_id: str, redelivered: bool = False) -> Document | None:
    """Move the row to processing if this message is its live one.

    A row already `processing` under the same task id may be claimed again only by a message the
    broker delivered again (its worker died: task_reject_on_worker_lost) or by a retry of it;
    a second copy of a fresh message (a fan-out published twice) finds nothing to claim.
    Every claim counts an attempt.
    """
    claimable = [DocumentStatus.QUEUED]
    if redelivered:
        claimable.append(DocumentStatus.PROCESSING)
    claimed = Document.objects.filter(pk=document_id, task_id=task_id, status__in=claimable).update(
        status=DocumentStatus.PROCESSING,
        stage="extract",
        progress=0,
        started_at=Now(),  # the database's clock, which the reconciler compares against
        attempts=F("attempts") + 1,
    )
    if not claimed:
        return None
    return Document.objects.select_related("agent").get(pk=document_id)


@contextmanager
def durable() -> Iterator[None]:
    """A transaction committed with the server's durability, whatever the session's default.

    Workers commit without waiting by default (config.celery); outcomes must not be lost.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO DEFAULT")
        yield


def document_record_progress(
    *,
    document_id: int,
    task_id: str,
    stage: str,
    progress: int,
    also: Callable[[str, int], None] = lambda stage, progress: None,
    **fields: Any,
) -> None:
    """Write stage and progress (and `fields`) on the row, then hand them to `also` (the
    Celery state). Raises DocumentCancelled when the row is no longer this task's.

    Two statements and no explicit transaction: this runs three times per document, and in
    workers commits do not wait for the disk (config.celery), so it stays cheap.
    """
    if not _owned(document_id, task_id).update(stage=stage, progress=progress, **fields):
        raise DocumentCancelled
    also(stage, progress)


def document_fail(*, document_id: int, task_id: str, error: str, code: str, **fields: Any) -> bool:
    """Record a failure a person can act on; False when the row is no longer ours."""
    with durable():
        return bool(_owned(document_id, task_id).update(**_failed_fields(error, code, **fields)))


def document_release_for_retry(
    *, document_id: int, task_id: str, error: str, throttled: bool = False
) -> None:
    """Back to queued (same task id) so the retried message can claim it; the error shows why.

    `throttled`: only our own rate limit stopped it, so the claim is not counted as an attempt
    (heavy throttling must not make a healthy document fail for "too many attempts").
    """
    fields: dict[str, Any] = (
        {"stage": "waiting for the rate limit", "attempts": F("attempts") - 1}
        if throttled
        else {"stage": "waiting to retry", "error": error}
    )
    # A fresh queued_at: the reconciler must not mistake the backoff wait for a lost message.
    _owned(document_id, task_id).update(status=DocumentStatus.QUEUED, queued_at=Now(), **fields)


def _pipeline_config() -> pipeline.PipelineConfig:
    summary_model = docflow_setting("OPENAI_SUMMARY_MODEL")
    return pipeline.PipelineConfig(
        target_chars=docflow_setting("CHUNK_TARGET_CHARS"),
        overlap_chars=docflow_setting("CHUNK_OVERLAP_CHARS"),
        max_pages=docflow_setting("MAX_PAGES"),
        embedding_provider=embedding_provider(),
        summarizer=(
            partial(remote.summarize, openai_client(), model=summary_model)
            if summary_model
            else None
        ),
    )


def _provider_slot() -> None:
    """The global rate limit of the AI provider, shared by all workers (Redis)."""
    if not docflow_setting("OPENAI_RATE_LIMIT") or settings.CELERY_TASK_ALWAYS_EAGER:
        return
    try:
        ratelimit.wait_for_slot(
            "openai",
            ratelimit.Rate.parse(docflow_setting("OPENAI_RATE_LIMIT")),
            max_block=docflow_setting("RATE_LIMIT_MAX_BLOCK_SECONDS"),
        )
    except ratelimit.RateLimited as exc:
        raise pipeline.ThrottledError(str(exc), retry_after=exc.wait) from exc


def openai_client() -> remote.OpenAICompatibleClient:
    base_url = docflow_setting("OPENAI_BASE_URL")
    if not base_url:
        raise ImproperlyConfigured("The OpenAI-compatible provider needs DOCFLOW_OPENAI_BASE_URL.")
    return remote.OpenAICompatibleClient(
        base_url,
        api_key=docflow_setting("OPENAI_API_KEY"),
        timeout=docflow_setting("OPENAI_TIMEOUT_SECONDS"),
        before_request=_provider_slot,
    )


_providers: dict[tuple[str, int, str], pipeline.EmbeddingProvider] = {}


def embedding_provider() -> pipeline.EmbeddingProvider:
    """One provider per process: a sentence-transformers model is loaded once, not per task."""
    key = (
        docflow_setting("EMBEDDING_PROVIDER"),
        docflow_setting("EMBEDDING_DIMENSIONS"),
        docflow_setting("EMBEDDING_MODEL"),
    )
    if key not in _providers:
        if key[0] == "openai":
            _providers[key] = remote.OpenAIEmbedder(
                openai_client(), model=key[2] or "text-embedding-3-small", dimensions=key[1]
            )
        else:
            _providers[key] = pipeline.get_provider(key[0], dimensions=key[1], model_name=key[2])
    return _providers[key]


def _local_copy(document: Document, workdir: Path) -> Path:
    """A path on this machine to read the document from (fetched, stored or downloaded)."""
    if document.source_url and not document.file:
        target = workdir / "page"
        pipeline.fetch_url(
            document.source_url,
            target,
            timeout=docflow_setting("FETCH_TIMEOUT_SECONDS"),
            max_bytes=docflow_setting("MAX_DOCUMENT_BYTES"),
            allow_private=docflow_setting("FETCH_ALLOW_PRIVATE"),
        )
        return target
    if not document.file or not default_storage.exists(document.file.name):
        raise pipeline.CorruptDocumentError(
            "The stored file is missing. Upload the document again."
        )
    try:
        return Path(default_storage.path(document.file.name))
    except NotImplementedError:  # remote storage: copy it next to the worker
        target = workdir / Path(document.file.name).name
        with default_storage.open(document.file.name, "rb") as source, target.open("wb") as out:
            shutil.copyfileobj(source, out)
        return target


def _record_url_content(document: Document, path: Path) -> None:
    if document.sha256:
        return
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    document.sha256 = digest.hexdigest()
    document.size_bytes = path.stat().st_size
    Document.objects.filter(pk=document.pk).update(
        sha256=document.sha256, size_bytes=document.size_bytes
    )


def _original_of(document: Document) -> int | None:
    """The earliest document of the same agent with the same content, if any (_originals_of)."""
    return _originals_of([document]).get(document.pk)


def document_process(
    *,
    document_id: int,
    task_id: str,
    redelivered: bool = False,
    on_progress: Callable[[str, int], None] = lambda stage, progress: None,
) -> ProcessOutcome:
    """Claim, run the pipeline and store the result; safe to run twice for the same message.

    Raises pipeline.TransientPipelineError (and database errors) for the caller to retry;
    permanent problems with the file are recorded on the row and returned as "failed".
    """
    document = document_claim(document_id=document_id, task_id=task_id, redelivered=redelivered)
    if document is None:
        logger.info("document %s: message %s is not the live one; skipped", document_id, task_id)
        return ProcessOutcome(status="skipped", document_id=document_id)
    if document.attempts > docflow_setting("MAX_ATTEMPTS"):
        error = (
            f"Processing stopped {document.attempts - 1} times without finishing (the worker "
            "was killed or lost). The file may be malformed or too large; check it and retry."
        )
        document_fail(document_id=document_id, task_id=task_id, error=error, code="worker_lost")
        return ProcessOutcome(status="failed", document_id=document_id, error=error)

    kind = ""
    # The claim wrote stage "extract", progress 0 on the row.
    started = time.monotonic()
    config = _pipeline_config()
    # Stages reached in the first moments are not written: nobody polls that fast, and a
    # small document then costs three UPDATEs less. A remote or model provider can make any
    # stage long, so with one every stage is written.
    local = isinstance(config.provider(), pipeline.HashingEmbedder) and not config.summarizer
    quiet_until = started + (docflow_setting("PROGRESS_EVERY_SECONDS") if local else 0)

    progress = _progress_writer(document_id, task_id, quiet_until, on_progress)
    try:
        with tempfile.TemporaryDirectory(prefix="docflow-") as workdir:
            path = _local_copy(document, Path(workdir))
            _record_url_content(document, path)
            original = _original_of(document)
            if original is not None:
                return _mark_duplicate(document, task_id=task_id, original_id=original)
            detected = pipeline.detect_kind(path, document.original_name)
            kind = str(detected)
            # Recorded before the heavy work: a document that times out or kills its worker
            # still shows its type.
            _owned(document_id, task_id).update(kind=kind)
            result = pipeline.run_pipeline(
                path,
                name=document.original_name,
                kind=detected,
                config=config,
                on_progress=progress,
            )
    except pipeline.PipelineError as exc:
        # The type is kept, so failed PDFs show up under the PDF filter.
        document_fail(
            document_id=document_id, task_id=task_id, error=str(exc), code=exc.code, kind=kind
        )
        return ProcessOutcome(status="failed", document_id=document_id, error=str(exc))
    chunks = _store_result(document, task_id=task_id, result=result, started=started)
    return ProcessOutcome(status="done", document_id=document_id, chunks=chunks)


def _progress_writer(
    document_id: int,
    task_id: str,
    quiet_until: float,
    also: Callable[[str, int], None],
    before_query: Callable[[], None] = lambda: None,
) -> Callable[[str, int], None]:
    def progress(stage: str, percent: int) -> None:
        """A skipped stage also skips the cancellation check; storing the result checks again."""
        before_query()
        if time.monotonic() < quiet_until:
            return
        document_record_progress(
            document_id=document_id, task_id=task_id, stage=stage, progress=percent, also=also
        )

    return progress


def _duplicate_fields(original_id: int) -> dict[str, Any]:
    return {
        "status": DocumentStatus.DUPLICATE,
        "stage": "duplicate",
        "progress": 100,
        "duplicate_of_id": original_id,
        "error": "",
        "finished_at": timezone.now(),
    }


def _failed_fields(error: str, code: str, **fields: Any) -> dict[str, Any]:
    return {
        "status": DocumentStatus.FAILED,
        "stage": "failed",
        "error": error,
        "error_code": code,
        "finished_at": timezone.now(),
        **fields,
    }


def _done_fields(result: pipeline.PipelineResult, seconds: float) -> dict[str, Any]:
    meta = result.metadata
    return {
        "status": DocumentStatus.DONE,
        "stage": "done",
        "progress": 100,
        "error": "",
        "error_code": "",
        "kind": str(result.kind),
        "page_count": meta.page_count,
        "title": meta.title[:500],
        "author": meta.author[:500],
        "language": meta.language[:16],
        "authored_at": meta.created_at,
        "modified_at": meta.modified_at,
        "keywords": result.keywords,
        "summary": result.summary,
        "text_length": result.text_length,
        "chunk_count": len(result.chunks),
        "embedding_model": result.embedding_model,
        "finished_at": timezone.now(),
        "processing_seconds": seconds,
    }


def _mark_duplicate(document: Document, *, task_id: str, original_id: int) -> ProcessOutcome:
    with durable():
        _owned(document.pk, task_id).update(**_duplicate_fields(original_id))
    return ProcessOutcome(status="duplicate", document_id=document.pk)


def _store_result(
    document: Document, *, task_id: str, result: pipeline.PipelineResult, started: float
) -> int:
    """Replace the chunks and finish the row in one transaction (invariant 4).

    The row lock serialises two deliveries of the same message, so the second one replaces the
    first one's chunks instead of colliding with them.
    """
    with durable():
        # The conditional UPDATE both checks ownership and takes the row lock, one statement
        # where a SELECT … FOR UPDATE and an UPDATE would be two.
        seconds = round(time.monotonic() - started, 3)
        if not _owned(document.pk, task_id).update(**_done_fields(result, seconds)):
            raise DocumentCancelled
        Chunk.objects.filter(document_id=document.pk).delete()
        insert_chunks(document.pk, result.chunks, search_config=SEARCH_CONFIG)
    return len(result.chunks)


# --- Processing small documents several to a task (documents_process_batch_task) -------------


@dataclass
class _Processed:
    """One document of a batch, processed and not yet stored."""

    document: Document
    task_id: str
    result: pipeline.PipelineResult | None = None
    seconds: float = 0.0
    duplicate_of: int | None = None
    failure: tuple[str, str, str] | None = None  # error, code, kind
    cancelled: bool = False


@dataclass
class BatchOutcome:
    documents: list[ProcessOutcome] = field(default_factory=list)
    handed_over: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "documents": [outcome.as_dict() for outcome in self.documents],
            "handed_over": self.handed_over,
        }


def documents_process_batch(
    *, pairs: list[tuple[int, str]], queue: str, redelivered: bool = False
) -> BatchOutcome:
    """Process small documents one after another and store all their outcomes in one
    transaction: one claim, one commit and one Celery task for the lot.

    This is only the fast path. A message delivered again (its worker died, perhaps because
    of one of these files), a transient error, a time limit or a bug hands every document not
    yet finished to a document_process_task of its own, under a new task id, which has the
    retries, the attempt count and the time limit for one document. A database error while
    claiming is raised for the task to retry: nothing was done yet.
    """
    outcome = BatchOutcome()
    if redelivered:
        # Any of them may have killed the worker: each keeps the attempt the batch counted.
        outcome.handed_over = _hand_over(pairs, queue=queue, uncount=False)
        return outcome
    task_ids = dict(pairs)
    pending = _claim_batch(pairs)
    processed: list[_Processed] = []
    later: list[Document] = []  # copies of a batch mate that did not finish: decided alone
    # Each document's chunks are written while the next one is processed.
    chunks = ChunkWriter(search_config=SEARCH_CONFIG, processing=DocumentStatus.PROCESSING)
    try:
        config = _pipeline_config()
        originals = _originals_of(pending)
        with tempfile.TemporaryDirectory(prefix="docflow-") as workdir:
            while pending:
                document = pending[0]
                original = _in_batch(processed, originals.get(document.pk))
                if original is not None and original.result is None:
                    later.append(document)
                    pending.pop(0)
                    continue
                item = _process_in_batch(
                    document,
                    task_ids[document.pk],
                    config=config,
                    original_id=originals.get(document.pk),
                    workdir=Path(workdir),
                    # At its first progress point (after extraction), the previous document's
                    # chunks are committed: their locks are not held for a whole document.
                    before_query=chunks.settle,
                )
                if item.result is not None:
                    chunks.replace(document.pk, item.task_id, item.result.chunks)
                processed.append(item)
                pending.pop(0)
    except Exception:  # the time limit, a transient error or a bug: one task each from here
        logger.warning(
            "a batch stopped with %d documents to go; they go on one task each",
            len(pending),
            exc_info=True,
        )
    except BaseException:
        # Leaving (the worker shuts down): the connection must not stay in pipeline mode.
        with contextlib.suppress(Exception):
            chunks.settle()
        raise
    try:
        chunks.settle()
        if chunks.failed:  # which documents' chunks are stored is unknown: store none
            raise ChunksNotStored
        outcome.documents, orphans = _store_batch(processed)
        later += orphans
    except Exception:  # the database, or the time limit while storing
        logger.warning("could not store a batch; its documents go on one task each", exc_info=True)
        pending = [item.document for item in processed] + pending
    pending += later
    if pending:
        outcome.handed_over = _hand_over(
            [(document.pk, task_ids[document.pk]) for document in pending],
            queue=queue,
            uncount=True,
        )
    return outcome


def _in_batch(processed: list[_Processed], document_id: int | None) -> _Processed | None:
    return next((item for item in processed if item.document.pk == document_id), None)


def _claim_batch(pairs: list[tuple[int, str]]) -> list[Document]:
    """Claim the rows still queued under their pair's task id, in id order.

    The rows are locked in id order; a second copy of this message waits, then finds them
    processing and claims nothing. (FOR NO KEY UPDATE: a foreign key check on the row, as when
    a copy of it is registered, does not block it.)
    """
    task_ids = dict(pairs)
    with transaction.atomic():
        rows = [
            document
            for document in Document.objects.select_for_update(no_key=True)
            .filter(pk__in=task_ids, task_id__in=task_ids.values(), status=DocumentStatus.QUEUED)
            .order_by("pk")
            if document.task_id == task_ids[document.pk]
        ]
        if rows:
            Document.objects.filter(pk__in=[document.pk for document in rows]).update(
                status=DocumentStatus.PROCESSING,
                stage="extract",
                progress=0,
                started_at=Now(),
                attempts=F("attempts") + 1,
            )
    for document in rows:
        document.status = DocumentStatus.PROCESSING
        document.attempts += 1
    return rows


def _originals_of(documents: list[Document]) -> dict[int, int]:
    """{document id: the earliest earlier document of the same agent with the same content},
    in one query.

    Earliest id wins, so two copies processed at the same moment agree on which is the copy.
    A failed or cancelled earlier copy does not count: this one deserves its own try.
    """
    hashes = {document.sha256 for document in documents if document.sha256}
    if not hashes:
        return {}
    earliest: dict[tuple[int, str], int] = {}
    candidates = (
        Document.objects.filter(
            agent_id__in={document.agent_id for document in documents},
            sha256__in=hashes,
            pk__lt=max(document.pk for document in documents),
            duplicate_of__isnull=True,
        )
        .exclude(status__in=NOT_ORIGINALS)
        .values_list("agent_id", "sha256", "pk")
    )
    for agent_id, sha256, pk in candidates:
        key = (agent_id, sha256)
        earliest[key] = min(pk, earliest.get(key, pk))
    originals = {}
    for document in documents:
        first = earliest.get((document.agent_id, document.sha256))
        if first is not None and first < document.pk:
            originals[document.pk] = first
    return originals


def _process_in_batch(
    document: Document,
    task_id: str,
    *,
    config: pipeline.PipelineConfig,
    original_id: int | None,
    workdir: Path,
    before_query: Callable[[], None],
) -> _Processed:
    if original_id is not None:
        return _Processed(document, task_id, duplicate_of=original_id)
    started = time.monotonic()
    progress = _progress_writer(
        document.pk,
        task_id,
        started + docflow_setting("PROGRESS_EVERY_SECONDS"),
        lambda stage, percent: None,
        before_query,
    )
    kind = ""
    try:
        path = _local_copy(document, workdir)
        detected = pipeline.detect_kind(path, document.original_name)
        kind = str(detected)
        result = pipeline.run_pipeline(
            path, name=document.original_name, kind=detected, config=config, on_progress=progress
        )
    except pipeline.PipelineError as exc:
        return _Processed(document, task_id, failure=(str(exc), exc.code, kind))
    except DocumentCancelled:
        return _Processed(document, task_id, cancelled=True)
    seconds = round(time.monotonic() - started, 3)
    return _Processed(document, task_id, result=result, seconds=seconds)


def _store_batch(processed: list[_Processed]) -> tuple[list[ProcessOutcome], list[Document]]:
    """Every outcome of a batch in one transaction; each row only if it is still ours (their
    chunks are already written: ChunkWriter).

    Also returns the copies of a batch mate whose own outcome could not be stored (cancelled
    or re-queued meanwhile): a copy of that is no duplicate, so its own task decides.
    """
    outcomes: list[ProcessOutcome] = []
    orphans: list[Document] = []
    if not processed:
        return outcomes, orphans
    lost = {item.document.pk for item in processed if item.cancelled}
    fields = {item.document.pk: _outcome_fields(item) for item in processed if not item.cancelled}
    with durable():
        # Locked in id order first, as enqueue and cancel lock: never a ring of waiters.
        list(
            Document.objects.select_for_update(no_key=True)
            .filter(pk__in=[item.document.pk for item in processed])
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        # Originals first: a copy of one whose outcome could not be stored is no duplicate.
        firsts = [item for item in processed if not item.cancelled and item.duplicate_of is None]
        written = _write_outcomes(firsts, fields)
        lost.update(item.document.pk for item in firsts if item.document.pk not in written)
        written |= _write_outcomes(
            [
                item
                for item in processed
                if item.duplicate_of is not None and item.duplicate_of not in lost
            ],
            fields,
        )
    for item in processed:
        pk = item.document.pk
        if item.duplicate_of in lost:
            orphans.append(item.document)
        elif pk not in written:
            outcomes.append(ProcessOutcome(status="cancelled", document_id=pk))
        else:
            outcomes.append(
                ProcessOutcome(
                    status=str(fields[pk]["status"]),
                    document_id=pk,
                    chunks=len(item.result.chunks) if item.result else 0,
                    error=item.failure[0] if item.failure else "",
                )
            )
    return outcomes, orphans


def _write_outcomes(items: list[_Processed], fields: dict[int, dict[str, Any]]) -> set[int]:
    """The ids of `items` whose outcome was written (the others are no longer this batch's)."""
    if not items:
        return set()
    return update_processing_documents(
        [(item.document.pk, item.task_id, fields[item.document.pk]) for item in items],
        processing=DocumentStatus.PROCESSING,
    )


def _outcome_fields(item: _Processed) -> dict[str, Any]:
    if item.result is not None:
        return _done_fields(item.result, item.seconds)
    if item.duplicate_of is not None:
        return _duplicate_fields(item.duplicate_of)
    assert item.failure is not None  # noqa: S101  (the three kinds of _Processed)
    error, code, kind = item.failure
    return _failed_fields(error, code, kind=kind)


def _hand_over(pairs: list[tuple[int, str]], *, queue: str, uncount: bool) -> list[int]:
    """Give the rows still under the batch's task ids a new task id each, back in `queued`,
    then publish a document_process_task for each.

    New task ids, so that no copy of the batch message can touch them again. `uncount`: the
    batch's claim is not counted as an attempt (the single task counts its own). A publish that
    fails is recorded on the rows, as a retry that cannot be sent is for a single task.
    """
    from documents.tasks import document_process_task

    task_ids = dict(pairs)
    token = uuid.uuid4().hex
    with transaction.atomic():
        ours = [
            pk
            for pk, task_id in Document.objects.select_for_update(no_key=True)
            .filter(
                pk__in=task_ids,
                task_id__in=task_ids.values(),
                status__in=[DocumentStatus.QUEUED, DocumentStatus.PROCESSING],
            )
            .order_by("pk")
            .values_list("pk", "task_id")
            if task_id == task_ids[pk]
        ]
        rows = Document.objects.filter(pk__in=ours)
        if uncount:
            rows.filter(status=DocumentStatus.PROCESSING).update(attempts=F("attempts") - 1)
        rows.update(
            status=DocumentStatus.QUEUED,
            stage="queued",
            progress=0,
            queued_at=Now(),
            task_id=Concat(Value(f"{token}-"), Cast("pk", CharField())),
        )
    unsent = [(pk, f"{token}-{pk}") for pk in ours]
    try:
        with document_process_task.app.producer_or_acquire() as producer:
            while unsent:
                _publish_each(unsent[:1], queue=queue, producer=producer)
                unsent.pop(0)
    except Exception as exc:
        # Only the rows whose message was not sent: the others may be claimed any moment.
        logger.exception("could not hand %d documents over to their own tasks", len(unsent))
        Document.objects.filter(
            pk__in=[pk for pk, _ in unsent],
            task_id__in=[task_id for _, task_id in unsent],
            status=DocumentStatus.QUEUED,
        ).update(
            **_failed_fields(
                f"Could not schedule its processing ({exc}). Retry it when the broker is back.",
                "transient",
            )
        )
    return ours
