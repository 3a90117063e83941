"""Rollup snapshots, their fill state, and monthly usage reports.

A snapshot holds one scope's figures for one complete UTC period. Figures are computed in SQL
from the source tables and replaced as a whole, so a period computed twice leaves one row per
scope and the dashboard and reports never read the raw tables.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from documents.models import Agent, Organization


class Granularity(models.TextChoices):
    HOURLY = "hourly", "Hourly"
    DAILY = "daily", "Daily"


class Scope(models.TextChoices):
    SYSTEM = "system", "System"
    ORGANIZATION = "organization", "Organization"
    AGENT = "agent", "Agent"


class Snapshot(models.Model):
    """One scope's figures for one period; `scope_id` is 0 for the system, else the object's id.

    `scope_id` (rather than the nullable foreign keys) carries the uniqueness, since NULLs are
    distinct in a unique constraint. Scopes without activity get no row; the system row is
    always written, so a filled period is visible even when it was quiet.
    """

    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    period_start = models.DateTimeField()
    scope = models.CharField(max_length=16, choices=Scope.choices)
    scope_id = models.PositiveBigIntegerField(default=0)
    organization = models.ForeignKey(
        Organization,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,  # indexed by snapshot_org_period_idx
    )
    agent = models.ForeignKey(
        Agent, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    documents_uploaded = models.PositiveIntegerField(default=0)
    documents_processed = models.PositiveIntegerField(default=0)
    documents_failed = models.PositiveIntegerField(default=0)
    documents_duplicate = models.PositiveIntegerField(default=0)
    pages = models.PositiveBigIntegerField(default=0)
    chunks = models.PositiveBigIntegerField(default=0)
    processing_seconds_p50 = models.FloatField(null=True, blank=True)
    processing_seconds_p95 = models.FloatField(null=True, blank=True)
    processing_seconds_max = models.FloatField(null=True, blank=True)
    queue_wait_seconds_p50 = models.FloatField(null=True, blank=True)
    queue_wait_seconds_p95 = models.FloatField(null=True, blank=True)
    profiles_enriched = models.PositiveIntegerField(default=0)
    interactions = models.PositiveIntegerField(default=0)
    tokens_used = models.PositiveBigIntegerField(default=0)
    agents_created = models.PositiveIntegerField(default=0)
    # Breakdowns: {error_code: count} (top reasons), {segment: {label: count}},
    # {task_name: {state: count}} (system scope only).
    failure_reasons = models.JSONField(default=dict, blank=True)
    sentiment_by_segment = models.JSONField(default=dict, blank=True)
    tasks_by_state = models.JSONField(default=dict, blank=True)

    computed_at = models.DateTimeField()

    class Meta:
        ordering = ["-period_start", "scope", "scope_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "period_start", "scope", "scope_id"],
                name="snapshot_unique_period_scope",
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "granularity", "period_start"],
                name="snapshot_org_period_idx",
            ),
            models.Index(fields=["period_start"], name="snapshot_period_idx"),  # the changelist
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.period_start:%Y-%m-%d %H:%M} {self.scope} {self.scope_id}"


class FillState(models.Model):
    """How far each granularity is filled (Zulip's FillState): `period_start` is the last
    period a run began (state `started`) or finished (state `done`). A run that died leaves
    `started`, and the next run recomputes that period before going on."""

    class State(models.TextChoices):
        STARTED = "started", "Started"
        DONE = "done", "Done"

    granularity = models.CharField(max_length=8, choices=Granularity.choices, unique=True)
    period_start = models.DateTimeField()
    state = models.CharField(max_length=8, choices=State.choices)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.granularity}: {self.state} {self.period_start:%Y-%m-%d %H:%M}"


class ReportFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    CSV = "csv", "CSV"


class ReportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class UsageReport(models.Model):
    """An organization's usage for one calendar month (UTC), as a downloadable file.

    One row per (organization, month, format): asking again regenerates the same row's file.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="usage_reports"
    )
    month = models.DateField(help_text="The first day of the month (UTC).")
    format = models.CharField(max_length=4, choices=ReportFormat.choices)
    status = models.CharField(
        max_length=16, choices=ReportStatus.choices, default=ReportStatus.QUEUED
    )
    file = models.FileField(upload_to="reports/%Y/%m/", max_length=500, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-month", "organization__name", "format"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "month", "format"], name="usage_report_unique_month"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.month:%Y-%m} ({self.get_format_display()})"
