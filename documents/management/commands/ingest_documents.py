"""Register every file under PATH... for an agent and queue them for processing.

Streams the walk, inserts in bulk and publishes in batches, so 500,000 files cost one query
per thousand files rather than one per file.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from documents import services
from documents.archives import ArchiveError, SourceFile, is_archive_name, iter_archive, iter_paths
from documents.bulk import StorageFullError
from documents.models import Agent, Document, DocumentStatus

UNFINISHED = ("pending", "queued", "processing")


class Command(BaseCommand):
    help = "Register documents from folders, files and .zip archives, and queue them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path, help="Files, folders or .zip files.")
        parser.add_argument("--agent", required=True, help="Slug of the agent that owns them.")
        parser.add_argument("--organization", help="Organization slug, when agents share slugs.")
        parser.add_argument(
            "--wait", action="store_true", help="Wait until every document is finished."
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON summary.")
        parser.add_argument(
            "--queue", default="low", choices=["high", "medium", "low"], help="Default: low."
        )
        parser.add_argument(
            "--timeout", type=float, default=0, help="With --wait: give up after N seconds."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            agent = services.agent_resolve(
                agent_slug=options["agent"], organization_slug=options["organization"]
            )
        except (Agent.DoesNotExist, Agent.MultipleObjectsReturned) as exc:
            raise CommandError(str(exc)) from exc
        missing = [str(p) for p in options["paths"] if not p.exists()]
        if missing:
            raise CommandError(f"Not found: {', '.join(missing)}")

        batch_id = uuid.uuid4()
        quiet = options["json"] or options["verbosity"] == 0
        walk_errors: list[dict[str, str]] = []
        progress = tqdm(desc="Registering", unit=" files", disable=quiet, file=sys.stderr)
        started = time.monotonic()
        try:
            stats = services.documents_register(
                agent=agent,
                sources=self._sources(options["paths"], walk_errors),
                batch_id=batch_id,
                queue=options["queue"],
                on_batch=progress.update,
            )
        except StorageFullError as exc:
            raise CommandError(
                f"{exc} The files registered before it are kept and queued; run the same "
                "command again after making room (files already stored count as duplicates)."
            ) from exc
        progress.close()
        elapsed = time.monotonic() - started
        if not quiet:
            self.stderr.write(
                f"Registered {stats.registered} files in {elapsed:.1f}s "
                f"({stats.queued} queued, {stats.duplicates} duplicates, {stats.failed} refused)."
            )
        if options["wait"]:
            self._wait(batch_id, stats.registered, quiet=quiet, timeout=options["timeout"])
        summary = self._summary(batch_id, walk_errors + stats.failures)
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self.stdout.write(
                "total={total} done={done} failed={failed} duplicates={duplicates} "
                "cancelled={cancelled} unfinished={unfinished}".format(**summary)
            )
            for failure in summary["failures"]:
                self.stdout.write(f"  FAILED {failure['path']}: {failure['error']}")

    def _sources(self, paths: list[Path], errors: list[dict[str, str]]) -> Iterator[SourceFile]:
        limits = services.archive_limits()
        for path in iter_paths(paths):
            if not is_archive_name(path):
                yield SourceFile(name=path, path=path)
                continue
            try:
                yield from iter_archive(Path(path), limits, prefix=f"{path}/")
            except ArchiveError as exc:
                errors.append({"path": path, "error": str(exc)})

    def _wait(self, batch_id: uuid.UUID, total: int, *, quiet: bool, timeout: float) -> None:
        bar = tqdm(total=total, desc="Processing", unit=" docs", disable=quiet, file=sys.stderr)
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            counts = services.batch_status_counts(batch_id)
            finished = total - sum(counts[s] for s in UNFINISHED)
            bar.update(finished - bar.n)
            if finished >= total:
                break
            if deadline and time.monotonic() > deadline:
                bar.close()
                raise CommandError(f"Timed out with {total - finished} documents unfinished.")
            time.sleep(1)
        bar.close()

    def _summary(self, batch_id: uuid.UUID, unregistered: list[dict[str, str]]) -> dict[str, Any]:
        """Counts from the rows, plus the files that never became rows (unreadable, bad zip)."""
        counts = services.batch_status_counts(batch_id)
        failed_rows = (
            Document.objects.filter(batch_id=batch_id, status=DocumentStatus.FAILED)
            .values_list("original_name", "error")
            .order_by("pk")
        )
        failures = unregistered + [
            {"path": name, "error": error} for name, error in failed_rows.iterator()
        ]
        return {
            "total": sum(counts.values()) + len(unregistered),
            "done": counts["done"],
            "failed": counts["failed"] + len(unregistered),
            "duplicates": counts["duplicate"],
            "cancelled": counts["cancelled"],
            "unfinished": sum(counts[s] for s in UNFINISHED),
            "failures": failures,
        }
