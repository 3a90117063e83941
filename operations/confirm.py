"""Admin actions that touch many rows ask first.

Selecting "all 48,000 documents" and clicking Go by mistake should cost a second look, not a
night of reprocessing. Below the threshold the action runs at once; above it, a page names the
action and the number of rows, and its button posts the same selection back, confirmed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

CONFIRMED = "docflow_confirmed"
PREVIEW_ROWS = 10

Action = Callable[[Any, HttpRequest, QuerySet[Any]], Any]


def confirm_when_many(question: str) -> Callable[[Action], Action]:
    """`question` is formatted with `count` and `name` (the model's plural verbose name)."""

    def decorate(action: Action) -> Action:
        @functools.wraps(action)
        def confirmed_first(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
            if request.POST.get(CONFIRMED) != "yes":
                # The ticked ids say how many, unless "select all" asked for the whole list.
                selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
                across = request.POST.get("select_across") == "1"
                count = queryset.count() if across else len(selected)
                if count > settings.DOCFLOW["ADMIN_CONFIRM_OVER"]:
                    return _confirmation_page(modeladmin, request, queryset, question, count)
            return action(modeladmin, request, queryset)

        return confirmed_first

    return decorate


def _confirmation_page(
    modeladmin: Any, request: HttpRequest, queryset: QuerySet[Any], question: str, count: int
) -> TemplateResponse:
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": opts,
        "title": question.format(count=f"{count:,}", name=opts.verbose_name_plural),
        "count": count,
        "action": request.POST.get("action", ""),
        "select_across": request.POST.get("select_across", "0"),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "confirmed_field": CONFIRMED,
        "preview": list(queryset[:PREVIEW_ROWS]),
        "more": max(0, count - PREVIEW_ROWS),
    }
    return TemplateResponse(request, "admin/docflow_confirm_action.html", context)
