"""Every celery beat entry Docflow runs, and their idempotent installation.

Used by the data migration (with historical models) and by `manage.py setup_schedules` (with
the real ones). Entries are rows in django-celery-beat's tables, editable in the admin: an
existing entry is left as the operator edited it unless `reset=True`. All times are UTC and
every entry goes to the `scheduled` queue and expires just under its period, so a tick that
waited behind a backlog is dropped rather than run late on top of the next one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

HOUR = 60 * 60
DAY = 24 * HOUR


@dataclass(frozen=True)
class BeatEntry:
    name: str
    task: str
    expire_seconds: int
    crontab: dict[str, str] | None = None  # minute, hour, day_of_week, day_of_month, month_of_year
    every_minutes: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


ENTRIES: tuple[BeatEntry, ...] = (
    BeatEntry(
        name="analytics: hourly rollup",
        task="analytics.tasks.analytics_fill_task",
        crontab={"minute": "5"},
        kwargs={"granularity": "hourly"},
        expire_seconds=HOUR - 5 * 60,
        description="At :05, fills the hour before (and any hour a missed run left).",
    ),
    BeatEntry(
        name="analytics: daily rollup",
        task="analytics.tasks.analytics_fill_task",
        crontab={"minute": "15", "hour": "0"},
        kwargs={"granularity": "daily"},
        expire_seconds=DAY - HOUR,
        description="At 00:15 UTC, fills the day before (and any day a missed run left).",
    ),
    BeatEntry(
        name="analytics: monthly usage reports",
        task="analytics.tasks.usage_reports_monthly_task",
        crontab={"minute": "0", "hour": "1", "day_of_month": "1"},
        expire_seconds=27 * DAY,  # under the shortest month
        description="On the 1st at 01:00 UTC, a report of the month before per organization.",
    ),
    BeatEntry(
        # The name and values celery beat itself installs at start (it rewrites this row
        # each time); celery.backend_cleanup is routed to `scheduled` in CELERY_TASK_ROUTES.
        name="celery.backend_cleanup",
        task="celery.backend_cleanup",
        crontab={"minute": "0", "hour": "4"},
        expire_seconds=12 * HOUR,
        description="Deletes task results older than CELERY_RESULT_EXPIRES.",
    ),
    BeatEntry(
        name="operations: heartbeat",
        task="operations.tasks.heartbeat_task",
        every_minutes=1,
        expire_seconds=50,
        description="Stamps the heartbeat /healthz checks: proves beat, broker, a worker on "
        "`scheduled` and the database work.",
    ),
    BeatEntry(
        name="documents: requeue stuck documents",
        task="documents.tasks.documents_requeue_stuck_task",
        every_minutes=5,
        expire_seconds=4 * 60,
        description="Re-enqueues documents whose message was lost (broker restart, SIGKILL).",
    ),
    BeatEntry(
        name="profiles: re-enrich stale profiles nightly",
        task="profiles.tasks.profiles_enrich_stale_task",
        crontab={"minute": "30", "hour": "2"},
        kwargs={"stale_hours": 24},
        expire_seconds=DAY - HOUR,
        description="At 02:30 UTC, re-enriches profiles not enriched for a day.",
    ),
)


def schedules_install(
    *,
    periodic_task_model: Any,
    crontab_model: Any,
    interval_model: Any,
    changed_model: Any,
    entries: tuple[BeatEntry, ...] = ENTRIES,
    reset: bool = False,
) -> dict[str, str]:
    """Create missing entries (and with `reset`, restore the defaults of existing ones);
    returns {name: "created" | "reset" | "kept"}. Models are passed in so that a migration
    can use its historical ones."""
    outcome: dict[str, str] = {}
    for entry in entries:
        existing = periodic_task_model.objects.filter(name=entry.name).first()
        if existing is not None and not reset:
            outcome[entry.name] = "kept"
            continue
        fields = {
            "task": entry.task,
            "kwargs": json.dumps(entry.kwargs),
            "queue": "scheduled",
            "expire_seconds": entry.expire_seconds,
            "description": entry.description,
            "enabled": True,
            "crontab": None,
            "interval": None,
        }
        if entry.crontab is not None:
            cron = {
                "minute": "*",
                "hour": "*",
                "day_of_week": "*",
                "day_of_month": "*",
                "month_of_year": "*",
                **entry.crontab,
                "timezone": "UTC",
            }
            # Schedules are not unique in django-celery-beat: reuse the first that fits.
            fields["crontab"] = crontab_model.objects.filter(
                **cron
            ).first() or crontab_model.objects.create(**cron)
        else:
            interval = {"every": entry.every_minutes, "period": "minutes"}
            fields["interval"] = interval_model.objects.filter(
                **interval
            ).first() or interval_model.objects.create(**interval)
        periodic_task_model.objects.update_or_create(name=entry.name, defaults=fields)
        outcome[entry.name] = "created" if existing is None else "reset"
    if any(action != "kept" for action in outcome.values()):
        # Tell a running beat that the schedule changed.
        changed_model.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})
    return outcome


def install_missing_with(apps: Any) -> dict[str, str]:
    """For data migrations: install the missing entries with the migration's historical
    models."""
    return schedules_install(
        periodic_task_model=apps.get_model("django_celery_beat", "PeriodicTask"),
        crontab_model=apps.get_model("django_celery_beat", "CrontabSchedule"),
        interval_model=apps.get_model("django_celery_beat", "IntervalSchedule"),
        changed_model=apps.get_model("django_celery_beat", "PeriodicTasks"),
    )
