"""Writes for bulk agent imports: validate a file, record the job, apply it in batches.

The file is parsed and checked before anything is queued (documents.agent_import, pure);
the Celery task then upserts agents a batch at a time on their unique (organization, slug),
so importing the same file twice creates nothing new.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from documents.agent_import import AgentRow, ParsedImport, RowError, parse_agent_file
from documents.archives import SourceFile
from documents.models import Agent, AgentImport, Document, ImportStatus, Organization

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000


@dataclass(frozen=True)
class ImportCheck:
    """The file's valid rows and its errors, after checks that need the database."""

    rows: list[AgentRow]
    errors: list[RowError]


def _allowed_roots() -> list[Path]:
    return [Path(root).resolve() for root in settings.DOCFLOW["IMPORT_ALLOWED_ROOTS"]]


def _path_allowed(source: str, roots: list[Path]) -> bool:
    """Server-side paths only inside configured roots (no `..` escapes, no symlinks out)."""
    try:
        resolved = Path(source).resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return resolved.is_file() and any(resolved.is_relative_to(root) for root in roots)


def check_rows(parsed: ParsedImport, *, create_organizations: bool) -> ImportCheck:
    """Refuse rows naming unknown organizations (unless allowed) or paths outside the roots."""
    wanted = {row.organization for row in parsed.rows}
    known = set(Organization.objects.filter(slug__in=wanted).values_list("slug", flat=True))
    roots = _allowed_roots()
    rows: list[AgentRow] = []
    errors = list(parsed.errors)
    for row in parsed.rows:
        row_errors: list[RowError] = []
        if row.organization not in known and not create_organizations:
            row_errors.append(
                RowError(
                    row.row,
                    "organization",
                    f"Unknown organization {row.organization!r}; create it first, or allow the "
                    "import to create organizations.",
                )
            )
        for source in row.documents:
            if source.startswith("/") and not _path_allowed(source, roots):
                row_errors.append(
                    RowError(
                        row.row,
                        "documents",
                        f"{source!r} is not a readable file inside the allowed import folders "
                        "(DOCFLOW_IMPORT_ALLOWED_ROOTS).",
                    )
                )
        if row_errors:
            errors.extend(row_errors)
        else:
            rows.append(row)
    errors.sort(key=lambda error: error.row)
    return ImportCheck(rows=rows, errors=errors)


def _error_dicts(errors: Iterable[RowError]) -> list[dict[str, Any]]:
    return [{"row": e.row, "column": e.column, "message": e.message} for e in errors]


def agent_import_start(
    *,
    data: bytes,
    filename: str,
    created_by: Any = None,
    create_organizations: bool = False,
    default_organization: str = "",
) -> tuple[AgentImport | None, ImportCheck]:
    """Validate the file and, when any row is valid, record the job and queue it on `low`.

    Raises documents.agent_import.ImportFileError when the file as a whole is refused.
    Returns (None, check) when no row is valid: nothing is created.
    """
    parsed = parse_agent_file(
        data,
        filename=filename,
        max_bytes=settings.DOCFLOW["IMPORT_MAX_BYTES"],
        default_organization=default_organization,
    )
    check = check_rows(parsed, create_organizations=create_organizations)
    if not check.rows:
        return None, check
    failed_rows = len({error.row for error in check.errors})
    job = AgentImport(
        original_name=filename[:500],
        create_organizations=create_organizations,
        default_organization=default_organization,
        total_rows=len(check.rows) + failed_rows,
        failed_count=failed_rows,
        errors=_error_dicts(check.errors),
        task_id=uuid.uuid4().hex,
        created_by=created_by,
    )
    job.file.save(Path(filename).name or "agents", ContentFile(data), save=False)
    job.save()
    transaction.on_commit(partial(_publish_import, job.pk, job.task_id))
    return job, check


def _publish_import(import_id: int, task_id: str) -> None:
    from documents.tasks import agent_import_task

    try:
        agent_import_task.apply_async(args=[import_id], task_id=task_id)
    except Exception:
        logger.exception("Could not queue agent import %s; it stays queued.", import_id)


def agent_import_run(*, import_id: int, task_id: str, redelivered: bool = False) -> str:
    """Apply a queued import; safe to run twice (upserts) and after a worker died."""
    claimable = [ImportStatus.QUEUED] + ([ImportStatus.PROCESSING] if redelivered else [])
    claimed = AgentImport.objects.filter(
        pk=import_id, task_id=task_id, status__in=claimable
    ).update(status=ImportStatus.PROCESSING, started_at=timezone.now(), attempts=F("attempts") + 1)
    if not claimed:
        return "skipped"
    job = AgentImport.objects.get(pk=import_id)
    with job.file.open("rb") as handle:
        data = handle.read()
    parsed = parse_agent_file(
        data,
        filename=job.original_name,
        max_bytes=settings.DOCFLOW["IMPORT_MAX_BYTES"],
        default_organization=job.default_organization,
    )
    check = check_rows(parsed, create_organizations=job.create_organizations)
    counts = {"created": 0, "updated": 0, "unchanged": 0, "documents": 0}
    done = 0
    iterator = iter(check.rows)
    while batch := list(islice(iterator, BATCH_SIZE)):
        _apply_batch(batch, job=job, counts=counts)
        done += len(batch)
        AgentImport.objects.filter(pk=import_id).update(
            progress=min(99, round(100 * done / max(len(check.rows), 1))),
            created_count=counts["created"],
            updated_count=counts["updated"],
            unchanged_count=counts["unchanged"],
            documents_queued=counts["documents"],
        )
    failed_rows = len({error.row for error in check.errors})
    AgentImport.objects.filter(pk=import_id).update(
        status=ImportStatus.DONE,
        progress=100,
        failed_count=failed_rows,
        total_rows=len(check.rows) + failed_rows,
        errors=_error_dicts(check.errors),
        finished_at=timezone.now(),
    )
    return "done"


