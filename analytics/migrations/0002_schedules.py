"""Install every beat entry of analytics.schedules that is missing (edited ones are kept)."""

from django.db import migrations


def install(apps, schema_editor):
    from analytics.schedules import install_missing_with

    install_missing_with(apps)


def uninstall(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__startswith="analytics: "
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_initial"),
        ("documents", "0003_requeue_stuck_schedule"),
        ("profiles", "0002_nightly_enrichment_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
