"""Analytics in the admin: snapshots and fill state (read-only), usage reports, and the
"Generate usage reports" action on organizations. The dashboard lives in analytics.views."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from analytics import services
from analytics.forms import UsageReportRequestForm
from analytics.models import FillState, ReportStatus, Snapshot, UsageReport
from documents.paginators import EstimatedCountPaginator
from operations.badges import badge
from operations.confirm import confirm_when_many


class ReadOnlyAdmin(admin.ModelAdmin):
    """Computed rows: visible for inspection, changed only by the rollups."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    change_list_template = "admin/analytics/snapshot/change_list.html"
    list_display = (
        "period_start",
        "granularity",
        "scope",
        "organization",
        "agent",
        "documents_uploaded",
        "documents_processed",
        "documents_failed",
        "processing_seconds_p95",
        "interactions",
    )
    list_filter = ("granularity", "scope")
    list_select_related = ("organization", "agent")
    date_hierarchy = "period_start"
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    show_facets = admin.ShowFacets.NEVER


@admin.register(FillState)
class FillStateAdmin(ReadOnlyAdmin):
    list_display = ("granularity", "state", "period_start", "updated_at")


@admin.register(UsageReport)
class UsageReportAdmin(admin.ModelAdmin):
    list_display = (
        "organization",
        "month",
        "format",
        "status_badge",
        "download",
        "finished_at",
        "error",
    )
    list_filter = ("status", "format", "month")
    list_select_related = ("organization",)
    search_fields = ("organization__name", "organization__slug")
    readonly_fields = (
        "organization",
        "month",
        "format",
        "status",
        "download",
        "error",
        "task_id",
        "attempts",
        "created_by",
        "created_at",
        "queued_at",
        "finished_at",
    )
    exclude = ("file",)
    actions = ("regenerate",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # reports are asked for from Organizations (or the monthly beat entry)

    @admin.display(description="status", ordering="status")
    def status_badge(self, report: UsageReport) -> str:
        return badge(report.status, report.get_status_display())

    @admin.display(description="file")
    def download(self, report: UsageReport) -> str:
        if not report.file or report.status != ReportStatus.DONE:
            return "-"
        url = reverse("admin:analytics_usagereport_download", args=[report.pk])
        return format_html('<a href="{}">Download {}</a>', url, report.format)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:report_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="analytics_usagereport_download",
            ),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, report_id: int) -> FileResponse:
        """Reports are private: served through the admin's permission check, never from a
        public media URL."""
        report = UsageReport.objects.filter(pk=report_id).first()
        if report is None or not self.has_view_permission(request, report):
            raise Http404("No such report.")
        if report.status != ReportStatus.DONE or not report.file:
            raise Http404("This report has no file yet.")
        try:
            handle = report.file.open("rb")
        except FileNotFoundError:
            raise Http404("The report's file is missing: regenerate it.") from None
        return FileResponse(
            handle,
            as_attachment=True,
            filename=f"usage-{report.organization.slug}-{report.month:%Y-%m}.{report.format}",
        )

    @admin.action(description="Regenerate the selected reports", permissions=["change"])
    @confirm_when_many("Regenerate {count} {name}?")
    def regenerate(self, request: HttpRequest, queryset: QuerySet[UsageReport]) -> None:
        queued = 0
        for (month, fmt), ids in _group_by_month_and_format(queryset).items():
            queued += len(
                services.usage_reports_request(
                    organization_ids=ids, month=month, formats=[fmt], created_by=request.user
                )
            )
        self.message_user(request, f"Queued {queued} report(s).", messages.SUCCESS)


def _group_by_month_and_format(queryset: QuerySet[UsageReport]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for organization_id, month, fmt in queryset.values_list("organization_id", "month", "format"):
        groups.setdefault((month, fmt), []).append(organization_id)
    return groups


@admin.action(description="Generate usage reports…", permissions=["view"])
def generate_usage_reports(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet
) -> HttpResponse | None:
    """Asks for the month and formats on an intermediate page, then queues the reports."""
    if not request.user.has_perm("analytics.add_usagereport"):
        modeladmin.message_user(request, "You may not create usage reports.", messages.ERROR)
        return None
    form = UsageReportRequestForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        try:
            reports = services.usage_reports_request(
                organization_ids=list(queryset.values_list("pk", flat=True)),
                month=form.cleaned_data["month"],
                formats=form.cleaned_data["formats"],
                created_by=request.user,
            )
        except ValueError as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
            return None
        modeladmin.message_user(
            request,
            f"Queued {len(reports)} usage report(s) for {form.cleaned_data['month']:%B %Y}; "
            "they appear under Usage reports when ready.",
            messages.SUCCESS,
        )
        return None
    return TemplateResponse(
        request,
        "admin/analytics/usage_report_request.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": "Generate usage reports",
            "form": form,
            "organizations": queryset,
            "opts": modeladmin.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        },
    )
