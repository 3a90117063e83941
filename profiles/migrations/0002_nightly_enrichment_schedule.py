"""The nightly re-enrichment of stale profiles on beat (UTC, editable in the admin)."""

import json

from django.db import migrations
from django.utils import timezone

NAME = "profiles: re-enrich stale profiles nightly"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    fields = {
        "minute": "30",
        "hour": "2",
        "day_of_week": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "timezone": "UTC",
    }
    # Schedules are not unique in django-celery-beat: reuse the first that fits.
    nightly = CrontabSchedule.objects.filter(**fields).first() or CrontabSchedule.objects.create(
        **fields
    )
    PeriodicTask.objects.update_or_create(
        name=NAME,
        defaults={
            "task": "profiles.tasks.profiles_enrich_stale_task",
            "crontab": nightly,
            "kwargs": json.dumps({"stale_hours": 24}),
            "queue": "scheduled",
            "expire_seconds": 23 * 60 * 60,  # just under the period: a late tick is dropped
            "enabled": True,
        },
    )
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
