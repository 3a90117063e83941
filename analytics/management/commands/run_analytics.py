"""Fill rollup periods on demand: what the hourly and daily beat entries do, or a backfill."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime

from analytics import services
from analytics.models import Granularity


def parse_moment(value: str) -> datetime:
    """An ISO date or datetime; naive values are UTC, like every analytics period."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"{value!r} is not an ISO date or datetime (2026-11-01T00:00).")
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Fill analytics snapshots. Without --from: every complete period since the last run. "
        "With --from/--to: every complete period in that range that has no snapshot yet "
        "(all of them with --recompute)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--period", choices=Granularity.values, required=True)
        parser.add_argument("--from", dest="start", help="ISO date or datetime, UTC if naive.")
        parser.add_argument("--to", dest="end", help="ISO date or datetime (exclusive).")
        parser.add_argument(
            "--recompute",
            action="store_true",
            help="Recompute periods of the range that already have snapshots (late data).",
        )
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        start = parse_moment(options["start"]) if options["start"] else None
        end = parse_moment(options["end"]) if options["end"] else None
        if end is not None and start is None:
            raise CommandError("--to needs --from.")
        if start is not None and end is not None and end <= start:
            raise CommandError("--to must be after --from.")
        summary = services.analytics_fill(
            granularity=options["period"],
            start=start,
            end=end,
            recompute=options["recompute"],
            wait=True,
        )
        if options["json"]:
            self.stdout.write(json.dumps(summary.as_dict()))
            return
        if not summary.periods:
            self.stdout.write(f"No {summary.granularity} period to fill.")
            return
        self.stdout.write(
            f"Filled {summary.periods} {summary.granularity} period(s) from "
            f"{summary.first_period} to {summary.last_period}: {summary.snapshots} snapshots "
            f"in {summary.seconds:.2f} s."
        )
