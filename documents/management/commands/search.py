"""Search the chunks from the command line, as the admin's search box does."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.text import Truncator

from documents import selectors, services
from documents.models import Agent


class Command(BaseCommand):
    help = "Hybrid search over document chunks."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("query")
        parser.add_argument("--agent", help="Only this agent's documents (slug).")
        parser.add_argument("--organization", help="Organization slug, when agents share slugs.")
        parser.add_argument("--limit", type=int, default=10)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        agent = None
        if options["agent"]:
            try:
                agent = services.agent_resolve(
                    agent_slug=options["agent"], organization_slug=options["organization"]
                )
            except (Agent.DoesNotExist, Agent.MultipleObjectsReturned) as exc:
                raise CommandError(str(exc)) from exc
        hits = selectors.chunk_search(options["query"], agent=agent, limit=options["limit"])
        if options["json"]:
            self.stdout.write(json.dumps([asdict(hit) for hit in hits]))
            return
        if not hits:
            self.stdout.write("No matches.")
        for rank, hit in enumerate(hits, start=1):
            pages = f" p.{hit.pages}" if hit.pages else ""
            self.stdout.write(
                f"{rank:>2}. {hit.score:.3f}  {hit.document_name}{pages} #{hit.ordinal}\n"
                f"    {Truncator(' '.join(hit.text.split())).chars(160)}"
            )
