"""A new interaction asks for its profile's enrichment, debounced (profiles.services)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save
from django.dispatch import receiver

from profiles.models import Interaction
from profiles.services import profiles_request_enrichment


@receiver(post_save, sender=Interaction, dispatch_uid="profiles.enrich_after_interaction")
def enrich_after_interaction(
    sender: type[Interaction], instance: Interaction, created: bool, raw: bool = False, **_: Any
) -> None:
    if created and not raw:
        profiles_request_enrichment(profile_ids=[instance.profile_id])
