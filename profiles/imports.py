"""Bulk import of interactions from CSV or JSON Lines, a batch of rows per few queries.

Profiles named by (organization, external id) are created when missing; every bad line is
reported with its number and the good ones still land. Interactions are inserted with
bulk_create (no per-row signal), then their profiles' enrichment is requested once.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from django.db import transaction

from documents.models import Agent, Organization
from profiles.models import CustomerProfile, Direction, Interaction
from profiles.services import profiles_request_enrichment

BATCH_SIZE = 2000
FIELDS = (
    "organization",
    "external_id",
    "channel",
    "direction",
    "text",
    "occurred_at",
    "tokens",
    "agent",
    "name",
    "email",
    "metadata",
)


class LineError(ValueError):
    """One line is refused; the message says why."""


@dataclass
class InteractionImportResult:
    imported: int = 0
    profiles_created: int = 0
    profiles_enriching: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    line: int
    organization: str
    external_id: str
    channel: str
    direction: str
    text: str
    occurred_at: datetime
    tokens: int
    agent: str
    name: str
    email: str
    metadata: dict[str, Any]


def iter_records(stream: io.TextIOBase, *, name: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, record or error text): JSON Lines when the name ends with .jsonl/.ndjson
    or the first character is "{", else CSV with a header."""
    first = stream.read(1)
    stream.seek(0)
    if name.lower().endswith((".jsonl", ".ndjson", ".json")) or first == "{":
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, f"Not valid JSON: {exc.msg} (column {exc.colno})."
                continue
            yield number, record if isinstance(record, dict) else "Each line must be an object."
        return
    reader = csv.DictReader(stream)
    unknown = [f for f in reader.fieldnames or [] if f and f.strip() not in FIELDS]
    if unknown:
        yield 1, f"Unknown columns: {', '.join(unknown)}. Accepted: {', '.join(FIELDS)}."
        return
    for record in reader:
        yield reader.line_num, {key.strip(): value for key, value in record.items() if key}


def _text(record: dict[str, Any], key: str, *, required: bool = False, limit: int = 0) -> str:
    value = record.get(key)
    if value is None or value == "":
        if required:
            raise LineError(f"{key} is required.")
        return ""
    if not isinstance(value, str):
        raise LineError(f"{key} must be text.")
    value = value.strip()
    if limit and len(value) > limit:
        raise LineError(f"{key} is longer than {limit} characters.")
    return value


def parse_record(line: int, record: dict[str, Any]) -> _Row:
    occurred = _text(record, "occurred_at", required=True)
    try:
        occurred_at = datetime.fromisoformat(occurred)
    except ValueError as exc:
        raise LineError(f"occurred_at {occurred!r} is not an ISO 8601 date and time.") from exc
    if occurred_at.tzinfo is None:
        raise LineError(f"occurred_at {occurred!r} needs a time zone (e.g. Z or +02:00).")
    direction = _text(record, "direction", required=True).lower()
    if direction not in Direction.values:
        raise LineError(f"direction must be 'in' or 'out', not {direction!r}.")
    tokens_raw = record.get("tokens") or 0
    try:
        tokens = int(tokens_raw)
    except (TypeError, ValueError) as exc:
        raise LineError(f"tokens must be a whole number, not {tokens_raw!r}.") from exc
    if tokens < 0:
        raise LineError("tokens cannot be negative.")
    metadata = record.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise LineError("metadata must be a JSON object.") from exc
    if not isinstance(metadata, dict):
        raise LineError("metadata must be a JSON object.")
    return _Row(
        line=line,
        organization=_text(record, "organization", required=True, limit=100),
        external_id=_text(record, "external_id", required=True, limit=200),
        channel=_text(record, "channel", required=True, limit=32).lower(),
        direction=direction,
        text=_text(record, "text"),
        occurred_at=occurred_at,
        tokens=tokens,
        agent=_text(record, "agent", limit=100),
        name=_text(record, "name", limit=200),
        email=_text(record, "email", limit=254),
        metadata=metadata,
    )


