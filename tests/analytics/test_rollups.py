"""Rollups on PostgreSQL: exact figures on a hand-made hour, idempotency, resumption."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from analytics import services
from analytics.models import FillState, Granularity, Scope, Snapshot
from analytics.rollups import compute_period, period_floor, periods_between
from tests.analytics.conftest import HOUR, World

pytestmark = pytest.mark.django_db


def by_scope(snapshots: list[Snapshot]) -> dict[tuple[str, int], Snapshot]:
    return {(s.scope, s.scope_id): s for s in snapshots}


def test_hourly_figures_per_agent_organization_and_system(world: World) -> None:
    snapshots = by_scope(compute_period(Granularity.HOURLY, HOUR))

    assert set(snapshots) == {
        (Scope.SYSTEM, 0),
        (Scope.ORGANIZATION, world.acme.pk),
        (Scope.ORGANIZATION, world.beta.pk),
        (Scope.AGENT, world.a1.pk),
        (Scope.AGENT, world.a2.pk),
        (Scope.AGENT, world.b1.pk),
    }
    a1 = snapshots[(Scope.AGENT, world.a1.pk)]
    assert (a1.organization_id, a1.agent_id) == (world.acme.pk, world.a1.pk)
    assert (a1.documents_uploaded, a1.documents_processed, a1.documents_failed) == (4, 2, 1)
    assert (a1.pages, a1.chunks, a1.documents_duplicate) == (8, 11, 0)
    assert a1.processing_seconds_p50 == pytest.approx(20.0)
    assert a1.processing_seconds_p95 == pytest.approx(29.0)
    assert a1.processing_seconds_max == pytest.approx(30.0)
    assert a1.queue_wait_seconds_p50 == pytest.approx(60.0)  # of 30, 60, 120
    assert a1.queue_wait_seconds_p95 == pytest.approx(114.0)
    assert a1.failure_reasons == {"encrypted": 1}
    assert (a1.interactions, a1.tokens_used) == (2, 300)

    a2 = snapshots[(Scope.AGENT, world.a2.pk)]
    assert (a2.documents_uploaded, a2.documents_failed, a2.documents_duplicate) == (1, 1, 1)
    assert a2.processing_seconds_p50 is None
    assert a2.queue_wait_seconds_p50 == pytest.approx(600.0)

    acme = snapshots[(Scope.ORGANIZATION, world.acme.pk)]
    assert (acme.documents_uploaded, acme.documents_processed, acme.documents_failed) == (5, 2, 2)
    assert acme.queue_wait_seconds_p50 == pytest.approx(90.0)  # of 30, 60, 120, 600
    assert acme.queue_wait_seconds_p95 == pytest.approx(528.0)
    assert acme.failure_reasons == {"corrupt": 1, "encrypted": 1}
    assert (acme.interactions, acme.tokens_used) == (3, 350)  # one without an agent
    assert acme.profiles_enriched == 2
    assert acme.sentiment_by_segment == {
        "champion": {"positive": 1},
        "at_risk": {"negative": 1},
    }
    assert acme.agents_created == 1

    beta = snapshots[(Scope.ORGANIZATION, world.beta.pk)]
    assert (beta.documents_uploaded, beta.documents_processed, beta.pages) == (2, 1, 10)
    assert beta.queue_wait_seconds_p50 == pytest.approx(20.0)
    assert beta.profiles_enriched == 0  # cid was enriched two hours later

    system = snapshots[(Scope.SYSTEM, 0)]
    assert (system.documents_uploaded, system.documents_processed) == (7, 3)
    assert (system.documents_failed, system.documents_duplicate) == (2, 1)
    assert (system.pages, system.chunks) == (18, 31)
    assert system.processing_seconds_p50 == pytest.approx(30.0)
    assert system.processing_seconds_p95 == pytest.approx(48.0)
    assert system.processing_seconds_max == pytest.approx(50.0)
    assert system.queue_wait_seconds_p50 == pytest.approx(60.0)
    assert system.queue_wait_seconds_p95 == pytest.approx(504.0)
    assert (system.interactions, system.tokens_used, system.agents_created) == (4, 360, 1)
    assert system.tasks_by_state == {
        "documents.tasks.document_process_task": {"SUCCESS": 2, "FAILURE": 1},
        "profiles.tasks.profile_enrich_task": {"SUCCESS": 1},
    }


def test_daily_figures_sum_the_day(world: World) -> None:
    day = period_floor(Granularity.DAILY, HOUR)

    snapshots = by_scope(compute_period(Granularity.DAILY, day))

    system = snapshots[(Scope.SYSTEM, 0)]
    assert (system.documents_uploaded, system.documents_processed) == (8, 4)
    assert (system.interactions, system.tokens_used) == (5, 1360)
    assert system.tasks_by_state["profiles.tasks.profile_enrich_task"] == {"SUCCESS": 2}
    assert snapshots[(Scope.ORGANIZATION, world.beta.pk)].profiles_enriched == 1


def test_a_quiet_period_still_gets_its_system_row() -> None:
    snapshots = compute_period(Granularity.HOURLY, HOUR)

    assert [(s.scope, s.documents_uploaded, s.tasks_by_state) for s in snapshots] == [
        (Scope.SYSTEM, 0, {})
    ]


def test_filling_twice_leaves_one_row_per_scope(world: World) -> None:
    now = HOUR + timedelta(hours=1, minutes=5)
    FillState.objects.create(
        granularity=Granularity.HOURLY,
        period_start=HOUR - timedelta(hours=1),
        state=FillState.State.DONE,
    )

    first = services.analytics_fill(granularity=Granularity.HOURLY, now=now)
    figures = Snapshot.objects.values_list("scope", "scope_id", "documents_uploaded")
    rows = sorted(figures)
    second = services.analytics_fill(granularity=Granularity.HOURLY, now=now)
    again = services.analytics_fill(
        granularity=Granularity.HOURLY, start=HOUR, end=now, recompute=True, now=now
    )

    assert (first.periods, first.snapshots, first.first_period) == (1, 6, HOUR.isoformat())
    assert second.periods == 0
    assert again.periods == 1
    assert sorted(figures.all()) == rows
    assert Snapshot.objects.count() == 6
    state = FillState.objects.get(granularity=Granularity.HOURLY)
    assert (state.period_start, state.state) == (HOUR, FillState.State.DONE)


def test_a_run_that_died_half_way_is_recomputed(world: World) -> None:
    # A run began HOUR, wrote a stale row for it and died before finishing.
    FillState.objects.create(
        granularity=Granularity.HOURLY, period_start=HOUR, state=FillState.State.STARTED
    )
    Snapshot.objects.create(
        granularity=Granularity.HOURLY,
        period_start=HOUR,
        scope=Scope.ORGANIZATION,
        scope_id=world.acme.pk,
        organization=world.acme,
        documents_uploaded=999,
        computed_at=HOUR,
    )

    summary = services.analytics_fill(
        granularity=Granularity.HOURLY, now=HOUR + timedelta(hours=2, minutes=5)
    )

    assert (summary.periods, summary.first_period) == (2, HOUR.isoformat())
    acme = Snapshot.objects.get(
        granularity=Granularity.HOURLY, period_start=HOUR, scope=Scope.ORGANIZATION,
        scope_id=world.acme.pk,
    )  # fmt: skip
    assert acme.documents_uploaded == 5
    state = FillState.objects.get(granularity=Granularity.HOURLY)
    assert (state.period_start, state.state) == (HOUR + timedelta(hours=1), FillState.State.DONE)


def test_first_run_starts_at_the_oldest_activity_within_the_backfill_window(
    world: World, settings
) -> None:
    settings.DOCFLOW = {**settings.DOCFLOW, "ANALYTICS_BACKFILL_DAYS": 1}
    now = HOUR + timedelta(hours=3, minutes=5)

    summary = services.analytics_fill(granularity=Granularity.HOURLY, now=now)

    # The oldest activity (an agent a day before HOUR) lies beyond the one-day window.
    assert summary.first_period == (HOUR - timedelta(hours=21)).isoformat()
    assert summary.last_period == (HOUR + timedelta(hours=2)).isoformat()
    assert summary.periods == 24


def test_only_complete_periods_are_filled() -> None:
    now = datetime(2026, 3, 10, 14, 59, tzinfo=UTC)

    assert periods_between(Granularity.HOURLY, HOUR, now) == []
    assert periods_between(Granularity.HOURLY, HOUR - timedelta(minutes=30), now) == []
    assert periods_between(Granularity.HOURLY, HOUR - timedelta(hours=2), now) == [
        HOUR - timedelta(hours=2),
        HOUR - timedelta(hours=1),
    ]


def test_a_range_fills_only_missing_periods_unless_recomputing(world: World) -> None:
    now = HOUR + timedelta(days=2)
    services.analytics_fill(
        granularity=Granularity.HOURLY, start=HOUR, end=HOUR + timedelta(hours=1), now=now
    )

    summary = services.analytics_fill(
        granularity=Granularity.HOURLY,
        start=HOUR - timedelta(hours=1),
        end=HOUR + timedelta(hours=2),
        now=now,
    )

    assert (summary.periods, summary.first_period) == (2, (HOUR - timedelta(hours=1)).isoformat())
    assert not FillState.objects.exists()  # a range leaves the beat's state alone


def test_run_analytics_command_prints_json(world: World) -> None:
    out = StringIO()

    call_command(
        "run_analytics",
        "--period=daily",
        "--from=2026-03-10",
        "--to=2026-03-11",
        "--json",
        stdout=out,
    )

    summary = json.loads(out.getvalue())
    assert summary["periods"] == 1
    assert summary["first_period"] == "2026-03-10T00:00:00+00:00"
    system = Snapshot.objects.get(granularity=Granularity.DAILY, scope=Scope.SYSTEM)
    assert system.documents_uploaded == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from=yesterday"], "is not an ISO date"),
        (["--to=2026-03-10"], "--to needs --from"),
        (["--from=2026-03-10", "--to=2026-03-09"], "--to must be after --from"),
    ],
)
def test_run_analytics_rejects_bad_ranges(args: list[str], message: str) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("run_analytics", "--period=hourly", *args)
    assert not Snapshot.objects.exists()


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.95, 1.0])
def test_the_sqlite_percentile_of_the_embedded_demo_matches_postgresqls(fraction: float) -> None:
    from django.db import connection

    from analytics.rollups import _SqlitePercentile

    values = [7.0, 1.0, 3.0, 10.0, 2.5]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(%s) WITHIN GROUP (ORDER BY v) FROM unnest(%s::float[]) v",
            [fraction, values],
        )
        expected = cursor.fetchone()[0]
    aggregate = _SqlitePercentile()
    for value in [*values, None]:
        aggregate.step(value, fraction)

    assert aggregate.finalize() == pytest.approx(expected)


@pytest.mark.parametrize("granularity", [Granularity.HOURLY, Granularity.DAILY])
def test_the_single_pass_postgresql_rollup_equals_the_portable_queries(
    world: World, granularity: str
) -> None:
    period = period_floor(granularity, HOUR)
    fields = [f.name for f in Snapshot._meta.concrete_fields if f.name not in ("id", "computed_at")]

    def figures(portable: bool) -> dict:
        return {
            (s.scope, s.scope_id): {name: getattr(s, name) for name in fields}
            for s in compute_period(granularity, period, portable=portable)
        }

    fast, portable = figures(False), figures(True)

    assert fast.keys() == portable.keys()
    for key, values in fast.items():
        for name, value in values.items():
            expected = portable[key][name]
            assert value == (pytest.approx(expected) if isinstance(value, float) else expected), (
                key,
                name,
            )
