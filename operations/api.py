"""The JSON API under /api/v1/ (staff only): task state and cancel, queues, document upload.

Authentication is a session (with CSRF, for the admin's own pages) or a token header
(`Authorization: Token …`, for scripts; tokens are managed in the admin). Every view checks
the model permission it needs; the work itself is done by the same services the admin uses.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from documents import services as document_services
from documents.bulk import StorageFullError
from documents.models import Agent, Document
from operations.queues import queue_stats
from operations.selectors import document_as_dict, task_get


class StaffWithModelPermission(BasePermission):
    """Staff users holding the permissions a view names for the request's method."""

    message = "Staff users with the model permission only."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        # HEAD runs `get`: it needs GET's permissions. A method the view implements without
        # naming permissions is refused (fail closed); one it lacks goes on to answer 405.
        method = "GET" if request.method == "HEAD" else request.method
        needed = view.required_permissions.get(method)
        if needed is None:
            return not hasattr(view, request.method.lower())
        return user.has_perms(needed)


class StaffAPIView(APIView):
    permission_classes = (StaffWithModelPermission,)
    required_permissions: ClassVar[dict[str, tuple[str, ...]]] = {}


TASK_VIEW_PERMISSIONS = {
    "document": "documents.view_document",
    "agent_import": "documents.view_agentimport",
    "usage_report": "analytics.view_usagereport",
    "profile_enrichment": "profiles.view_customerprofile",
    "task": "django_celery_results.view_taskresult",
}


class TaskDetail(StaffAPIView):
    required_permissions: ClassVar = {
        "GET": ("documents.view_document",),
        "DELETE": ("documents.change_document",),
    }

    def get(self, request: Request, task_id: str) -> Response:
        task = task_get(task_id)
        # Each kind of work is shown to those who may view its object; to others it is unknown.
        if task is None or not request.user.has_perm(TASK_VIEW_PERMISSIONS[task["kind"]]):
            raise NotFound(f"No task {task_id!r}.")
        return Response(task)

    def delete(self, request: Request, task_id: str) -> Response:
        """Cancel the document a task processes (other kinds of work are not cancellable)."""
        task = task_get(task_id)
        if task is None:
            raise NotFound(f"No task {task_id!r}.")
        if task["kind"] != "document":
            raise ValidationError({"task_id": f"A {task['kind']} task cannot be cancelled."})
        cancelled = document_services.documents_cancel(document_ids=[task["object"]["id"]])
        if not cancelled:
            return Response(
                {"detail": f"The document is already {task['status']}.", "cancelled": 0},
                status=status.HTTP_409_CONFLICT,
            )
        return Response({"cancelled": cancelled, **(task_get(task_id) or {})})


class Queues(StaffAPIView):
    required_permissions: ClassVar = {"GET": ("documents.view_document",)}

    def get(self, request: Request) -> Response:
        return Response(queue_stats(timeout=1.0).as_dict())


def _agent_from(data: Any) -> Agent:
    value = data.get("agent")
    if not value:
        raise ValidationError({"agent": "Name the agent by id, or by slug with organization."})
    agents = Agent.objects.select_related("organization")
    if str(value).isdigit():
        agent = agents.filter(pk=int(value)).first()
    elif data.get("organization"):
        agent = agents.filter(slug=value, organization__slug=data["organization"]).first()
    else:
        matches = list(agents.filter(slug=value)[:2])
        if len(matches) > 1:
            raise ValidationError({"organization": f"Several agents are called {value!r}."})
        agent = matches[0] if matches else None
    if agent is None:
        raise ValidationError({"agent": f"No agent {value!r}."})
    return agent


class DocumentList(StaffAPIView):
    required_permissions: ClassVar = {"POST": ("documents.add_document",)}

    def post(self, request: Request) -> Response:
        """Register a file (multipart `file`) or a web page (`url`); processing is queued
        after commit and the answer carries the document id and task id at once."""
        agent = _agent_from(request.data)
        upload = request.FILES.get("file")
        url = request.data.get("url", "")
        if bool(upload) == bool(url):
            raise ValidationError({"file": "Send exactly one of `file` or `url`."})
        if url:
            try:
                URLValidator(schemes=["http", "https"])(str(url))
            except DjangoValidationError:
                raise ValidationError({"url": f"{url!r} is not an http(s) URL."}) from None
        with transaction.atomic():
            if upload is not None:
                try:
                    document = document_services.document_create_from_upload(
                        agent=agent,
                        upload=upload,
                        original_name=upload.name,
                        created_by=request.user,
                    )
                except StorageFullError as exc:
                    return Response({"detail": str(exc)}, status=507)  # Insufficient Storage
            else:
                document = document_services.document_create_from_url(
                    agent=agent, url=str(url), created_by=request.user
                )
        document.refresh_from_db()
        return Response(document_as_dict(document), status=status.HTTP_201_CREATED)


class DocumentDetail(StaffAPIView):
    required_permissions: ClassVar = {"GET": ("documents.view_document",)}

    def get(self, request: Request, document_id: int) -> Response:
        document = Document.objects.filter(pk=document_id).first()
        if document is None:
            raise NotFound(f"No document {document_id}.")
        return Response(document_as_dict(document))
