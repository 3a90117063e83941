"""Set up a demo: an admin user, an agent and sample documents, processed and summarised.

Used by `make demo`. Safe to run again: the user's password is renewed and printed, and the
samples are recorded as duplicates the second time.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from documents import samples, services
from documents.models import Document


class Command(BaseCommand):
    help = "Create an admin user and a demo agent, then ingest generated sample documents."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--samples", type=Path, default=settings.BASE_DIR / "var" / "samples")

    def handle(self, *args: Any, **options: Any) -> None:
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username=options["username"], defaults={"email": "admin@example.com"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()

        agent = services.agent_get_or_create(organization_slug="demo", agent_slug="support-bot")
        folder: Path = options["samples"]
        if not folder.is_dir() or not any(folder.iterdir()):
            folder.mkdir(parents=True, exist_ok=True)
            written = samples.write_sample_corpus(folder)
            self.stdout.write(f"Wrote {len(written)} sample documents to {folder}")
        # Kept between runs: a second run records the same files as duplicates.

        call_command(
            "ingest_documents",
            str(folder),
            agent=agent.slug,
            organization="demo",
            wait=True,
            stdout=self.stdout,
            stderr=self.stderr,
        )
        top = Document.objects.filter(agent=agent, status="done").exclude(keywords=[]).first()
        query = top.keywords[0] if top else "document"
        self.stdout.write(f"\nSearch for {query!r}:")
        call_command(
            "search",
            query,
            agent=agent.slug,
            organization="demo",
            limit=3,
            stdout=self.stdout,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"\nAdmin: http://127.0.0.1:8000/admin/\n"
                f"  user: {user.username}\n  password: {password}"
            )
        )
