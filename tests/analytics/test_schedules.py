"""Beat entries: created by migrate, idempotent, editable, all UTC on `scheduled`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from analytics.schedules import ENTRIES
from config.celery import app

pytestmark = pytest.mark.django_db

PERIODS = {
    "analytics: hourly rollup": timedelta(hours=1),
    "analytics: daily rollup": timedelta(days=1),
    "analytics: monthly usage reports": timedelta(days=28),
    "celery.backend_cleanup": timedelta(days=1),
    "documents: requeue stuck documents": timedelta(minutes=5),
    "operations: heartbeat": timedelta(minutes=1),
    "profiles: re-enrich stale profiles nightly": timedelta(days=1),
}


def test_migrate_creates_every_entry_on_the_scheduled_queue_expiring_within_its_period():
    entries = {entry.name: entry for entry in PeriodicTask.objects.all()}

    assert set(PERIODS) <= set(entries)
    for name, period in PERIODS.items():
        entry = entries[name]
        assert entry.enabled, name
        assert entry.queue == "scheduled", name
        assert timedelta(0) < timedelta(seconds=entry.expire_seconds) < period, name
        if entry.crontab is not None:
            assert str(entry.crontab.timezone) == "UTC", name
    hourly = entries["analytics: hourly rollup"]
    assert (hourly.crontab.minute, hourly.crontab.hour) == ("5", "*")
    assert json.loads(hourly.kwargs) == {"granularity": "hourly"}
    daily = entries["analytics: daily rollup"]
    assert (daily.crontab.minute, daily.crontab.hour) == ("15", "0")
    monthly = entries["analytics: monthly usage reports"]
    assert (monthly.crontab.hour, monthly.crontab.day_of_month) == ("1", "1")


def test_every_scheduled_task_exists_and_routes_to_the_scheduled_queue():
    app.loader.import_default_modules()
    for entry in ENTRIES:
        assert entry.task in app.tasks, entry.task
    route = app.amqp.router.route({}, "celery.backend_cleanup")
    assert route["queue"].name == "scheduled"
    assert app.amqp.router.route({}, "analytics.tasks.analytics_fill_task")["queue"].name == (
        "scheduled"
    )
    assert app.amqp.router.route({}, "analytics.tasks.usage_report_task")["queue"].name == "low"


def test_setup_schedules_keeps_admin_edits_unless_reset():
    entry = PeriodicTask.objects.get(name="analytics: daily rollup")
    edited = CrontabSchedule.objects.create(minute="45", hour="1", timezone="UTC")
    entry.crontab = edited
    entry.save()
    PeriodicTask.objects.filter(name="analytics: hourly rollup").delete()
    count = PeriodicTask.objects.count()

    out = StringIO()
    call_command("setup_schedules", stdout=out)

    assert "created  analytics: hourly rollup" in out.getvalue()
    assert PeriodicTask.objects.count() == count + 1
    assert PeriodicTask.objects.get(name="analytics: daily rollup").crontab_id == edited.pk

    call_command("setup_schedules", "--reset", stdout=StringIO())

    restored = PeriodicTask.objects.get(name="analytics: daily rollup").crontab
    assert (restored.minute, restored.hour) == ("15", "0")
    assert PeriodicTask.objects.count() == count + 1  # nothing duplicated


def test_the_daily_entry_stays_at_0015_utc_across_a_dst_change(settings):
    # The display zone changes its clock on 25 October 2026; the schedule must not.
    settings.TIME_ZONE = "Europe/Berlin"
    schedule = PeriodicTask.objects.get(name="analytics: daily rollup").crontab.schedule
    runs = []
    last = datetime(2026, 10, 23, 0, 15, tzinfo=UTC)
    for _ in range(4):
        now = last + timedelta(minutes=1)
        schedule.nowfun = lambda now=now: now
        remaining = schedule.remaining_estimate(last)
        last = (now + remaining).astimezone(UTC)
        runs.append(last)

    assert [run.strftime("%d %H:%M") for run in runs] == [
        "24 00:15",
        "25 00:15",
        "26 00:15",
        "27 00:15",
    ]
