"""Create or update many agents from a CSV or JSON file, through the Celery import task."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from documents import imports
from documents.agent_import import ImportFileError
from documents.models import AgentImport, ImportStatus


class Command(BaseCommand):
    help = "Import agents from a CSV or JSON file (validated first, applied by a worker)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--organization",
            default="",
            help="Organization (slug) of rows that do not name one.",
        )
        parser.add_argument(
            "--create-organizations",
            action="store_true",
            help="Create organizations the file names that do not exist yet.",
        )
        parser.add_argument("--wait", action="store_true", help="Wait until the import is done.")
        parser.add_argument("--json", action="store_true", help="Print one JSON summary.")
        parser.add_argument(
            "--timeout", type=float, default=0, help="With --wait: give up after N seconds."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        try:
            job, check = imports.agent_import_start(
                data=data,
                filename=path.name,
                create_organizations=options["create_organizations"],
                default_organization=options["organization"],
            )
        except ImportFileError as exc:
            raise CommandError(str(exc)) from exc
        if job is None:
            summary = {"created": 0, "updated": 0, "unchanged": 0, "failed": len(check.errors)}
            summary["errors"] = [
                {"row": e.row, "message": f"{e.column}: {e.message}"} for e in check.errors
            ]
            self._print(summary, options)
            raise CommandError("No valid row: nothing was imported.")
        if options["wait"]:
            job = self._wait(job, quiet=options["json"], timeout=options["timeout"])
        self._print(imports.import_summary(job), options)

    def _wait(self, job: AgentImport, *, quiet: bool, timeout: float) -> AgentImport:
        bar = tqdm(total=100, desc="Importing", unit="%", disable=quiet, file=sys.stderr)
        deadline = time.monotonic() + timeout if timeout else None
        while job.status not in (ImportStatus.DONE, ImportStatus.FAILED):
            if deadline and time.monotonic() > deadline:
                bar.close()
                raise CommandError(f"Timed out; the import is still {job.status}.")
            time.sleep(0.5)
            job.refresh_from_db()
            bar.update(job.progress - bar.n)
        bar.close()
        if job.status == ImportStatus.FAILED:
            raise CommandError(f"The import failed: {job.error}")
        return job

    def _print(self, summary: dict[str, Any], options: dict[str, Any]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(
            "created={created} updated={updated} unchanged={unchanged} failed={failed}".format(
                **summary
            )
        )
        for error in summary["errors"]:
            self.stdout.write(f"  row {error['row']}: {error['message']}")
