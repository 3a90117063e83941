"""Profiles in the admin: segment, sentiment and engagement at a glance; enrichment on demand."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from documents.paginators import EstimatedCountPaginator
from operations.badges import badge
from operations.confirm import confirm_when_many
from profiles import services
from profiles.models import CustomerProfile, Interaction

LATEST_INTERACTIONS = 50


@admin.register(CustomerProfile)
class CustomerProfileAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "organization",
        "segment",
        "sentiment_label",
        "sentiment_score",
        "engagement_score",
        "last_seen",
        "interaction_count",
        "enrichment_badge",
    )
    list_filter = ("segment", "enrichment_status", "organization")
    list_select_related = ("organization",)
    search_fields = ("external_id", "name", "email")
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    show_facets = admin.ShowFacets.NEVER
    actions = ("enrich_selected",)
    readonly_fields = (
        "latest_interactions",
        "sentiment_score",
        "sentiment_label",
        "sentiment_trend",
        "top_topics",
        "engagement_score",
        "segment",
        "preferred_hours",
        "preferred_weekdays",
        "preferred_channel",
        "first_seen",
        "last_seen",
        "interaction_count",
        "enrichment_status",
        "enrichment_progress",
        "enrichment_error",
        "enrichment_attempts",
        "enriched_at",
    )

    @admin.display(description="Interactions")
    @admin.display(description="enrichment", ordering="enrichment_status")
    def enrichment_badge(self, profile: CustomerProfile) -> str:
        return badge(profile.enrichment_status, profile.get_enrichment_status_display())

    def latest_interactions(self, profile: CustomerProfile) -> str:
        """The latest ones, newest first; the full history is paginated in its own list."""
        if profile.pk is None:
            return "-"
        latest = profile.interactions.select_related("agent").order_by("-occurred_at", "-id")[
            :LATEST_INTERACTIONS
        ]
        url = reverse("admin:profiles_interaction_changelist") + f"?profile__id__exact={profile.pk}"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{i.occurred_at:%Y-%m-%d %H:%M}",
                    i.get_direction_display(),
                    i.channel,
                    i.agent or "",
                    Truncator(i.text).chars(200),
                )
                for i in latest
            ),
        )
        return format_html(
            "<table><thead><tr><th>When (UTC)</th><th>Direction</th><th>Channel</th>"
            "<th>Agent</th><th>Text</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">All interactions of this profile</a></p>',
            rows,
            url,
        )

    @admin.action(description="Enrich selected profiles", permissions=["change"])
    @confirm_when_many("Enrich {count} {name}?")
    def enrich_selected(self, request: HttpRequest, queryset: QuerySet[CustomerProfile]) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        queued = services.profiles_request_enrichment(
            profile_ids=selected, countdown=0, batch_size=services.BULK_BATCH
        )
        self.message_user(request, f"Queued enrichment of {queued} profiles.", messages.SUCCESS)
        if queued < len(selected):
            self.message_user(
                request,
                f"{len(selected) - queued} were already queued.",
                messages.WARNING,
            )


@admin.register(Interaction)
class InteractionAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "profile", "agent", "channel", "direction", "tokens_used")
    list_filter = ("direction", "channel")
    list_select_related = ("profile", "agent")
    search_fields = ("profile__external_id",)
    raw_id_fields = ("profile", "agent")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    show_facets = admin.ShowFacets.NEVER
