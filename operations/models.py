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
