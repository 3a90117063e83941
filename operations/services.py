"""Operations writes and checks: the heartbeat, the health check, task counters in Redis."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from operations.models import Heartbeat

logger = logging.getLogger(__name__)
CANARY = "beat"


def heartbeat_stamp(*, worker: str) -> None:
    Heartbeat.objects.update_or_create(
        name=CANARY, defaults={"beat_at": timezone.now(), "worker": worker}
    )


def heartbeat_age_seconds() -> float | None:
    beat_at = Heartbeat.objects.filter(name=CANARY).values_list("beat_at", flat=True).first()
    return None if beat_at is None else (timezone.now() - beat_at).total_seconds()


@dataclass
class Health:
    healthy: bool = True
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, ok: bool, **details: Any) -> None:
        self.checks[name] = {"ok": ok, **details}
        self.healthy = self.healthy and ok

    def as_dict(self) -> dict[str, Any]:
        return {"status": "ok" if self.healthy else "unhealthy", "checks": self.checks}


def _timed(check: Any) -> tuple[bool, dict[str, Any]]:
    started = time.monotonic()
    try:
        check()
    except Exception as exc:
        return False, {"error": f"{type(exc).__name__}: {exc}"}
    return True, {"ms": round((time.monotonic() - started) * 1000, 1)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=3)


def health_check() -> Health:
    """Database, broker, and a heartbeat younger than DOCFLOW_HEARTBEAT_MAX_AGE_SECONDS."""
    from config.celery import app

    health = Health()
    ok, details = _timed(_database)
    health.add("database", ok, **details)
    if app.conf.task_always_eager:
        health.add("broker", True, mode="inline: no broker configured")
        return health
    ok, details = _timed(_broker)
    health.add("broker", ok, **details)
    if not health.checks["database"]["ok"]:
        return health
    age = heartbeat_age_seconds()
    limit = settings.DOCFLOW["HEARTBEAT_MAX_AGE_SECONDS"]
    if age is None:
        health.add("heartbeat", False, error="No heartbeat yet: are beat and a worker running?")
    else:
        health.add(
            "heartbeat",
            age <= limit,
            age_seconds=round(age, 1),
            **(
                {} if age <= limit else {"error": f"Older than {limit} s: beat or workers stopped."}
            ),
        )
    return health
