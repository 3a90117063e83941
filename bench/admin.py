"""Admin benchmark: changelist pages over 500,000 documents, as they are and with estimated counts.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/docflow \
    CELERY_BROKER_URL=redis://127.0.0.1:6379/12 python bench/admin.py [--documents N]

Uses the database `<name>_bench` (created if missing, kept between runs: unlike the other
benchmarks it is not dropped); when it does not hold exactly N documents it is recreated and
filled by `bench.analytics.generate` (1,000 agents of 100 organizations, 5 % failed, 2 %
duplicates; chunks only with --chunks). Nothing is sent to Redis.

In process, with Django's test client logged in as a superuser, each page is fetched once to
warm up and count its SQL queries (and list any query over 100 ms), then --repeat times for
min/median milliseconds. Variants: the admin as it is (estimated counts, the one-agent filter,
no facet counts) and, for comparison, Django's defaults (an exact COUNT per page, every agent
listed as a filter choice, "Show counts" allowed). Also times each Document list filter on its
own (build + render, HTML size). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import bench_database_url

SLOW_QUERY_MS = 100
PAGES = {
    "documents": "/admin/documents/document/",
    "documents_status_failed": "/admin/documents/document/?status__exact=failed",
    "documents_status_done": "/admin/documents/document/?status__exact=done",
    "documents_one_agent": "/admin/documents/document/?agent__id__exact={agent}",
    "documents_page_100": "/admin/documents/document/?p=100",
    "documents_sorted_created_at": "/admin/documents/document/?o=10",
    "documents_sorted_name": "/admin/documents/document/?o=1",
    "documents_search": "/admin/documents/document/?q={word}",
    "documents_facets": "/admin/documents/document/?_facets=1",
    "agents": "/admin/documents/agent/",
    "organizations": "/admin/documents/organization/",
    "index": "/admin/",
    "documents_one_organization": (
        "/admin/documents/document/?agent__organization__id__exact={organization}"
    ),
}


def prepare(documents: int, *, chunks: bool) -> dict[str, Any]:
    """Django set up on `<name>_bench`; the documents generated unless already there."""
    import psycopg

    url = bench_database_url()
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    server = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        present = -1
        if exists:
            with psycopg.connect(url) as bench:
                table = bench.execute("SELECT to_regclass('documents_document')").fetchone()[0]
                if table:
                    present = bench.execute("SELECT count(*) FROM documents_document").fetchone()[0]
        if present != documents:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        SECURE_SSL_REDIRECT="false",
        ALLOWED_HOSTS="testserver",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    if present == documents:
        return {"reused": True}
    return {"reused": False, **generate_documents(documents, chunks=chunks)}


def generate_documents(documents: int, *, chunks: bool) -> dict[str, Any]:
    from bench.analytics import generate

    return generate(documents, chunks=chunks)


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return {"min_ms": round(min(runs), 1), "median_ms": round(statistics.median(runs), 1)}


def measure_page(client: Any, url: str, repeat: int) -> dict[str, Any]:
    from django.db import connection, reset_queries
    from django.test.utils import CaptureQueriesContext

    reset_queries()  # each request resets the log: capture from an empty one
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    captured = list(queries.captured_queries)  # a view of the log, which requests reset
    if response.status_code != 200:
        return {"status": response.status_code, "location": response.get("Location")}
    slow = [
        {"ms": round(float(q["time"]) * 1000, 1), "sql": q["sql"][:300]}
        for q in captured
        if float(q["time"]) * 1000 > SLOW_QUERY_MS
    ]
    result: dict[str, Any] = {
        "queries": len(captured),
        "sql_ms": round(sum(float(q["time"]) for q in captured) * 1000, 1),
        "html_kb": round(len(response.content) / 1024, 1),
        "counts": sum("COUNT(" in q["sql"] for q in captured),
        **timed(lambda: client.get(url), repeat),
    }
    if slow:
        result["slow_queries"] = slow
    return result


@contextmanager
def patched(admins: list[Any], **attributes: Any) -> Iterator[None]:
    saved = [(a, name, a.__dict__.get(name)) for a in admins for name in attributes]
    for model_admin in admins:
        for name, value in attributes.items():
            setattr(model_admin, name, value)
    try:
        yield
    finally:
        for model_admin, name, value in saved:
            if value is None:
                delattr(model_admin, name)
            else:
                setattr(model_admin, name, value)


RESTORED_COLUMNS = (
    "file", "status", "stage", "progress", "task_id", "queued_at", "started_at", "finished_at",
    "processing_seconds", "error", "error_code", "attempts", "duplicate_of_id",
)  # fmt: skip


def measure_action(client: Any, *, url: str, data: dict[str, Any], ids: list[int]) -> dict:
    """One admin action POST (confirmed), timed; the rows it touched are put back afterwards
    and the messages it published are dropped, so the bench database stays the same."""
    import redis
    from django.db import connection

    from documents.models import Document

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_saved")
        cursor.execute(
            "CREATE TEMP TABLE bench_saved AS SELECT * FROM documents_document WHERE id = ANY(%s)",
            [ids],
        )
        # Generated rows have no file; the action skips rows with nothing to read.
        cursor.execute(
            "UPDATE documents_document SET file = 'documents/bench.pdf' WHERE id = ANY(%s)", [ids]
        )
    from config.celery import app

    with app.producer_or_acquire():  # a running web process has its broker connection open
        pass
    # Form-encoded, as the changelist's form posts it (the test client's default, multipart,
    # costs 1.8 s to parse for 10,000 fields).
    body = urlencode({**data, "docflow_confirmed": "yes", "index": "0"}, doseq=True)
    started = time.perf_counter()
    response = client.post(url, body, content_type="application/x-www-form-urlencoded")
    elapsed_ms = (time.perf_counter() - started) * 1000
    queued = Document.objects.filter(pk__in=ids, status="queued").count()
    assignments = ", ".join(f'"{c}" = s."{c}"' for c in RESTORED_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE documents_document d SET {assignments} FROM bench_saved s WHERE d.id = s.id"  # noqa: S608 (constant column names)
        )
        cursor.execute("DROP TABLE bench_saved")
    redis.Redis.from_url(os.environ["CELERY_BROKER_URL"]).flushdb()
    return {
        "rows": len(ids),
        "queued": queued,
        "status": response.status_code,
        "ms": round(elapsed_ms, 1),
    }


def measure_filters(user: Any, repeat: int) -> dict[str, Any]:
    """Each list filter of the Document list on its own: build (its queries) and render."""
    from django.contrib import admin
    from django.contrib.admin import FieldListFilter
    from django.contrib.admin.templatetags.admin_list import admin_list_filter
    from django.contrib.admin.utils import get_fields_from_path
    from django.test import RequestFactory

    from documents.models import Document

    model_admin = admin.site._registry[Document]
    request = RequestFactory().get("/admin/documents/document/")
    request.user = user
    with patched([model_admin], list_filter=()):
        changelist = model_admin.get_changelist_instance(request)
    result = {}
    for entry in (*model_admin.list_filter, "agent"):
        if isinstance(entry, str):
            field = get_fields_from_path(Document, entry)[-1]

            def build(field: Any = field, path: str = entry) -> Any:
                return FieldListFilter.create(field, request, {}, Document, model_admin, path)

        else:

            def build(filter_class: Any = entry) -> Any:
                return filter_class(request, {}, Document, model_admin)

        name = entry if isinstance(entry, str) else entry.__name__
        spec = build()
        html = admin_list_filter(changelist, spec)
        result[name] = {
            "filter": type(spec).__name__,
            "choices": html.count("<li"),
            "html_kb": round(len(html) / 1024, 1),
            "build": timed(build, repeat),
            "render": timed(lambda spec=spec: admin_list_filter(changelist, spec), repeat),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--action-rows", type=int, default=10_000)
    parser.add_argument("--chunks", action="store_true", help="Generate chunks (for search).")
    args = parser.parse_args()
    generated = prepare(args.documents, chunks=args.chunks)

    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.core.paginator import Paginator
    from django.db import connection
    from django.test import Client, override_settings

    from documents.models import Agent, Chunk, Document, Organization

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reltuples::bigint FROM pg_class WHERE relname IN "
            "('documents_document', 'documents_agent', 'documents_organization')"
        )
        reltuples = dict(cursor.fetchall())
        if reltuples.get("documents_document", 0) <= 0:
            cursor.execute("ANALYZE")
    user = get_user_model().objects.filter(username="bench-admin").first()
    if user is None:
        user = get_user_model().objects.create_superuser("bench-admin", "bench@example.com", "x")
    client = Client()
    client.force_login(user)

    agent = Agent.objects.order_by("pk").values_list("pk", flat=True)[500]
    organization = Organization.objects.order_by("pk").values_list("pk", flat=True)[50]
    has_chunks = Chunk.objects.exists()
    word = "doc-12345"
    pages = {
        key: url.format(agent=agent, organization=organization, word=word)
        for key, url in PAGES.items()
    }
    document_admin = admin.site._registry[Document]
    django_filters = tuple(f if isinstance(f, str) else "agent" for f in document_admin.list_filter)

    result: dict[str, Any] = {
        "documents": args.documents,
        "generate": generated,
        "repeat": args.repeat,
        "search": {
            "q": word,
            "chunks_present": has_chunks,
            "note": (
                "chunk rows present"
                if has_chunks
                else "no chunk rows: the search runs the chunk full-text query on an empty "
                "table, then original_name/title ICONTAINS over every document"
            ),
        },
        "document_list_filter": [getattr(f, "__name__", f) for f in document_admin.list_filter],
        "show_full_result_count": document_admin.show_full_result_count,
    }
    with override_settings(
        ALLOWED_HOSTS=["testserver"],
        SECURE_SSL_REDIRECT=False,
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    ):
        result["admin"] = {k: measure_page(client, u, args.repeat) for k, u in pages.items()}
        with patched(
            [document_admin],
            paginator=Paginator,
            list_filter=django_filters,
            show_facets=admin.ShowFacets.ALLOW,
        ):
            result["django_defaults"] = {
                k: measure_page(client, pages[k], args.repeat)
                for k in ("documents", "documents_page_100", "documents_facets")
            }
        result["document_list_filters"] = measure_filters(user, args.repeat)
        done_ids = list(
            Document.objects.filter(status="done")
            .order_by("pk")
            .values_list("pk", flat=True)[: args.action_rows]
        )
        with override_settings(DATA_UPLOAD_MAX_NUMBER_FIELDS=args.action_rows + 100):
            result["action_process_selected_ids"] = measure_action(
                client,
                url="/admin/documents/document/",
                data={"action": "process_selected", "_selected_action": done_ids},
                ids=done_ids,
            )
        # What a person does: "select all" over a filter (the failed documents).
        failed_ids = list(Document.objects.filter(status="failed").values_list("pk", flat=True))
        result["action_retry_failed_select_across"] = measure_action(
            client,
            url="/admin/documents/document/?status__exact=failed",
            data={
                "action": "retry_failed",
                "select_across": "1",
                "_selected_action": failed_ids[:1],
            },
            ids=failed_ids,
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
