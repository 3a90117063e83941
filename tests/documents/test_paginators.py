"""EstimatedCountPaginator on PostgreSQL: estimates unfiltered, exact (with a timeout) filtered."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.core.paginator import EmptyPage
from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from documents.models import Agent, Document, DocumentStatus
from documents.paginators import EstimatedCountPaginator

pytestmark = pytest.mark.django_db

SLOW = "pg_sleep(0.05) IS NOT NULL"  # true, and slower than a 1 ms statement_timeout


class SmallTablePaginator(EstimatedCountPaginator):
    exact_below = 100


class HastyPaginator(EstimatedCountPaginator):
    count_timeout_ms = 1


def make_documents(agent: Agent, count: int, *, failed_every: int = 10) -> None:
    Document.objects.bulk_create(
        Document(
            agent=agent,
            original_name=f"doc-{i}.pdf",
            status=DocumentStatus.FAILED if i % failed_every == 0 else DocumentStatus.DONE,
        )
        for i in range(count)
    )


def analyze() -> None:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE documents_document")


def statement_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


def counted(queries: CaptureQueriesContext) -> bool:
    return any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)


def test_unfiltered_large_table_uses_the_planner_estimate(agent):
    make_documents(agent, 300)
    analyze()
    paginator = SmallTablePaginator(Document.objects.all(), 50)

    with CaptureQueriesContext(connection) as queries:
        count = paginator.count

    assert paginator.count_is_estimate
    assert count == 300  # ANALYZE samples every row of a table this small
    assert not counted(queries)
    assert "pg_class" in queries.captured_queries[0]["sql"]


def test_unfiltered_small_table_is_counted_exactly(agent):
    make_documents(agent, 300)
    analyze()
    make_documents(agent, 7)  # not analysed: only an exact count sees them
    paginator = EstimatedCountPaginator(Document.objects.all(), 50)

    with CaptureQueriesContext(connection) as queries:
        assert paginator.count == 307

    assert not paginator.count_is_estimate
    assert counted(queries)


def test_filtered_queryset_is_counted_exactly(agent):
    make_documents(agent, 300)
    analyze()
    paginator = SmallTablePaginator(Document.objects.filter(status=DocumentStatus.FAILED), 50)

    with CaptureQueriesContext(connection) as queries:
        assert paginator.count == 30

    assert not paginator.count_is_estimate
    assert counted(queries)
    assert statement_timeout() == "0"


def test_filtered_count_that_times_out_falls_back_to_the_plan_estimate(agent):
    make_documents(agent, 300)
    analyze()
    slow = Document.objects.filter(status=DocumentStatus.DONE).extra(where=[SLOW])  # noqa: S610
    paginator = HastyPaginator(slow, 50)

    count = paginator.count

    assert paginator.count_is_estimate
    assert count == max(HastyPaginator._plan_estimate(slow), 51)
    assert 51 <= count <= 300
    # The timeout died with the count: the page query (which sleeps too) runs, and the
    # connection is not left in an aborted transaction.
    assert statement_timeout() == "0"
    assert len(paginator.page(1).object_list) == 50
    assert Document.objects.count() == 300


def test_statement_timeout_does_not_leak_from_a_savepoint(agent):
    # The test runs inside a transaction: a released savepoint would keep SET LOCAL.
    make_documents(agent, 20)
    for paginator_class, queryset in (
        (EstimatedCountPaginator, Document.objects.filter(status=DocumentStatus.FAILED)),
        (HastyPaginator, Document.objects.extra(where=[SLOW])),  # noqa: S610
    ):
        paginator_class(queryset, 50).count  # noqa: B018
        assert statement_timeout() == "0"


@pytest.mark.django_db(transaction=True)
def test_statement_timeout_does_not_leak_in_autocommit(agent):
    make_documents(agent, 20)
    assert connection.get_autocommit()
    paginator = HastyPaginator(Document.objects.extra(where=[SLOW]), 50)  # noqa: S610

    assert paginator.count >= 51  # the estimate, raised to more than a page
    assert paginator.count_is_estimate
    assert statement_timeout() == "0"
    assert EstimatedCountPaginator(Document.objects.filter(status="failed"), 50).count == 2
    assert statement_timeout() == "0"


def test_an_estimate_never_stays_below_the_rows_seen(agent, monkeypatch):
    make_documents(agent, 100)
    monkeypatch.setattr(HastyPaginator, "_plan_estimate", staticmethod(lambda qs: 5))
    paginator = HastyPaginator(Document.objects.extra(where=[SLOW]), 10)  # noqa: S610
    assert paginator.count == 11  # the estimate, raised to more than a page
    assert paginator.num_pages == 2

    page = paginator.page(5)  # past the estimated last page, but the rows exist

    assert len(page.object_list) == 10
    assert paginator.count == 50
    assert paginator.num_pages == 5
    assert page.has_next() is False  # still an estimate: the next click finds out
    with pytest.raises(EmptyPage):
        HastyPaginator(Document.objects.extra(where=[SLOW]), 10).page(11)  # noqa: S610


def test_a_short_page_makes_the_estimate_exact(agent, monkeypatch):
    make_documents(agent, 25)
    monkeypatch.setattr(HastyPaginator, "_plan_estimate", staticmethod(lambda qs: 1000))
    paginator = HastyPaginator(Document.objects.extra(where=[SLOW]), 10)  # noqa: S610
    assert paginator.count == 1000

    page = paginator.page(3)

    assert len(page.object_list) == 5
    assert (paginator.count, paginator.num_pages, paginator.count_is_estimate) == (25, 3, False)


def test_lists_and_other_iterables_are_counted_plainly():
    paginator = EstimatedCountPaginator(list(range(120)), 50)
    assert (paginator.count, paginator.num_pages, paginator.count_is_estimate) == (120, 3, False)
    assert list(paginator.page(3).object_list) == list(range(100, 120))


def test_admin_changelist_with_the_paginator_runs_no_count(admin_client, agent, monkeypatch):
    make_documents(agent, 120)
    analyze()
    monkeypatch.setattr(admin.site._registry[Document], "paginator", SmallTablePaginator)
    url = reverse("admin:documents_document_changelist")

    reset_queries()  # each request resets the log: capture from an empty one
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url)
    assert response.status_code == 200
    assert abs(response.context["cl"].result_count - 120) <= 2  # the estimate
    assert queries.captured_queries
    assert not counted(queries)

    response = admin_client.get(url, {"p": 3})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 20

    response = admin_client.get(url, {"status__exact": "failed"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 12