def interactions_import(
    records: Iterable[tuple[int, dict[str, Any] | str]],
    *,
    on_batch: Callable[[int], None] = lambda n: None,
) -> InteractionImportResult:
    result = InteractionImportResult()
    touched: set[int] = set()
    iterator = iter(records)
    while batch := list(islice(iterator, BATCH_SIZE)):
        rows: list[_Row] = []
        for line, record in batch:
            if isinstance(record, str):
                result.errors.append({"line": line, "message": record})
                continue
            try:
                rows.append(parse_record(line, record))
            except LineError as exc:
                result.errors.append({"line": line, "message": str(exc)})
        touched |= _insert_batch(rows, result)
        on_batch(len(batch))
    result.profiles_enriching = profiles_request_enrichment(profile_ids=sorted(touched))
    result.errors.sort(key=lambda error: error["line"])
    return result


def _insert_batch(rows: list[_Row], result: InteractionImportResult) -> set[int]:
    """Organizations, agents and profiles looked up once per batch; missing profiles created."""
    organizations = dict(
        Organization.objects.filter(slug__in={r.organization for r in rows}).values_list(
            "slug", "pk"
        )
    )
    agents = {
        (org_id, slug): pk
        for org_id, slug, pk in Agent.objects.filter(
            organization_id__in=organizations.values(), slug__in={r.agent for r in rows if r.agent}
        ).values_list("organization_id", "slug", "pk")
    }
    good: list[_Row] = []
    for row in rows:
        if row.organization not in organizations:
            result.errors.append(
                {"line": row.line, "message": f"Unknown organization {row.organization!r}."}
            )
        elif row.agent and (organizations[row.organization], row.agent) not in agents:
            result.errors.append({"line": row.line, "message": f"Unknown agent {row.agent!r}."})
        else:
            good.append(row)
    if not good:
        return set()
    keys = {(organizations[r.organization], r.external_id) for r in good}
    with transaction.atomic():
        profiles = _profiles(keys, good, organizations, result)
        Interaction.objects.bulk_create(
            [
                Interaction(
                    profile_id=profiles[(organizations[r.organization], r.external_id)],
                    agent_id=agents.get((organizations[r.organization], r.agent)),
                    channel=r.channel,
                    direction=r.direction,
                    text=r.text,
                    occurred_at=r.occurred_at,
                    tokens_used=r.tokens,
                    metadata=r.metadata,
                )
                for r in good
            ],
            batch_size=1000,
        )
    result.imported += len(good)
    return set(profiles.values())


def _profiles(
    keys: set[tuple[int, str]],
    rows: list[_Row],
    organizations: dict[str, int],
    result: InteractionImportResult,
) -> dict[tuple[int, str], int]:
    def existing() -> dict[tuple[int, str], int]:
        return {
            (org_id, external_id): pk
            for org_id, external_id, pk in CustomerProfile.objects.filter(
                organization_id__in={org for org, _ in keys},
                external_id__in={external for _, external in keys},
            ).values_list("organization_id", "external_id", "pk")
        }

    found = existing()
    missing = keys - found.keys()
    if missing:
        names: dict[tuple[int, str], str] = {}
        emails: dict[tuple[int, str], str] = {}
        for r in rows:  # the first name and email given for a profile win
            key = (organizations[r.organization], r.external_id)
            if r.name:
                names.setdefault(key, r.name)
            if r.email:
                emails.setdefault(key, r.email)
        created = CustomerProfile.objects.bulk_create(
            [
                CustomerProfile(
                    organization_id=org_id,
                    external_id=external_id,
                    name=names.get((org_id, external_id), ""),
                    email=emails.get((org_id, external_id), ""),
                )
                for org_id, external_id in missing
            ],
            ignore_conflicts=True,
        )
        result.profiles_created += len(created)
        found = existing()
    return found
