"""Reads for the API: a task's state merged from its domain row and Celery's result."""

from __future__ import annotations

import json
from typing import Any

from django_celery_results.models import TaskResult

from analytics.models import UsageReport
from documents.models import AgentImport, Document
from profiles.models import CustomerProfile

# A domain status, when Celery has stored nothing yet (no PENDING rows in django-celery-results).
_STATE_OF_STATUS = {
    "pending": "PENDING",
    "queued": "PENDING",
    "processing": "STARTED",
    "done": "SUCCESS",
    "duplicate": "SUCCESS",
    "failed": "FAILURE",
    "cancelled": "REVOKED",
}


def document_as_dict(document: Document) -> dict[str, Any]:
    return {
        "id": document.pk,
        "agent": document.agent_id,
        "name": document.display_name,
        "kind": document.kind,
        "status": document.status,
        "stage": document.stage,
        "progress": document.progress,
        "error": document.error,
        "error_code": document.error_code,
        "attempts": document.attempts,
        "task_id": document.task_id,
        "page_count": document.page_count,
        "chunk_count": document.chunk_count,
        "duplicate_of": document.duplicate_of_id,
        "created_at": document.created_at,
        "queued_at": document.queued_at,
        "started_at": document.started_at,
        "finished_at": document.finished_at,
    }


def _domain_row(task_id: str) -> dict[str, Any] | None:
    document = Document.objects.filter(task_id=task_id).first()
    if document is not None:
        return {"kind": "document", "object": document_as_dict(document)}
    agent_import = AgentImport.objects.filter(task_id=task_id).first()
    if agent_import is not None:
        return {
            "kind": "agent_import",
            "object": {
                "id": agent_import.pk,
                "status": agent_import.status,
                "progress": agent_import.progress,
                "error": agent_import.error,
            },
        }
    report = UsageReport.objects.filter(task_id=task_id).first()
    if report is not None:
        return {
            "kind": "usage_report",
            "object": {"id": report.pk, "status": report.status, "error": report.error},
        }
    profiles = CustomerProfile.objects.filter(enrichment_task_id=task_id)
    first = profiles.first()
    if first is not None:
        return {
            "kind": "profile_enrichment",
            "object": {
                "id": first.pk,
                "profiles": profiles.count(),
                "status": first.enrichment_status,
                "progress": first.enrichment_progress,
                "error": first.enrichment_error,
            },
        }
    return None


def task_get(task_id: str) -> dict[str, Any] | None:
    """What a task id stands for; None when neither a row nor Celery knows it."""
    domain = _domain_row(task_id)
    result = TaskResult.objects.filter(task_id=task_id).first()
    if domain is None and result is None:
        return None
    status = (domain or {}).get("object", {}).get("status", "")
    answer: dict[str, Any] = {
        "task_id": task_id,
        "kind": domain["kind"] if domain else "task",
        "state": result.status if result else _STATE_OF_STATUS.get(status, "PENDING"),
        "status": status,
        "stage": (domain or {}).get("object", {}).get("stage", ""),
        "progress": (domain or {}).get("object", {}).get("progress"),
        "object": domain["object"] if domain else None,
        "task_name": result.task_name if result else None,
        "date_done": result.date_done if result else None,
        "result": None,
        "error": (domain or {}).get("object", {}).get("error", ""),
    }
    if result is not None and result.result:
        try:
            value = json.loads(result.result)
        except ValueError:
            value = result.result
        if result.status == "FAILURE":
            answer["error"] = answer["error"] or _failure_text(value)
        else:
            answer["result"] = value
    return answer


def _failure_text(value: Any) -> str:
    """Celery stores a failure as {"exc_type", "exc_message": [args], "exc_module"}."""
    if not isinstance(value, dict):
        return str(value)
    message = value.get("exc_message")
    if isinstance(message, list | tuple):
        message = " ".join(str(part) for part in message)
    return f"{value.get('exc_type', 'Error')}: {message}"
