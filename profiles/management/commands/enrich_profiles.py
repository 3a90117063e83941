"""Queue enrichment of profiles: all of an organization's, or those not enriched lately."""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q, QuerySet
from django.utils import timezone
from tqdm import tqdm

from profiles import services
from profiles.models import CustomerProfile, EnrichmentStatus


class Command(BaseCommand):
    help = "Queue enrichment of customer profiles (on the medium queue)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", help="Only this organization's profiles (slug).")
        parser.add_argument(
            "--stale-hours",
            type=float,
            help="Only profiles not enriched within this many hours (default: all).",
        )
        parser.add_argument("--wait", action="store_true", help="Wait until all are enriched.")
        parser.add_argument("--json", action="store_true", help="Print one JSON summary.")
        parser.add_argument("--timeout", type=float, default=0, help="With --wait: seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        profiles = CustomerProfile.objects.all()
        if options["organization"]:
            profiles = profiles.filter(organization__slug=options["organization"])
            if not profiles.exists():
                raise CommandError(f"No profiles for organization {options['organization']!r}.")
        if options["stale_hours"] is not None:
            cutoff = timezone.now() - timedelta(hours=options["stale_hours"])
            profiles = profiles.filter(Q(enriched_at__isnull=True) | Q(enriched_at__lt=cutoff))
        ids = list(profiles.values_list("pk", flat=True))
        queued = 0
        for start in range(0, len(ids), 5000):
            queued += services.profiles_request_enrichment(
                profile_ids=ids[start : start + 5000],
                countdown=0,
                batch_size=services.BULK_BATCH,
            )
        if options["wait"]:
            scope = CustomerProfile.objects.all()
            if options["organization"]:
                scope = scope.filter(organization__slug=options["organization"])
            self._wait(scope, len(ids), quiet=options["json"], timeout=options["timeout"])
        summary = {"selected": len(ids), "queued": queued}
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(" ".join(f"{key}={value}" for key, value in summary.items()))

    def _wait(
        self, scope: QuerySet[CustomerProfile], total: int, *, quiet: bool, timeout: float
    ) -> None:
        """Until nothing is pending in the scope: a count on the partial index of pending
        profiles, not a list of 100,000 ids sent twice a second."""
        pending = scope.filter(
            enrichment_status__in=[EnrichmentStatus.QUEUED, EnrichmentStatus.PROCESSING]
        )
        bar = tqdm(total=total, desc="Enriching", disable=quiet, file=sys.stderr)
        deadline = time.monotonic() + timeout if timeout else None
        while (left := pending.count()) > 0:
            bar.update(max(total - left, 0) - bar.n)
            if deadline and time.monotonic() > deadline:
                bar.close()
                raise CommandError(f"Timed out with {left} profiles still queued.")
            time.sleep(0.5)
        bar.update(total - bar.n)
        bar.close()
