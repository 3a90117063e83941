"""Re-enqueue documents stuck in queued or processing (what the beat reconciler does)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from documents import services


class Command(BaseCommand):
    help = "Re-enqueue documents whose message was lost (broker restart, killed worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=float,
            help="Minutes queued (with the broker's queues empty) before a document counts as "
            "lost (default: DOCFLOW_QUEUED_LEASE_SECONDS). Processing documents always get the "
            "hard time limit + 60 s, so running work is never interrupted.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        docflow = settings.DOCFLOW
        queued_for = timedelta(seconds=docflow["QUEUED_LEASE_SECONDS"])
        if options["older_than"] is not None:
            queued_for = timedelta(minutes=options["older_than"])
        processing_for = timedelta(seconds=docflow["PROCESS_TIME_LIMIT"] + 60)
        outcome = services.documents_requeue_stuck(
            queued_for=queued_for, processing_for=processing_for
        )
        self.stdout.write(f"Requeued {outcome.requeued}, failed {outcome.failed}.")
        if outcome.skipped_queued:
            self.stdout.write(
                "Queued documents were left alone: the broker still holds document messages."
            )
