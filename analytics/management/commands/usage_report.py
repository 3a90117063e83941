"""Write an organization's monthly usage report to a file (CSV or PDF)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from analytics import services
from analytics.models import ReportFormat
from documents.models import Organization


def parse_month(value: str) -> date:
    try:
        year, month = (int(part) for part in value.split("-"))
        return date(year, month, 1)
    except ValueError:
        raise CommandError(f"--month {value!r} is not a month like 2026-11.") from None


class Command(BaseCommand):
    help = "Write an organization's usage report for one month (UTC) as CSV or PDF."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", required=True, help="Organization slug.")
        parser.add_argument("--month", required=True, help="YYYY-MM")
        parser.add_argument("--format", choices=ReportFormat.values, default=ReportFormat.PDF)
        parser.add_argument("--output", required=True, help="The file to write.")

    def handle(self, *args: Any, **options: Any) -> None:
        month = parse_month(options["month"])
        if month > timezone.now().date().replace(day=1):
            raise CommandError(f"{month:%Y-%m} has not started yet.")
        organization = Organization.objects.filter(slug=options["organization"]).first()
        if organization is None:
            raise CommandError(f"No organization with slug {options['organization']!r}.")
        content = services.usage_report_render(
            organization=organization, month=month, fmt=options["format"]
        )
        output = Path(options["output"])
        if not output.parent.is_dir():
            raise CommandError(f"Folder {output.parent} does not exist.")
        output.write_bytes(content)
        self.stdout.write(f"Wrote {output} ({len(content):,} bytes).")
