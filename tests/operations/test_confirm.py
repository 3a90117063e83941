"""Admin actions over many rows ask first; the confirmation posts the same selection back."""

from __future__ import annotations

import pytest

from documents.models import Document, DocumentStatus

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/documents/document/"


@pytest.fixture
def parked(agent, settings) -> list[Document]:
    settings.DOCFLOW = {**settings.DOCFLOW, "ADMIN_CONFIRM_OVER": 2}
    return [
        Document.objects.create(
            agent=agent, original_name=f"d{i}.txt", status=DocumentStatus.QUEUED, task_id=f"t{i}"
        )
        for i in range(3)
    ]


def cancelled() -> int:
    return Document.objects.filter(status=DocumentStatus.CANCELLED).count()


def test_few_rows_run_at_once(admin_client, parked):
    response = admin_client.post(
        CHANGELIST,
        {"action": "cancel_selected", "_selected_action": [d.pk for d in parked[:2]]},
        follow=True,
    )

    assert "Cancelled 2 documents." in response.content.decode()
    assert cancelled() == 2


def test_many_rows_ask_first_then_run_once_confirmed(admin_client, parked):
    selection = {"action": "cancel_selected", "_selected_action": [d.pk for d in parked]}

    asked = admin_client.post(CHANGELIST, selection)

    page = asked.content.decode()
    assert asked.status_code == 200
    assert "Cancel 3 documents?" in page
    assert 'name="docflow_confirmed" value="yes"' in page
    assert cancelled() == 0

    done = admin_client.post(CHANGELIST, {**selection, "docflow_confirmed": "yes"}, follow=True)

    assert "Cancelled 3 documents." in done.content.decode()
    assert cancelled() == 3


def test_select_across_keeps_the_changelist_filter(admin_client, parked, agent):
    Document.objects.create(agent=agent, original_name="done.txt", status=DocumentStatus.DONE)
    every_queued = {
        "action": "cancel_selected",
        "select_across": "1",
        "_selected_action": [parked[0].pk],
    }
    url = f"{CHANGELIST}?status__exact=queued"

    asked = admin_client.post(url, every_queued)
    assert "Cancel 3 documents?" in asked.content.decode()
    assert 'name="select_across" value="1"' in asked.content.decode()

    admin_client.post(url, {**every_queued, "docflow_confirmed": "yes"})

    assert cancelled() == 3
    assert Document.objects.get(original_name="done.txt").status == DocumentStatus.DONE
