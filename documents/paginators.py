"""A paginator for admin changelists of very large tables.

Django's paginator runs ``SELECT COUNT(*)`` on every changelist page. On PostgreSQL that
count reads the whole table (or the whole index range of a filter): on 500,000 documents
it costs more than everything else the page does, and it runs again on every click.

`EstimatedCountPaginator` (set ``paginator = EstimatedCountPaginator`` on a ModelAdmin,
with ``show_full_result_count = False``) counts like this:

* unfiltered (no WHERE clause): the planner's row estimate for the table, read from
  ``pg_class`` (``reltuples`` scaled to the table's current size, as the planner does); a
  table estimated under `exact_below` rows, or never analysed, is counted exactly, so small
  tables show exact figures;
* filtered: the exact count, under ``SET LOCAL statement_timeout`` (`count_timeout_ms`);
  when it times out, the planner's estimate from ``EXPLAIN (FORMAT JSON)`` of the query
  (at least one row more than a page: a count that slow is not one page of rows);
* other databases: the exact count.

An estimate is never allowed below the rows actually seen: `page` fetches the page first
and raises the count to the rows up to it; a short page makes the count exact. The timeout
is set inside a savepoint that is always rolled back, so it cannot leak into the request.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import EmptyPage, Page, Paginator
from django.db import OperationalError, connections, transaction
from django.db.models import QuerySet
from django.utils.functional import cached_property

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for statement_timeout

_TABLE_ESTIMATE_SQL = """
    SELECT CASE WHEN relpages > 0
                THEN reltuples / relpages
                     * (pg_relation_size(oid) / current_setting('block_size')::int)
                ELSE reltuples END
    FROM pg_class WHERE oid = %s::regclass
"""


class EstimatedCountPaginator(Paginator):
    """Counts a large PostgreSQL changelist from planner estimates instead of COUNT(*)."""

    exact_below: int = 10_000
    """Tables the planner estimates under this many rows are counted exactly."""
    count_timeout_ms: int = 300
    """A filtered exact count taking longer than this falls back to the planner's estimate."""

    count_is_estimate: bool = False

    @property
    def _queryset(self) -> QuerySet[Any] | None:
        qs = self.object_list
        if isinstance(qs, QuerySet) and connections[qs.db].vendor == "postgresql":
            return qs
        return None

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        """Exact, or the planner's estimate (then `count_is_estimate` is True)."""
        qs = self._queryset
        if qs is None:
            return super().count
        if self._unfiltered(qs):
            estimate = self._table_estimate(qs)
            if estimate >= self.exact_below:
                self.count_is_estimate = True
                return estimate
            return qs.count()
        exact = self._count_with_timeout(qs)
        if exact is not None:
            return exact
        # More than a page, so the admin paginates (it shows an unpaginated queryset when the
        # count fits on one page); `page` then corrects the count if the page is short.
        self.count_is_estimate = True
        return max(self._plan_estimate(qs), self.per_page + 1)

    def page(self, number: Any) -> Page:
        """Fetch the page, then make sure an estimated count covers every row seen so far."""
        if not self._counted_estimate():
            return super().page(number)
        try:
            number = self.validate_number(number)
        except EmptyPage:
            # Past the estimated last page: the table may hold more rows than estimated.
            number = int(number)
            if number < 1:
                raise
        bottom = (number - 1) * self.per_page
        rows = self.object_list[bottom : bottom + self.per_page]
        seen = len(rows)  # evaluates (and caches) the page; a QuerySet stays a QuerySet
        if not seen and number > 1:
            raise EmptyPage(self.error_messages["no_results"])
        if seen < self.per_page:
            self._set_count(bottom + seen)  # the last page: the count is now exact
            self.count_is_estimate = False
        elif self.count < bottom + seen:
            self._set_count(bottom + seen)
        return self._get_page(rows, number, self)

    def _counted_estimate(self) -> bool:
        self.count  # noqa: B018  (counting decides whether the count is an estimate)
        return self.count_is_estimate

    def _set_count(self, value: int) -> None:
        self.__dict__["count"] = value  # overrides the cached_property's cached value
        self.__dict__.pop("num_pages", None)  # a cached_property derived from count

    @staticmethod
    def _unfiltered(qs: QuerySet[Any]) -> bool:
        query = qs.query
        return (
            not query.where
            and not query.distinct
            and query.group_by is None
            and not query.combinator
            and not query.is_sliced
        )

    @staticmethod
    def _table_estimate(qs: QuerySet[Any]) -> int:
        connection = connections[qs.db]
        with connection.cursor() as cursor:
            cursor.execute(
                _TABLE_ESTIMATE_SQL, [connection.ops.quote_name(qs.model._meta.db_table)]
            )
            row = cursor.fetchone()
        return max(round(row[0]), 0) if row and row[0] is not None else 0

    def _count_with_timeout(self, qs: QuerySet[Any]) -> int | None:
        """The exact count, or None if it took longer than `count_timeout_ms`."""
        connection = connections[qs.db]
        try:
            with transaction.atomic(using=qs.db):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT set_config('statement_timeout', %s, true)",
                        [f"{int(self.count_timeout_ms)}ms"],
                    )
                count = qs.count()
                # Roll the savepoint back even on success: SET LOCAL only dies with it (a
                # released savepoint would keep the timeout until the outer transaction ends).
                transaction.set_rollback(True, using=qs.db)
            return count
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != QUERY_CANCELED:
                raise
            return None

    @staticmethod
    def _plan_estimate(qs: QuerySet[Any]) -> int:
        sql, params = qs.order_by().query.sql_with_params()
        with connections[qs.db].cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return max(int(plan[0]["Plan"]["Plan Rows"]), 0)
