"""Operational state: the beat canary's heartbeat."""

from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    """Stamped every minute by a task that beat sends through the broker to a worker: a fresh
    stamp proves beat, the broker, a worker on `scheduled` and the database all work, which
    a worker merely answering a ping does not."""

    name = models.CharField(max_length=64, unique=True)
    beat_at = models.DateTimeField()
    worker = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%Y-%m-%d %H:%M:%S}"


class DeadLetterStatus(models.TextChoices):
    DEAD = "dead", "Dead"
    REPLAYED = "replayed", "Replayed"
    DISCARDED = "discarded", "Discarded"


class DeadLetter(models.Model):
    """A task that failed for good (retries exhausted or an unexpected error), with its full
    arguments: django-celery-results keeps only a repr cut at 1,024 characters, which cannot
    be replayed."""

    task_id = models.CharField(max_length=255, unique=True)
    task_name = models.CharField(max_length=255)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    exception = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    worker = models.CharField(max_length=255, blank=True)
    failed_at = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=DeadLetterStatus.choices, default=DeadLetterStatus.DEAD
    )
    replays = models.PositiveSmallIntegerField(default=0)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-failed_at"]
        indexes = [models.Index(fields=["status", "-failed_at"], name="deadletter_status_idx")]

    def __str__(self) -> str:
        return f"{self.task_name} {self.task_id}"
