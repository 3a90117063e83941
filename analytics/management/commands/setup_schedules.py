"""Create every celery beat entry Docflow needs (the analytics migration does it too)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django_celery_beat.models import (
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
)

from analytics.schedules import schedules_install


class Command(BaseCommand):
    help = "Create missing beat entries; entries edited in the admin are kept unless --reset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset", action="store_true", help="Restore the default schedule of every entry."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outcome = schedules_install(
            periodic_task_model=PeriodicTask,
            crontab_model=CrontabSchedule,
            interval_model=IntervalSchedule,
            changed_model=PeriodicTasks,
            reset=options["reset"],
        )
        for name, action in outcome.items():
            self.stdout.write(f"{action:8} {name}")
