"""`field__any=[…]`: the same rows as `__in`, with one array parameter on PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from documents.models import Document

pytestmark = pytest.mark.django_db


@pytest.fixture
def documents(agent) -> list[Document]:
    return [Document.objects.create(agent=agent, sha256=f"{i:064x}") for i in range(5)]


def test_any_matches_like_in(documents):
    wanted = [documents[1].sha256, documents[3].sha256, "f" * 64]

    found = Document.objects.filter(sha256__any=wanted)

    assert (
        set(found)
        == set(Document.objects.filter(sha256__in=wanted))
        == {
            documents[1],
            documents[3],
        }
    )


def test_an_empty_list_matches_nothing(documents):
    assert not Document.objects.filter(sha256__any=[]).exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL arrays")
def test_one_parameter_however_many_values(documents):
    with CaptureQueriesContext(connection) as queries:
        list(Document.objects.filter(sha256__any=[f"{i:064x}" for i in range(2000)]))

    assert "= ANY(" in queries.captured_queries[0]["sql"]
    assert queries.captured_queries[0]["sql"].count("%s") <= 1
