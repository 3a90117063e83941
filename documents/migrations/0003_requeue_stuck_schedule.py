"""The beat entry for the stuck-work reconciler, created idempotently (editable in the admin)."""

from django.db import migrations
from django.utils import timezone

NAME = "documents: requeue stuck documents"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    # Schedules are not unique in django-celery-beat: reuse the first that fits.
    every_five = IntervalSchedule.objects.filter(
        every=5, period="minutes"
    ).first() or IntervalSchedule.objects.create(every=5, period="minutes")
    PeriodicTask.objects.update_or_create(
        name=NAME,
        defaults={
            "task": "documents.tasks.documents_requeue_stuck_task",
            "interval": every_five,
            "queue": "scheduled",
            "expire_seconds": 4 * 60,  # just under the period: a late tick is dropped
            "enabled": True,
        },
    )
    # Tell a running beat that the schedule changed.
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("documents", "0002_chunk_search_gin"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
