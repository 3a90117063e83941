"""The staff analytics dashboard, drawn from snapshots (served at /admin/analytics/dashboard/)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe

from analytics import charts, selectors
from analytics.forms import DashboardForm
from analytics.selectors import SENTIMENT_LABELS


def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("analytics.view_snapshot"):
        raise PermissionDenied
    form = DashboardForm(request.GET or DashboardForm.defaults())
    context = {
        **admin.site.each_context(request),
        "title": "Analytics dashboard",
        "form": form,
    }
    if form.is_valid():
        start, end = form.window()
        organization = form.cleaned_data["organization"]
        data = selectors.dashboard_data(
            organization_id=organization.pk if organization else None,
            start=start,
            end=end,
            granularity=form.cleaned_data["granularity"],
        )
        segments = list(data.sentiment_by_segment)
        context.update(
            data=data,
            organization=organization,
            charts=[
                (
                    "Documents processed and failed",
                    charts.bar_chart(
                        data.labels,
                        {"processed": data.processed, "failed": data.failed},
                        title="Documents processed and failed",
                        unit="docs",
                    ),
                ),
                (
                    "Processing time (p50, p95)",
                    charts.line_chart(
                        data.labels,
                        {"p50": data.processing_p50, "p95": data.processing_p95},
                        title="Processing time per document",
                        unit="s",
                    ),
                ),
                (
                    "Queue wait (p50, p95)",
                    charts.line_chart(
                        data.labels,
                        {"p50": data.wait_p50, "p95": data.wait_p95},
                        title="Time from queued to started",
                        unit="s",
                    ),
                ),
                (
                    "Sentiment mix by segment (profiles enriched)",
                    charts.bar_chart(
                        segments,
                        {
                            label: [
                                data.sentiment_by_segment[segment].get(label, 0)
                                for segment in segments
                            ]
                            for label in SENTIMENT_LABELS
                        },
                        title="Sentiment mix by segment",
                        unit="profiles",
                    ),
                ),
                (
                    "Top failure reasons",
                    charts.horizontal_bars(
                        data.failure_reasons, title="Top failure reasons", unit="docs"
                    ),
                ),
            ],
        )
        # analytics.charts escapes every text it draws.
        context["charts"] = [(title, mark_safe(svg)) for title, svg in context["charts"]]  # noqa: S308
    return TemplateResponse(request, "admin/analytics/dashboard.html", context)
