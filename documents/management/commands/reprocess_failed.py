"""Queue failed documents again (all of them, or one agent's)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from documents import services
from documents.models import Agent


class Command(BaseCommand):
    help = "Queue every failed document again, with its attempt counter reset."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agent", help="Only this agent's documents (slug).")
        parser.add_argument("--organization", help="Organization slug, when agents share slugs.")

    def handle(self, *args: Any, **options: Any) -> None:
        agent = None
        if options["agent"]:
            try:
                agent = services.agent_resolve(
                    agent_slug=options["agent"], organization_slug=options["organization"]
                )
            except (Agent.DoesNotExist, Agent.MultipleObjectsReturned) as exc:
                raise CommandError(str(exc)) from exc
        queued = services.documents_retry_failed(agent=agent)
        self.stdout.write(f"Queued {queued} failed document{'s' if queued != 1 else ''}.")
