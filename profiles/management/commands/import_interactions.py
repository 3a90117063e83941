"""Import interactions from CSV or JSON Lines; profiles are created when missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from profiles.imports import interactions_import, iter_records


class Command(BaseCommand):
    help = "Import interactions (CSV with a header, or JSON Lines) in bulk."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--json", action="store_true", help="Print one JSON summary.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        try:
            stream = path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        bar = tqdm(desc="Importing", unit=" lines", disable=options["json"], file=sys.stderr)
        try:
            with stream:
                result = interactions_import(
                    iter_records(stream, name=path.name), on_batch=bar.update
                )
        except UnicodeDecodeError as exc:
            raise CommandError(
                f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8."
            ) from exc
        finally:
            bar.close()
        summary = {
            "imported": result.imported,
            "profiles_created": result.profiles_created,
            "profiles_enriching": result.profiles_enriching,
            "errors": result.errors,
        }
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        self.stdout.write(
            f"imported={result.imported} profiles_created={result.profiles_created} "
            f"errors={len(result.errors)}"
        )
        for error in result.errors:
            self.stdout.write(f"  line {error['line']}: {error['message']}")
