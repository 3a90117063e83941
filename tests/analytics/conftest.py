"""A hand-made world for the analytics tests: two organizations, three agents, and the
documents, interactions, profiles and task results of one hour (HOUR) and around it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django_celery_results.models import TaskResult

from documents.models import Agent, Document, DocumentStatus, Organization
from profiles.models import CustomerProfile, Interaction

HOUR = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return HOUR + timedelta(minutes=minutes)


@dataclass
class World:
    acme: Organization
    beta: Organization
    a1: Agent
    a2: Agent
    b1: Agent


def document(agent: Agent, *, created: float, status: str = DocumentStatus.DONE, **times) -> int:
    """A document whose clocks are given in minutes after HOUR (None: not set)."""
    doc = Document.objects.create(agent=agent, original_name="x.pdf", status=status)
    fields = {"created_at": at(created)}
    for name in ("queued", "started", "finished"):
        if times.get(name) is not None:
            fields[f"{name}_at"] = at(times.pop(name))
        times.pop(name, None)
    Document.objects.filter(pk=doc.pk).update(**fields, **times)
    return doc.pk


@pytest.fixture
def world() -> World:
    acme = Organization.objects.create(name="Acme", slug="acme")
    beta = Organization.objects.create(name="Beta", slug="beta")
    a1 = Agent.objects.create(organization=acme, name="Support", slug="support")
    a2 = Agent.objects.create(organization=acme, name="Sales", slug="sales")
    b1 = Agent.objects.create(organization=beta, name="Helper", slug="helper")
    Agent.objects.filter(pk__in=[a1.pk, b1.pk]).update(created_at=at(-24 * 60))
    Agent.objects.filter(pk=a2.pk).update(created_at=at(15))

    done = DocumentStatus.DONE
    # a1: two processed (10 s and 30 s, waits 60 s and 120 s), one failed (wait 30 s), and one
    # uploaded this hour but finished in the next.
    document(a1, created=5, queued=5, started=6, finished=7, processing_seconds=10.0,
             page_count=5, chunk_count=7)  # fmt: skip
    document(a1, created=10, queued=10, started=12, finished=13, processing_seconds=30.0,
             page_count=3, chunk_count=4)  # fmt: skip
    document(a1, created=20, status=DocumentStatus.FAILED, queued=20, started=20.5, finished=21,
             error_code="encrypted")  # fmt: skip
    document(a1, created=55, queued=55, started=56, finished=62, processing_seconds=99.0,
             page_count=1, chunk_count=1)  # fmt: skip
    # a2: a failure uploaded the hour before (wait 600 s), and a duplicate.
    document(a2, created=-10, status=DocumentStatus.FAILED, queued=-10, started=0, finished=1,
             error_code="corrupt")  # fmt: skip
    document(a2, created=30, status=DocumentStatus.DUPLICATE, finished=30)
    # b1: one processed (50 s, wait 20 s), one still queued.
    document(b1, created=40, queued=40, started=40 + 1 / 3, finished=41, processing_seconds=50.0,
             page_count=10, chunk_count=20, status=done)  # fmt: skip
    document(b1, created=50, status=DocumentStatus.QUEUED, queued=50)

    ann = CustomerProfile.objects.create(organization=acme, external_id="ann")
    bob = CustomerProfile.objects.create(organization=acme, external_id="bob")
    cid = CustomerProfile.objects.create(organization=beta, external_id="cid")
    CustomerProfile.objects.filter(pk=ann.pk).update(
        enriched_at=at(30), segment="champion", sentiment_label="positive"
    )
    CustomerProfile.objects.filter(pk=bob.pk).update(
        enriched_at=at(45), segment="at_risk", sentiment_label="negative"
    )
    CustomerProfile.objects.filter(pk=cid.pk).update(
        enriched_at=at(120), segment="new", sentiment_label="neutral"
    )
    for profile, agent, minutes, tokens in [
        (ann, a1, 1, 100),
        (ann, a1, 2, 200),
        (bob, None, 3, 50),
        (ann, a1, 70, 1000),  # next hour
        (cid, b1, 4, 10),
    ]:
        Interaction.objects.create(
            profile=profile,
            agent=agent,
            channel="chat",
            direction="in",
            text="hi",
            occurred_at=at(minutes),
            tokens_used=tokens,
        )

    for task_id, name, state, minutes in [
        ("t1", "documents.tasks.document_process_task", "SUCCESS", 7),
        ("t2", "documents.tasks.document_process_task", "SUCCESS", 13),
        ("t3", "documents.tasks.document_process_task", "FAILURE", 21),
        ("t4", "profiles.tasks.profile_enrich_task", "SUCCESS", 50),
        ("t5", "profiles.tasks.profile_enrich_task", "SUCCESS", 61),  # next hour
    ]:
        TaskResult.objects.create(task_id=task_id, task_name=name, status=state)
        TaskResult.objects.filter(task_id=task_id).update(date_done=at(minutes))
    return World(acme, beta, a1, a2, b1)