def agent_import_fail(*, import_id: int, task_id: str, error: str) -> None:
    AgentImport.objects.filter(pk=import_id, task_id=task_id).update(
        status=ImportStatus.FAILED, error=error, finished_at=timezone.now()
    )


def _organizations(slugs: set[str], *, create: bool) -> dict[str, int]:
    existing = dict(Organization.objects.filter(slug__in=slugs).values_list("slug", "pk"))
    missing = slugs - existing.keys()
    if missing and create:
        Organization.objects.bulk_create(
            [Organization(slug=slug, name=slug.replace("-", " ").title()) for slug in missing],
            ignore_conflicts=True,
        )
        existing = dict(Organization.objects.filter(slug__in=slugs).values_list("slug", "pk"))
    return existing


def _apply_batch(batch: list[AgentRow], *, job: AgentImport, counts: dict[str, int]) -> None:
    """Upsert one batch of agents (three queries) and register their knowledge bases."""
    organizations = _organizations({row.organization for row in batch}, create=True)
    keys = {(organizations[row.organization], row.slug) for row in batch}
    current = {
        (org_id, slug): (name, persona, model, temperature)
        for org_id, slug, name, persona, model, temperature in Agent.objects.filter(
            organization_id__in={org for org, _ in keys}, slug__in={slug for _, slug in keys}
        ).values_list("organization_id", "slug", "name", "persona", "model_name", "temperature")
    }
    now = timezone.now()
    changed: list[Agent] = []
    for row in batch:
        key = (organizations[row.organization], row.slug)
        wanted = (row.name, row.persona, row.model, row.temperature)
        if key not in current:
            counts["created"] += 1
        elif current[key] == wanted:
            counts["unchanged"] += 1
            continue
        else:
            counts["updated"] += 1
        changed.append(
            Agent(
                organization_id=key[0],
                slug=row.slug,
                name=row.name,
                persona=row.persona,
                model_name=row.model,
                temperature=row.temperature,
                created_by=job.created_by,
                created_at=now,
                updated_at=now,
            )
        )
    with transaction.atomic():
        Agent.objects.bulk_create(
            changed,
            update_conflicts=True,
            unique_fields=["organization", "slug"],
            update_fields=["name", "persona", "model_name", "temperature", "updated_at"],
        )
    counts["documents"] += _register_knowledge(batch, organizations, job=job)


def _register_knowledge(
    batch: list[AgentRow], organizations: dict[str, int], *, job: AgentImport
) -> int:
    """Documents listed in the rows, once per agent: a source already registered is skipped."""
    from documents import services

    with_documents = [row for row in batch if row.documents]
    if not with_documents:
        return 0
    agents = {
        (agent.organization_id, agent.slug): agent
        for agent in Agent.objects.filter(
            organization_id__in={organizations[r.organization] for r in with_documents},
            slug__in={r.slug for r in with_documents},
        )
    }
    wanted: list[tuple[Agent, str]] = []
    for row in with_documents:
        agent = agents[(organizations[row.organization], row.slug)]
        wanted.extend((agent, source) for source in row.documents)
    known = set(
        Document.objects.filter(agent__in={agent for agent, _ in wanted})
        .filter(original_name__in={source[:500] for _, source in wanted})
        .values_list("agent_id", "original_name")
    )
    fresh = [(agent, source) for agent, source in wanted if (agent.pk, source[:500]) not in known]
    urls = [
        Document(
            agent=agent,
            source_url=source,
            original_name=source[:500],
            created_by=job.created_by,
        )
        for agent, source in fresh
        if not source.startswith("/")
    ]
    created = Document.objects.bulk_create(urls)
    queued = services.documents_enqueue(document_ids=[d.pk for d in created], queue="low")
    for agent, source in fresh:
        if source.startswith("/"):
            stats = services.documents_register(
                agent=agent,
                sources=[SourceFile(name=source, path=Path(source))],
                batch_id=uuid.uuid4(),
                created_by=job.created_by,
            )
            queued += stats.queued
    return queued


def import_summary(job: AgentImport) -> dict[str, Any]:
    """The JSON shape of `bulk_create_agents --json`."""
    return {
        "created": job.created_count,
        "updated": job.updated_count,
        "unchanged": job.unchanged_count,
        "failed": job.failed_count,
        "errors": [
            {"row": e["row"], "message": f"{e['column']}: {e['message']}"} for e in job.errors
        ],
    }


__all__ = [
    "ImportCheck",
    "agent_import_fail",
    "agent_import_run",
    "agent_import_start",
    "check_rows",
    "import_summary",
]
