"""The admin index: documents by status, queue depths and the last hour's failures, each a
link to the rows behind it; and the links from an organization to what belongs to it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from documents.models import Agent, Document, DocumentStatus, Organization
from operations.overview import admin_overview

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_figures():
    cache.clear()


def test_the_index_counts_documents_by_status_and_recent_failures(admin_client, agent):
    now = timezone.now()
    for status, count in ((DocumentStatus.DONE, 3), (DocumentStatus.QUEUED, 2)):
        for _ in range(count):
            Document.objects.create(agent=agent, status=status)
    Document.objects.create(agent=agent, status=DocumentStatus.FAILED, finished_at=now)
    Document.objects.create(
        agent=agent, status=DocumentStatus.FAILED, finished_at=now - timedelta(hours=3)
    )

    page = admin_client.get("/admin/").content.decode()

    def card(status: str) -> str:
        found = re.search(rf'data-status="{status}"><strong>(\d+)</strong>', page)
        assert found, status
        return found.group(1)

    assert (card("done"), card("queued"), card("failed"), card("processing")) == (
        "3",
        "2",
        "2",
        "0",
    )
    assert 'href="/admin/documents/document/?status__exact=failed"' in page
    failures = re.search(r'id="docflow-failures">(.*?)</div>', page, re.S).group(1)
    assert re.search(r"<strong>1</strong><span>Documents failed</span>", failures)


def test_the_figures_follow_permissions(django_user_model):
    viewer = django_user_model.objects.create_user("v", password="pw-12345678", is_staff=True)

    overview = admin_overview(viewer)

    assert overview.empty


def test_an_organization_links_to_its_agents_documents_profiles_and_reports(admin_client):
    acme = Organization.objects.create(name="Acme", slug="acme")
    other = Organization.objects.create(name="Other", slug="other")
    for organization in (acme, other):
        agent = Agent.objects.create(organization=organization, name="Bot", slug="bot")
        Document.objects.create(agent=agent, original_name=f"{organization.slug}.txt")

    page = admin_client.get("/admin/documents/organization/").content.decode()
    link = f"/admin/documents/document/?agent__organization__id__exact={acme.pk}"
    assert link in page
    for changelist in ("agent", "customerprofile", "usagereport"):
        target = re.search(
            rf'href="(/admin/\w+/{changelist}/\?organization__id__exact={acme.pk})"', page
        )
        assert target
        assert admin_client.get(target.group(1)).status_code == 200

    documents = admin_client.get(link).content.decode()
    assert "acme.txt" in documents
    assert "other.txt" not in documents
