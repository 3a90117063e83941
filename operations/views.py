"""The admin's "Queues and workers" page (staff only, served at /admin/operations/queues/)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from operations.queues import queue_stats


def queues_page(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("documents.view_document"):
        raise PermissionDenied
    return TemplateResponse(
        request,
        "admin/operations/queues.html",
        {
            **admin.site.each_context(request),
            "title": "Queues and workers",
            "stats": queue_stats(timeout=1.0),
        },
    )
