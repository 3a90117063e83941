"""Profiles in the admin: segment, sentiment and engagement at a glance; enrichment on demand."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from profiles import services
from profiles.models import CustomerProfile, Interaction


class InteractionInline(admin.TabularInline):
    model = Interaction
    fields = ("occurred_at", "direction", "channel", "agent", "text", "tokens_used")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("-occurred_at", "-id")
    max_num = 0  # read-only history; newest first

    def get_queryset(self, request: HttpRequest) -> QuerySet[Interaction]:
        return super().get_queryset(request).select_related("agent")


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
        "enrichment_status",
    )
    list_filter = ("segment", "enrichment_status", "organization")
    list_select_related = ("organization",)
    search_fields = ("external_id", "name", "email")
    show_full_result_count = False
    actions = ("enrich_selected",)
    inlines = (InteractionInline,)
    readonly_fields = (
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

    @admin.action(description="Enrich selected profiles", permissions=["change"])
    def enrich_selected(self, request: HttpRequest, queryset: QuerySet[CustomerProfile]) -> None:
        selected = list(queryset.values_list("pk", flat=True))
        queued = services.profiles_request_enrichment(profile_ids=selected, countdown=0)
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
