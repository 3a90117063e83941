"""One period's figures, aggregated in SQL per agent, per organization and system-wide.

Every query reads one period through an index on its clock (documents by `created_at` and
`finished_at`, interactions by `occurred_at`, profiles by `enriched_at`, agents by
`created_at`, task results by `date_done`) and returns one row per group: Python only arranges
the grouped rows into snapshots, it never walks the source rows. Percentiles are not
additive, so documents are aggregated once per scope; counts are.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.backends.signals import connection_created
from django.db.models import Aggregate, Count, F, FloatField, Func, Max, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django_celery_results.models import TaskResult

from analytics.models import Granularity, Scope, Snapshot
from documents.models import Agent, Document, DocumentStatus
from profiles.models import CustomerProfile, Interaction

TOP_FAILURE_REASONS = 10  # error codes are a small fixed set: keep them all


def period_floor(granularity: str, moment: datetime) -> datetime:
    """The start of the UTC period that contains `moment` (aware)."""
    moment = moment.astimezone(UTC)
    start = moment.replace(minute=0, second=0, microsecond=0)
    if granularity == Granularity.DAILY:
        start = start.replace(hour=0)
    return start


def period_length(granularity: str) -> timedelta:
    return timedelta(days=1) if granularity == Granularity.DAILY else timedelta(hours=1)


def periods_between(granularity: str, start: datetime, end: datetime) -> list[datetime]:
    """Starts of the complete periods that begin at or after `start` and end by `end`."""
    step = period_length(granularity)
    current = period_floor(granularity, start)
    if current < start:
        current += step
    out = []
    while current + step <= end:
        out.append(current)
        current += step
    return out


class Percentile(Aggregate):
    """A continuous percentile: PostgreSQL's `percentile_cont(f) WITHIN GROUP (ORDER BY x)`;
    on SQLite (the embedded demo) a Python aggregate registered on each connection."""

    function = "percentile_cont"
    name = "Percentile"
    output_field = FloatField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sqlite = self.copy()
        sqlite.function = "docflow_percentile"
        sqlite.template = "%(function)s(%(expressions)s, %(fraction)s)"
        return sqlite.as_sql(compiler, connection, **extra)


class _SqlitePercentile:
    def __init__(self) -> None:
        self.values: list[float] = []
        self.fraction = 0.5

    def step(self, value: float | None, fraction: float) -> None:
        self.fraction = fraction
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        if not self.values:
            return None
        ordered = sorted(self.values)
        position = (len(ordered) - 1) * self.fraction
        low = int(position)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _register_sqlite_percentile(sender: Any, connection: Any, **_: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("docflow_percentile", 2, _SqlitePercentile)


connection_created.connect(_register_sqlite_percentile, dispatch_uid="docflow.sqlite_percentile")
if connection.vendor == "sqlite" and connection.connection is not None:
    _register_sqlite_percentile(None, connection)


class Seconds(Func):
    """A duration (the difference of two timestamps) in seconds."""

    output_field = FloatField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="EXTRACT(EPOCH FROM %(expressions)s)", **extra
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django's SQLite timestamp difference is in microseconds.
        return self.as_sql(compiler, connection, template="(%(expressions)s) / 1000000.0", **extra)


AGENT_KEYS = ("agent_id", "agent__organization_id")
ORG_KEYS = ("agent__organization_id",)


def _grouped(queryset: QuerySet, keys: tuple[str, ...], aggregates: dict[str, Any]) -> list[dict]:
    if keys:
        return list(queryset.order_by().values(*keys).annotate(**aggregates))
    return [queryset.order_by().aggregate(**aggregates)]


def _scope_key(row: dict, keys: tuple[str, ...]) -> tuple[str, int, int | None, int | None]:
    """(scope, scope_id, organization_id, agent_id) of a grouped row."""
    if keys == AGENT_KEYS or keys == ("agent_id", "profile__organization_id"):
        organization_id = row.get("agent__organization_id", row.get("profile__organization_id"))
        return (Scope.AGENT, row["agent_id"], organization_id, row["agent_id"])
    if keys:
        organization_id = row[keys[0]]
        return (Scope.ORGANIZATION, organization_id, organization_id, None)
    return (Scope.SYSTEM, 0, None, None)


Key = tuple[str, int, int | None, int | None]  # scope, scope_id, organization_id, agent_id

_DOCUMENTS_SQL = """
SELECT GROUPING(a.organization_id) AS all_organizations, GROUPING(d.agent_id) AS all_agents,
    a.organization_id, d.agent_id,
    count(*) FILTER (WHERE d.created_at >= %(start)s AND d.created_at < %(end)s)
        AS documents_uploaded,
    count(*) FILTER (WHERE {finished} AND d.status = 'done') AS documents_processed,
    count(*) FILTER (WHERE {finished} AND d.status = 'failed') AS documents_failed,
    count(*) FILTER (WHERE {finished} AND d.status = 'duplicate') AS documents_duplicate,
    COALESCE(sum(d.page_count) FILTER (WHERE {finished} AND d.status = 'done'), 0) AS pages,
    COALESCE(sum(d.chunk_count) FILTER (WHERE {finished} AND d.status = 'done'), 0) AS chunks,
    percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY d.processing_seconds)
        FILTER (WHERE {finished} AND d.status = 'done') AS processing,
    max(d.processing_seconds) FILTER (WHERE {finished} AND d.status = 'done')
        AS processing_seconds_max,
    percentile_cont(ARRAY[0.5, 0.95])
        WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM d.started_at - d.queued_at))
        FILTER (WHERE {finished} AND d.started_at IS NOT NULL AND d.queued_at IS NOT NULL)
        AS queue_wait
