"""`field__any=[…]`: membership with one array parameter on PostgreSQL.

`__in` with 2,000 values compiles and sends 2,000 placeholders; during a 500,000-file ingest
the dedup query's compilation alone cost a tenth of the time. `= ANY(%s)` sends one array.
Other databases get a plain IN list.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Field, Lookup


@Field.register_lookup
class AnyOf(Lookup):
    lookup_name = "any"
    prepare_rhs = False  # the list is passed as is, not prepared as one field value

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s)", [*lhs_params, values]
        if not values:
            return "1 = 0", list(lhs_params)
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]
