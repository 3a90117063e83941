"""Customer profiles and their interactions with agents, enriched in the background.

The enrichment columns are written only by the enrichment task (profiles.services), which
replaces them as a whole; the `enrichment_*` columns are the row's processing state, as on
documents.Document.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from documents.models import Agent, Organization


class Segment(models.TextChoices):
    NEW = "new", "New"
    ACTIVE = "active", "Active"
    CHAMPION = "champion", "Champion"
    AT_RISK = "at_risk", "At risk"
    DORMANT = "dormant", "Dormant"


class EnrichmentStatus(models.TextChoices):
    NEVER = "never", "Never enriched"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class CustomerProfile(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="customer_profiles"
    )
    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    attributes = models.JSONField(default=dict, blank=True)

    sentiment_score = models.FloatField(null=True, blank=True)
    sentiment_label = models.CharField(max_length=16, blank=True)
    sentiment_trend = models.FloatField(null=True, blank=True)
    top_topics = models.JSONField(default=list, blank=True)
    engagement_score = models.FloatField(null=True, blank=True)
    segment = models.CharField(max_length=16, choices=Segment.choices, blank=True)
    preferred_hours = models.JSONField(default=list, blank=True)
    preferred_weekdays = models.JSONField(default=list, blank=True)
    preferred_channel = models.CharField(max_length=32, blank=True)
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    interaction_count = models.PositiveIntegerField(default=0)

    enrichment_status = models.CharField(
        max_length=16, choices=EnrichmentStatus.choices, default=EnrichmentStatus.NEVER
    )
    enrichment_progress = models.PositiveSmallIntegerField(default=0)
    enrichment_error = models.TextField(blank=True)
    enrichment_task_id = models.CharField(max_length=255, blank=True)
    enrichment_attempts = models.PositiveSmallIntegerField(default=0)
    enrichment_requested_at = models.DateTimeField(null=True, blank=True)
    enriched_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_seen", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="profile_unique_external_id"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "segment"], name="profile_org_segment_idx"),
            models.Index(fields=["organization", "-last_seen"], name="profile_org_last_seen_idx"),
            models.Index(
                fields=["enriched_at"],
                name="profile_enriched_at_idx",
            ),
            models.Index(
                fields=["enrichment_status", "enrichment_requested_at"],
                name="profile_enrich_pending_idx",
                condition=Q(enrichment_status__in=["queued", "processing"]),
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.external_id


class Direction(models.TextChoices):
    INBOUND = "in", "Inbound"
    OUTBOUND = "out", "Outbound"


class Interaction(models.Model):
    profile = models.ForeignKey(
        CustomerProfile, on_delete=models.CASCADE, related_name="interactions", db_index=False
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.SET_NULL, related_name="interactions"
    )
    channel = models.CharField(max_length=32)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    text = models.TextField(blank=True)
    occurred_at = models.DateTimeField()
    tokens_used = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["profile", "-occurred_at"], name="interaction_profile_time_idx"),
            models.Index(fields=["occurred_at"], name="interaction_time_idx"),
            models.Index(fields=["agent", "occurred_at"], name="interaction_agent_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.channel} {self.occurred_at:%Y-%m-%d %H:%M}"
