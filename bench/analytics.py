"""Benchmark: the daily and hourly rollups over a day of 500,000 documents and 5,000,000 chunks.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/docflow \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/13 python bench/analytics.py [--documents N]

Generates, in SQL, one UTC day with N documents (5 % failed, 2 % duplicates) of 10 chunks on
average spread over 1,000 agents of 100 organizations, 2 interactions per document, N/5
enriched profiles and a task result per document, then times one daily rollup, one busy hour
and the whole day hour by hour, and a monthly PDF usage report. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import prepare_bench

DAY = datetime(2026, 3, 10, tzinfo=UTC)


def generate(documents: int, *, chunks: bool) -> dict[str, float]:
    from django.db import connection

    timings = {}
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO documents_organization (name, slug, created_at)
            SELECT 'Org ' || g, 'org-' || g, %(day)s - interval '30 days'
            FROM generate_series(1, 100) g;
            INSERT INTO documents_agent (name, slug, created_at, updated_at, organization_id,
                model_name, persona, status, temperature)
            SELECT 'Agent ' || g, 'agent-' || g, %(day)s + (g %% 24) * interval '1 hour',
                %(day)s, (SELECT min(id) FROM documents_organization) + (g %% 100),
                'gpt-4o-mini', '', 'active', 0.7
            FROM generate_series(1, 1000) g;
            """,
            {"day": DAY},
        )
        cursor.execute("SELECT min(id) FROM documents_agent")
        first_agent = cursor.fetchone()[0]
        # Each document: uploaded at a time of the day, queued at once, waits 0-60 s,
        # processes for 1-20 s; 5 % fail with one of four reasons, 2 % are duplicates.
        cursor.execute(
            """
            INSERT INTO documents_document (file, original_name, source_url, kind, sha256,
                status, stage, progress, error, error_code, attempts, task_id, created_at,
                queued_at, started_at, finished_at, processing_seconds, page_count, title,
                author, language, keywords, chunk_count, embedding_model, summary, agent_id)
            SELECT '', 'doc-' || g || '.pdf', '', 'pdf', md5(g::text) || md5(g::text),
                CASE WHEN g %% 100 < 5 THEN 'failed' WHEN g %% 100 < 7 THEN 'duplicate'
                     ELSE 'done' END,
                '', 100, '',
                CASE WHEN g %% 100 < 5
                     THEN (ARRAY['encrypted','corrupt','no_text','empty'])[g %% 4 + 1]
                     ELSE '' END,
                1, '', t, t, t + (g %% 60) * interval '1 second',
                t + (g %% 60 + 1 + g %% 20) * interval '1 second',
                CASE WHEN g %% 100 >= 7 THEN 1 + g %% 20 END,
                CASE WHEN g %% 100 >= 7 THEN 5 END, '', '', 'en', '[]',
                CASE WHEN g %% 100 >= 7 THEN 7 + g %% 9 ELSE 0 END, 'hashing-256', '',
                %(first_agent)s + g %% 1000
            FROM (
                SELECT g, %(day)s + (g::float / %(n)s) * interval '86000 seconds' AS t
                FROM generate_series(1, %(n)s) g
            ) s
            """,
            {"day": DAY, "n": documents, "first_agent": first_agent},
        )
        timings["documents_s"] = round(time.perf_counter() - started, 1)
        if chunks:
            started = time.perf_counter()
            cursor.execute(
                """
                INSERT INTO documents_chunk (ordinal, text, size, keywords, document_id)
                SELECT o, 'chunk', 5, '[]', d.id
                FROM documents_document d, generate_series(1, d.chunk_count) o
                """
            )
            timings["chunks_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        cursor.execute(
            """
            INSERT INTO profiles_customerprofile (external_id, name, email, attributes,
                sentiment_label, top_topics, segment, preferred_hours, preferred_weekdays,
                preferred_channel, interaction_count, enrichment_status, enrichment_progress,
                enrichment_error, enrichment_task_id, enrichment_attempts, enriched_at,
                created_at, updated_at, organization_id)
            SELECT 'c-' || g, '', '', '{}',
                (ARRAY['positive','neutral','negative'])[g %% 3 + 1], '[]',
                (ARRAY['new','active','champion','at_risk','dormant'])[g %% 5 + 1], '[]', '[]',
                'chat', 10, 'done', 100, '', '', 1,
                %(day)s + (g::float / %(p)s) * interval '86000 seconds',
                %(day)s, %(day)s, (SELECT min(id) FROM documents_organization) + g %% 100
            FROM generate_series(1, %(p)s) g;
            INSERT INTO profiles_interaction (channel, direction, text, occurred_at,
                tokens_used, metadata, created_at, agent_id, profile_id)
            SELECT 'chat', 'in', 'hello', %(day)s + (g::float / %(i)s) * interval '86000 seconds',
                g %% 500, '{}', %(day)s, %(first_agent)s + g %% 1000,
                (SELECT min(id) FROM profiles_customerprofile) + g %% %(p)s
            FROM generate_series(1, %(i)s) g;
            INSERT INTO django_celery_results_taskresult (task_id, status, content_type,
                content_encoding, date_done, date_created, task_name)
            SELECT 'task-' || g, CASE WHEN g %% 100 < 5 THEN 'FAILURE' ELSE 'SUCCESS' END,
                'application/json', 'utf-8',
                %(day)s + (g::float / %(n)s) * interval '86000 seconds', %(day)s,
                'documents.tasks.document_process_task'
            FROM generate_series(1, %(n)s) g;
            """,
            {
                "day": DAY,
                "n": documents,
                "p": documents // 5,
                "i": documents * 2,
                "first_agent": first_agent,
            },
        )
        timings["profiles_interactions_tasks_s"] = round(time.perf_counter() - started, 1)
        cursor.execute("ANALYZE")
        cursor.execute("SELECT count(*) FROM documents_chunk")
        timings["chunk_rows"] = cursor.fetchone()[0]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=500_000)
    parser.add_argument("--no-chunks", action="store_true", help="Skip the chunk rows.")
    args = parser.parse_args()
    prepare_bench("docflow-analytics-")

    from analytics import services
    from analytics.models import Granularity, Snapshot
    from documents.models import Organization

    result: dict[str, object] = {"documents": args.documents}
    result["generate"] = generate(args.documents, chunks=not args.no_chunks)

    started = time.perf_counter()
    snapshots = services.period_replace(granularity=Granularity.DAILY, period_start=DAY)
    result["daily_rollup_s"] = round(time.perf_counter() - started, 2)
    result["daily_snapshots"] = snapshots
    started = time.perf_counter()
    services.period_replace(granularity=Granularity.DAILY, period_start=DAY)
    result["daily_rollup_again_s"] = round(time.perf_counter() - started, 2)

    busy_hour = DAY + timedelta(hours=12)
    started = time.perf_counter()
    services.period_replace(granularity=Granularity.HOURLY, period_start=busy_hour)
    result["hourly_rollup_s"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    summary = services.analytics_fill(
        granularity=Granularity.HOURLY,
        start=DAY,
        end=DAY + timedelta(days=1),
        recompute=True,
        now=DAY + timedelta(days=2),
    )
    result["hourly_whole_day_s"] = round(time.perf_counter() - started, 2)
    result["hourly_periods"] = summary.periods
    result["snapshot_rows"] = Snapshot.objects.count()

    organization = Organization.objects.order_by("pk").first()
    started = time.perf_counter()
    content = services.usage_report_render(
        organization=organization,
        month=date(2026, 3, 1),
        fmt="pdf",
        now=datetime(2026, 4, 1, 1, tzinfo=UTC),
    )
    result["usage_report_pdf_s"] = round(time.perf_counter() - started, 2)
    result["usage_report_pdf_bytes"] = len(content)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
