"""Analytics through a real worker: routing, the summary in TaskResult, double ticks."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_celery_results.models import TaskResult

from analytics import services
from analytics.models import FillState, ReportStatus, Scope, Snapshot, UsageReport
from analytics.tasks import analytics_fill_task
from documents.models import Agent, Document
from tests.analytics.conftest import HOUR, World
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_same_tick_delivered_twice_leaves_one_row_per_scope_and_a_summary(
    celery_worker, world: World
):
    # The first run reaches DOCFLOW_ANALYTICS_BACKFILL_DAYS back: bring the world's day near.
    shift = timezone.now() - HOUR - timedelta(days=2)
    shift = timedelta(days=shift.days)
    Document.objects.update(
        created_at=F("created_at") + shift,
        queued_at=F("queued_at") + shift,
        started_at=F("started_at") + shift,
        finished_at=F("finished_at") + shift,
    )
    Agent.objects.update(created_at=F("created_at") + shift)
    first = analytics_fill_task.apply_async(kwargs={"granularity": "daily"})
    second = analytics_fill_task.apply_async(kwargs={"granularity": "daily"})

    wait_for(
        lambda: (
            TaskResult.objects.filter(task_id__in=[first.id, second.id], status="SUCCESS").count()
            == 2
        ),
        timeout=60,
    )
    results = [first.get(timeout=10), second.get(timeout=10)]
    filled = [r for r in results if r["periods"]]
    filled_id = first.id if results[0]["periods"] else second.id
    assert len(filled) == 1  # the other found the lock held, or nothing left to fill
    assert filled[0]["granularity"] == "daily"
    per_scope = Snapshot.objects.values_list("granularity", "period_start", "scope", "scope_id")
    assert per_scope.count() == len(set(per_scope))
    assert Snapshot.objects.filter(scope=Scope.ORGANIZATION, scope_id=world.acme.pk).exists()
    assert FillState.objects.get(granularity="daily").state == FillState.State.DONE
    stored = TaskResult.objects.get(task_id=filled_id)
    assert '"granularity": "daily"' in stored.result


def test_a_report_requested_in_a_transaction_is_written_by_the_worker(
    celery_worker, world: World, shared_media
):
    with transaction.atomic():
        (report,) = services.usage_reports_request(
            organization_ids=[world.acme.pk], month=date(2026, 3, 1), formats=["csv"]
        )

    wait_for(
        lambda: (
            UsageReport.objects.get(pk=report.pk).status in (ReportStatus.DONE, ReportStatus.FAILED)
        ),
        timeout=60,
    )
    report.refresh_from_db()
    assert (report.status, report.error, report.attempts) == (ReportStatus.DONE, "", 1)
    content = (shared_media / report.file.name).read_text()
    assert content.startswith("date,organization,agent_slug")
    assert "2026-03-10,acme,support" in content