FROM {documents} d JOIN {agents} a ON a.id = d.agent_id
WHERE (d.created_at >= %(start)s AND d.created_at < %(end)s) OR {finished}
GROUP BY ROLLUP (a.organization_id, d.agent_id)
""".format(
    finished="(d.finished_at >= %(start)s AND d.finished_at < %(end)s)",
    documents=Document._meta.db_table,
    agents=Agent._meta.db_table,
)

_INTERACTIONS_SQL = f"""
SELECT GROUPING(p.organization_id) AS all_organizations, GROUPING(i.agent_id) AS all_agents,
    p.organization_id, i.agent_id,
    count(*) AS interactions, COALESCE(sum(i.tokens_used), 0) AS tokens_used
FROM {Interaction._meta.db_table} i JOIN {CustomerProfile._meta.db_table} p ON p.id = i.profile_id
WHERE i.occurred_at >= %(start)s AND i.occurred_at < %(end)s
GROUP BY ROLLUP (p.organization_id, i.agent_id)
"""  # noqa: S608  (table names come from the models)


def _rollup_rows(sql: str, start: datetime, end: datetime) -> list[tuple[Key, dict[str, Any]]]:
    """Rows of a `GROUP BY ROLLUP (organization, agent)` query, keyed by scope: one pass over
    the period gives every agent, every organization and the system."""
    with connection.cursor() as cursor:
        cursor.execute(sql, {"start": start, "end": end})
        columns = [column.name for column in cursor.description]
        rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
    out = []
    for row in rows:
        all_organizations = row.pop("all_organizations")
        all_agents = row.pop("all_agents")
        organization_id, agent_id = row.pop("organization_id"), row.pop("agent_id")
        for name in ("processing", "queue_wait"):
            if name in row:
                prefix = "processing_seconds" if name == "processing" else "queue_wait_seconds"
                p50, p95 = row.pop(name) or (None, None)
                row[f"{prefix}_p50"], row[f"{prefix}_p95"] = p50, p95
        if all_organizations:
            out.append(((Scope.SYSTEM, 0, None, None), row))
        elif all_agents:
            out.append(((Scope.ORGANIZATION, organization_id, organization_id, None), row))
        elif agent_id is not None:  # interactions without an agent count for their organization
            out.append(((Scope.AGENT, agent_id, organization_id, agent_id), row))
    return out


def compute_period(
    granularity: str, period_start: datetime, *, portable: bool | None = None
) -> list[Snapshot]:
    """Unsaved snapshots for every scope with activity in the period, plus the system's.

    On PostgreSQL documents and interactions are aggregated in one ROLLUP pass each; the
    portable path (one grouped query per scope, for the SQLite demo) gives the same figures,
    as a test pins.
    """
    if portable is None:
        portable = connection.vendor != "postgresql"
    start, end = period_start, period_start + period_length(granularity)
    figures: dict[tuple, dict[str, Any]] = defaultdict(dict)
    figures[(Scope.SYSTEM, 0, None, None)] = {}

    def add(rows: list[dict], keys: tuple[str, ...]) -> None:
        for row in rows:
            key = _scope_key(row, keys)
            if key[0] == Scope.AGENT and key[1] is None:
                continue  # interactions without an agent count for their organization only
            if key[0] == Scope.ORGANIZATION and key[1] is None:
                continue
            figures[key].update({k: v for k, v in row.items() if k not in keys})

    uploaded = Document.objects.filter(created_at__gte=start, created_at__lt=end)
    finished = Document.objects.filter(finished_at__gte=start, finished_at__lt=end)
    done = Q(status=DocumentStatus.DONE)
    waited = Q(started_at__isnull=False, queued_at__isnull=False)
    finished_aggregates = {
        "documents_processed": Count("id", filter=done),
        "documents_failed": Count("id", filter=Q(status=DocumentStatus.FAILED)),
        "documents_duplicate": Count("id", filter=Q(status=DocumentStatus.DUPLICATE)),
        "pages": Coalesce(Sum("page_count", filter=done), 0),
        "chunks": Coalesce(Sum("chunk_count", filter=done), 0),
        "processing_seconds_p50": Percentile("processing_seconds", 0.5, filter=done),
        "processing_seconds_p95": Percentile("processing_seconds", 0.95, filter=done),
        "processing_seconds_max": Max("processing_seconds", filter=done),
        "queue_wait_seconds_p50": Percentile(
            Seconds(F("started_at") - F("queued_at")), 0.5, filter=waited
        ),
        "queue_wait_seconds_p95": Percentile(
            Seconds(F("started_at") - F("queued_at")), 0.95, filter=waited
        ),
    }
    if portable:
        for keys in (AGENT_KEYS, ORG_KEYS, ()):
            add(_grouped(uploaded, keys, {"documents_uploaded": Count("id")}), keys)
            add(_grouped(finished, keys, finished_aggregates), keys)
    else:
        for key, values in _rollup_rows(_DOCUMENTS_SQL, start, end):
            figures[key].update(values)

    # Failure reasons: counts are additive, so one grouped query serves every scope.
    reasons: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    failed = finished.filter(status=DocumentStatus.FAILED)
    for row in _grouped(failed, (*AGENT_KEYS, "error_code"), {"n": Count("id")}):
        code = row["error_code"] or "unknown"
        organization_id = row["agent__organization_id"]
        for key in (
            (Scope.AGENT, row["agent_id"], organization_id, row["agent_id"]),
            (Scope.ORGANIZATION, organization_id, organization_id, None),
            (Scope.SYSTEM, 0, None, None),
        ):
            reasons[key][code] += row["n"]
    for key, counts in reasons.items():
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_FAILURE_REASONS]
        figures[key]["failure_reasons"] = dict(top)

    interactions = Interaction.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
    interaction_aggregates = {
        "interactions": Count("id"),
        "tokens_used": Coalesce(Sum("tokens_used"), 0),
    }
    if portable:
        for keys in (("agent_id", "profile__organization_id"), ("profile__organization_id",), ()):
            add(_grouped(interactions, keys, interaction_aggregates), keys)
    else:
        for key, values in _rollup_rows(_INTERACTIONS_SQL, start, end):
            figures[key].update(values)

    # Profiles enriched in the period, by organization, segment and sentiment label.
    mix: dict[tuple, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    enriched = CustomerProfile.objects.filter(enriched_at__gte=start, enriched_at__lt=end)
    for row in _grouped(
        enriched, ("organization_id", "segment", "sentiment_label"), {"n": Count("id")}
    ):
        segment = row["segment"] or "unknown"
        label = row["sentiment_label"] or "unknown"
        for key in (
            (Scope.ORGANIZATION, row["organization_id"], row["organization_id"], None),
            (Scope.SYSTEM, 0, None, None),
        ):
            mix[key][segment][label] += row["n"]
    for key, segments in mix.items():
        figures[key]["sentiment_by_segment"] = {s: dict(labels) for s, labels in segments.items()}
        figures[key]["profiles_enriched"] = sum(
            n for labels in segments.values() for n in labels.values()
        )

    agents = Agent.objects.filter(created_at__gte=start, created_at__lt=end)
    for keys in (("organization_id",), ()):
        add(_grouped(agents, keys, {"agents_created": Count("id")}), keys)

    tasks: dict[str, dict[str, int]] = defaultdict(dict)
    for row in _grouped(
        TaskResult.objects.filter(date_done__gte=start, date_done__lt=end),
        ("task_name", "status"),
        {"n": Count("id")},
    ):
        tasks[row["task_name"] or "unknown"][row["status"]] = row["n"]
    figures[(Scope.SYSTEM, 0, None, None)]["tasks_by_state"] = dict(tasks)

    return [
        Snapshot(
            granularity=granularity,
            period_start=start,
            scope=scope,
            scope_id=scope_id,
            organization_id=organization_id,
            agent_id=agent_id,
            **values,
        )
        for (scope, scope_id, organization_id, agent_id), values in figures.items()
        if scope == Scope.SYSTEM or _has_activity(values)
    ]


def _has_activity(values: dict[str, Any]) -> bool:
    return any(value for value in values.values())
