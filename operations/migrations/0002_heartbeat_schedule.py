"""Install the beat entries of analytics.schedules that are missing (here: the heartbeat)."""

from django.db import migrations


def install(apps, schema_editor):
    from analytics.schedules import install_missing_with

    install_missing_with(apps)


def uninstall(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name="operations: heartbeat"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("operations", "0001_initial"),
        ("analytics", "0002_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
