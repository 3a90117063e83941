"""Profile enrichment benchmark: N profiles with M interactions through real workers.

    python bench/profiles.py [--profiles 100000] [--interactions 1000000] [--processes 2]

Needs DATABASE_URL (PostgreSQL; a database `<name>_bench` is created) and CELERY_BROKER_URL
(Redis; flushed). Data is written with COPY; then `enrich_profiles --wait` runs against
`celery worker -Q medium -c N`. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import (  # noqa: E402  (path set above)
    prepare_bench,
    start_worker,
    stop_worker,
)

PHRASES = [
    "Thanks, the delivery was quick and the support team was great.",
    "My order arrived broken and nobody answers, this is terrible.",
    "Can you tell me when the invoice for last month will be ready?",
    "The new dashboard is lovely, exports work perfectly now.",
    "I want a refund, the subscription renewal charged me twice.",
    "How do I reset my password on the mobile app?",
]


def generate(profiles: int, interactions: int) -> None:
    from django.db import connection

    from documents.models import Organization

    organization = Organization.objects.create(name="Bench", slug="bench")
    rng = random.Random(7)
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY profiles_customerprofile (organization_id, external_id, name, email, "
            "attributes, sentiment_label, top_topics, segment, preferred_hours, "
            "preferred_weekdays, preferred_channel, interaction_count, enrichment_status, "
            "enrichment_progress, enrichment_error, enrichment_task_id, enrichment_attempts, "
            "created_at, updated_at) FROM STDIN"
        ) as copy:
            for index in range(profiles):
                copy.write_row(
                    [
                        organization.pk,
                        f"c-{index}",
                        f"Customer {index}",
                        "",
                        "{}",
                        "",
                        "[]",
                        "",
                        "[]",
                        "[]",
                        "",
                        0,
                        "never",
                        0,
                        "",
                        "",
                        0,
                        now,
                        now,
                    ]
                )
        cursor.execute("SELECT min(id) FROM profiles_customerprofile")
        first_id = cursor.fetchone()[0]
        with cursor.cursor.copy(
            "COPY profiles_interaction (profile_id, channel, direction, text, occurred_at, "
            "tokens_used, metadata, created_at) FROM STDIN"
        ) as copy:
            for index in range(interactions):
                profile_id = first_id + index % profiles
                copy.write_row(
                    [
                        profile_id,
                        rng.choice(("chat", "email", "phone")),
                        "in" if index % 3 else "out",
                        rng.choice(PHRASES),
                        now - timedelta(hours=rng.uniform(0, 24 * 120)),
                        rng.randint(10, 400),
                        "{}",
                        now,
                    ]
                )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE profiles_interaction; ANALYZE profiles_customerprofile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    env, _ = prepare_bench("docflow-bench-profiles-")
    from django.core.management import call_command

    started = time.perf_counter()
    generate(args.profiles, args.interactions)
    generated = time.perf_counter() - started

    worker = start_worker(env, args.processes, "medium")
    started = time.perf_counter()
    call_command("enrich_profiles", wait=True, json=True, stdout=open(os.devnull, "w"))  # noqa: SIM115
    elapsed = time.perf_counter() - started
    stop_worker(worker)
    from profiles.models import CustomerProfile

    done = CustomerProfile.objects.filter(enrichment_status="done").count()
    print(
        json.dumps(
            {
                "profiles": args.profiles,
                "interactions": args.interactions,
                "processes": args.processes,
                "generate_seconds": round(generated, 1),
                "enrich_seconds": round(elapsed, 1),
                "profiles_per_second": round(args.profiles / elapsed, 1),
                "interactions_per_second": round(args.interactions / elapsed, 1),
                "enriched": done,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
