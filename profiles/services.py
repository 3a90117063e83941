"""Writes for profiles: requesting (debounced) and applying enrichment.

A burst of new interactions must cause one or two enrichment runs, not one per message: a
request only queues a task when the profile has none queued (a conditional UPDATE), and the
task starts after a countdown, so the messages of the burst are all in when it reads them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from itertools import groupby
from operator import itemgetter
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import CharField, F, Q, Value
from django.db.models.functions import Cast, Concat, Now
from django.utils import timezone

from documents.services import durable
from profiles.enrichment import Enrichment, Message, enrich
from profiles.models import CustomerProfile, EnrichmentStatus, Interaction

logger = logging.getLogger(__name__)

# Profiles per task in bulk runs (nightly, enrich_profiles, admin action over many).
BULK_BATCH = 200


def profiles_request_enrichment(
    *, profile_ids: Iterable[int], countdown: float | None = None, batch_size: int = 1
) -> int:
    """Queue enrichment for the profiles that have none queued yet; returns how many.

    The UPDATE skips profiles already queued, so concurrent requests (a burst of messages
    from many web processes) queue at most one run; a request during a run queues the next.
    With `batch_size` > 1 (bulk runs), one task enriches that many profiles with one query for
    all their interactions, instead of one task and one query per profile.
    """
    ids = list(profile_ids)
    if not ids:
        return 0
    delay = settings.DOCFLOW["ENRICH_DEBOUNCE_SECONDS"] if countdown is None else countdown
    token = uuid.uuid4().hex
    with transaction.atomic():
        pending = (
            CustomerProfile.objects.filter(pk__in=ids)
            .exclude(enrichment_status=EnrichmentStatus.QUEUED)
            .select_for_update()
        )
        locked = list(pending.values_list("pk", flat=True))
        if not locked:
            return 0
        queued = {
            "enrichment_status": EnrichmentStatus.QUEUED,
            "enrichment_requested_at": Now(),
            "enrichment_progress": 0,
            "enrichment_error": "",
        }
        if batch_size <= 1:  # one task per profile, task ids set in one UPDATE
            CustomerProfile.objects.filter(pk__in=locked).update(
                enrichment_task_id=Concat(Value(f"{token}-"), Cast("pk", CharField())), **queued
            )
            jobs = [([pk], f"{token}-{pk}") for pk in locked]
            task_name = "profiles.tasks.profile_enrich_task"
        else:
            jobs = []
            for number, start in enumerate(range(0, len(locked), batch_size)):
                batch, task_id = locked[start : start + batch_size], f"{token}-b{number}"
                CustomerProfile.objects.filter(pk__in=batch).update(
                    enrichment_task_id=task_id, **queued
                )
                jobs.append(([batch], task_id))
            task_name = "profiles.tasks.profiles_enrich_batch_task"
        transaction.on_commit(partial(_publish, task_name, jobs, countdown=delay))
    return len(locked)


def _publish(task_name: str, jobs: list[tuple[list[Any], str]], *, countdown: float) -> None:
    """One producer connection for all the messages; a broker outage leaves rows queued."""
    from config.celery import app
    from profiles import tasks  # noqa: F401  (registers them: a command process may not have)

    try:
        with app.producer_or_acquire() as producer:
            for args, task_id in jobs:
                app.tasks[task_name].apply_async(
                    args=args, task_id=task_id, countdown=countdown, producer=producer
                )
    except Exception:
        logger.exception("Could not queue %d enrichment tasks; they stay queued.", len(jobs))


def profile_enrich(
    *, profile_id: int, task_id: str, redelivered: bool = False, now: datetime | None = None
) -> str:
    """Enrich one profile (the debounced path): a batch of one."""
    done = profiles_enrich_batch(
        profile_ids=[profile_id], task_id=task_id, redelivered=redelivered, now=now
    )
    return "done" if done else "skipped"


def _fields(result: Enrichment) -> dict[str, object]:
    return {
        "sentiment_score": result.sentiment_score,
        "sentiment_label": result.sentiment_label,
        "sentiment_trend": result.sentiment_trend,
        "top_topics": result.top_topics,
        "engagement_score": result.engagement_score,
        "segment": result.segment,
        "preferred_hours": result.preferred_hours,
        "preferred_weekdays": result.preferred_weekdays,
        "preferred_channel": result.preferred_channel,
        "first_seen": result.first_seen,
        "last_seen": result.last_seen,
        "interaction_count": result.interaction_count,
    }


def profiles_enrich_batch(
    *, profile_ids: list[int], task_id: str, redelivered: bool = False, now: datetime | None = None
) -> int:
    """Enrich many profiles: one claim, one query for all their interactions (streamed in
    profile order), one bulk update. Linear in the interactions; safe to run twice."""
    claimable = [EnrichmentStatus.QUEUED]
    if redelivered:
        claimable.append(EnrichmentStatus.PROCESSING)
    owned = CustomerProfile.objects.filter(
        pk__in=profile_ids, enrichment_task_id=task_id, enrichment_status__in=claimable
    )
    if not owned.update(
        enrichment_status=EnrichmentStatus.PROCESSING,
        enrichment_attempts=F("enrichment_attempts") + 1,
    ):
        return 0
    claimed = CustomerProfile.objects.filter(
        pk__in=profile_ids,
        enrichment_task_id=task_id,
        enrichment_status=EnrichmentStatus.PROCESSING,
    )
    ids = set(claimed.values_list("pk", flat=True))
    history = (
        Interaction.objects.filter(profile_id__in=ids)
        .order_by("profile_id", "occurred_at", "pk")
        .values_list("profile_id", "occurred_at", "direction", "channel", "text", "tokens_used")
        .iterator(chunk_size=5000)
    )
    moment = now or timezone.now()
    results: dict[int, Enrichment] = {}
    for profile_id, rows in groupby(history, key=itemgetter(0)):
        results[profile_id] = enrich(
            [
                Message(occurred_at=r[1], direction=r[2], channel=r[3], text=r[4], tokens=r[5])
                for r in rows
            ],
            now=moment,
        )
    empty = enrich([], now=moment)
    with durable():
        still_owned = list(claimed.select_for_update().values_list("pk", flat=True))
        profiles = []
        for pk in still_owned:
            profile = CustomerProfile(pk=pk, **_fields(results.get(pk, empty)))
            profile.enrichment_status = EnrichmentStatus.DONE
            profile.enrichment_progress = 100
            profile.enrichment_error = ""
            profile.enriched_at = moment
            profiles.append(profile)
        CustomerProfile.objects.bulk_update(
            profiles,
            [
                *_fields(empty).keys(),
                "enrichment_status",
                "enrichment_progress",
                "enrichment_error",
                "enriched_at",
            ],
            batch_size=500,
        )
    return len(profiles)


def profile_enrich_fail(*, task_id: str, error: str) -> int:
    """Mark the profiles of one task (one profile, or a batch) failed, if still theirs."""
    with durable():
        return CustomerProfile.objects.filter(
            enrichment_task_id=task_id,
            enrichment_status__in=[EnrichmentStatus.QUEUED, EnrichmentStatus.PROCESSING],
        ).update(enrichment_status=EnrichmentStatus.FAILED, enrichment_error=error)


def profiles_enrich_stale(*, stale_hours: float, batch: int = 5000) -> int:
    """Queue enrichment of every profile not enriched for `stale_hours` (or never)."""
    cutoff = timezone.now() - timedelta(hours=stale_hours)
    stale = CustomerProfile.objects.filter(
        Q(enriched_at__isnull=True) | Q(enriched_at__lt=cutoff)
    ).values_list("pk", flat=True)
    ids = list(stale.iterator(chunk_size=batch))
    return sum(
        profiles_request_enrichment(
            profile_ids=ids[start : start + batch], countdown=0, batch_size=BULK_BATCH
        )
        for start in range(0, len(ids), batch)
    )
