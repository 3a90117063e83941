"""The admin site: Django's, with an index that shows at a glance what needs attention."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from operations.overview import admin_overview


class DocflowAdminSite(admin.AdminSite):
    site_header = "Docflow"
    site_title = "Docflow admin"
    index_title = "Overview"

    def index(self, request: HttpRequest, extra_context: Any = None) -> TemplateResponse:
        overview = admin_overview(request.user)
        return super().index(request, {**(extra_context or {}), "overview": overview})
