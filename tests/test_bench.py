"""The arithmetic and accounting the benchmarks' figures rest on (the runs themselves are
`make bench`: timings are never asserted here)."""

from __future__ import annotations

import os
import time

import pytest

from bench import chunk_store, procstat, run_all, scale

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")


@pytest.mark.parametrize(
    ("title", "other"),
    [
        ("postgres: 15/main: postgres test_docflow 127.0.0.1(39398) idle", True),
        ("postgres: 15/main: postgres docflow_scale 127.0.0.1(39400) UPDATE", False),
        ("postgres: 15/main: postgres docflow_scale [local] idle", False),
        ("postgres: 15/main: checkpointer ", False),
        ("postgres: 15/main: logical replication launcher", False),
        ("postgres: 15/main: autovacuum worker docflow_scale", False),
    ],
)
def test_only_backends_of_other_databases_are_left_out(title: str, other: bool):
    assert procstat._other_database(title, "docflow_scale") is other


def test_cpu_of_the_watched_process_and_its_reaped_children_is_counted():
    before = procstat.cpu_seconds(os.getpid())["worker"]
    child = os.fork()
    if child == 0:  # burn CPU, then exit: only the parent's cutime remembers it
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            pass
        os._exit(0)
    os.waitpid(child, 0)

    after = procstat.cpu_seconds(os.getpid())["worker"]

    assert after - before >= 0.25


@pytest.mark.django_db
def test_postgres_cpu_is_taken_apart_into_this_databases_backends_and_the_kernel():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), current_database()")
        pid, database = cursor.fetchone()
        before = procstat.postgres_cpu_parts(database=database)
        before_elsewhere = procstat.postgres_cpu_parts(database="another_database")
        cursor.execute("SELECT count(*) FROM generate_series(1, 3000000)")  # CPU in a backend
        after = procstat.postgres_cpu_parts(database=database)
        after_elsewhere = procstat.postgres_cpu_parts(database="another_database")
        left_out = procstat.postgres_cpu_parts(database=database, exclude=(pid,))

    assert after["backends"] - before["backends"] >= 0.1
    # Another database's live backends, and excluded ones, are not counted.
    assert after_elsewhere["backends"] - before_elsewhere["backends"] < 0.05
    assert after["backends"] - left_out["backends"] >= 0.1
    assert {"checkpointer", "walwriter"} <= set(after)
    assert 0 <= after["kernel"] <= sum(v for k, v in after.items() if k != "kernel")


@pytest.mark.django_db
def test_statement_times_are_read_where_the_module_is_loaded_and_skipped_cleanly_where_not():
    from django.db import connection

    with connection.cursor() as cursor:
        if scale.statement_times_available(cursor):
            times = scale.statement_times(cursor)
            assert times["statements_calls"] > 0
            assert times["statements_exec_ms"] >= 0
        # Either way the sampling connection is still usable.
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def sample(t: float, finished: int, worker: float, postgres: float) -> dict[str, float]:
    return {"t": t, "finished": finished, "worker": worker, "postgres": postgres, "redis": 0.0}


def test_rates_skip_the_warm_up_sample_and_divide_cpu_by_documents():
    samples = [
        sample(0, 0, 0.0, 0.0),
        sample(15, 100, 9.0, 1.0),  # warm-up: left out
        sample(30, 700, 39.0, 4.0),
        sample(45, 1300, 69.0, 7.0),
    ]

    figures = scale.rates(samples, total=10_000)

    assert figures["documents"] == 1200
    assert figures["docs_per_second"] == 40.0
    assert figures["cpu_ms_per_document"] == {"worker": 50.0, "postgres": 5.0, "redis": 0.0}
    assert figures["whole_run_hours_here"] == round(10_000 / 40 / 3600, 2)


def test_stretches_show_where_the_database_cost_per_document_stepped():
    def point(t: float, finished: int, postgres: float, read: int, hit: int) -> dict[str, float]:
        return {
            **sample(t, finished, finished * 0.025, postgres),
            "blks_read": read,
            "blks_hit": hit,
            "buffers_backend": 0,
            "wal_fpi": finished,
            "pg_walwriter": finished * 0.001,
            "sampler": finished * 0.0005,
            "statements_exec_ms": finished * 1.25,
        }

    samples = [
        point(0, 0, 0.0, 0, 0),
        point(10, 500, 1.0, 0, 5000),
        point(20, 1000, 2.0, 0, 10000),
        point(30, 1500, 5.0, 2500, 12500),  # the cache stopped holding what is written
        point(40, 2000, 8.0, 5000, 15000),
    ]

    out = scale.stretches(samples, parts=2)

    assert [s["finished"] for s in out] == [1000, 2000]
    assert [s["postgres_cpu_ms"] for s in out] == [2.0, 6.0]
    assert [s["cache_hit_ratio"] for s in out] == [1.0, 0.5]
    assert [s["blks_read_per_document"] for s in out] == [0.0, 5.0]
    assert out[0]["docs_per_second"] == 50.0
    assert out[1]["wal_fpi_per_document"] == 1.0
    assert [s["pg_walwriter_cpu_ms"] for s in out] == [1.0, 1.0]
    assert [s["sampler_cpu_ms"] for s in out] == [0.5, 0.5]
    assert [s["statements_exec_ms_per_document"] for s in out] == [1.25, 1.25]


def test_stretches_of_samples_without_database_counters_keep_the_cpu_figures():
    samples = [sample(0, 0, 0.0, 0.0), sample(15, 300, 9.0, 0.6), sample(30, 600, 18.0, 1.2)]

    out = scale.stretches(samples, parts=3)

    assert [s["finished"] for s in out] == [300, 600]
    assert all("cache_hit_ratio" not in s for s in out)
    assert out[-1]["worker_cpu_ms"] == 30.0


def test_projections_scale_with_worker_cores_and_say_what_the_database_needs():
    out = scale.projections(
        {"worker": 50.0, "postgres": 5.0, "redis": 0.5}, register_seconds=36, total=500_000
    )

    by_cores = {row["worker_cores"]: row for row in out}
    assert by_cores[2]["docs_per_second"] == 40.0
    assert by_cores[50]["docs_per_second"] == 1000.0
    assert by_cores[50]["postgres_cores_needed"] == 5.0
    assert by_cores[50]["redis_thread_share"] == 0.5
    assert by_cores[16]["total_hours_with_registration"] == round((500_000 / 320 + 36) / 3600, 2)


def test_figures_without_an_aim_are_reported_but_not_judged():
    results = {"scale": {"run": {"docs_per_second": 33.3}}, "search": {"figures": {"p95_ms": 120}}}

    summary = run_all.figures(results)

    assert summary["scale_docs_per_second_2_cores_shared"] == {
        "value": 33.3,
        "aim": None,
        "met": None,
    }
    assert summary["search_p95_ms"]["met"] is False
    assert summary["pipeline_efficiency_ratio"]["value"] is None


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_pinned_services_get_every_core_back_even_when_the_run_fails(monkeypatch):
    import subprocess

    from bench import pipeline

    service = subprocess.Popen(["sleep", "30"])
    try:
        monkeypatch.setattr(procstat, "service_pids", lambda port=None: [service.pid])
        monkeypatch.setattr(pipeline, "service_pids", lambda port=None: [service.pid])
        everywhere = os.sched_getaffinity(0)
        last = max(everywhere)

        pinned = []

        def failing_run() -> None:
            with pipeline.services_on(last, 6379):
                pinned.append(os.sched_getaffinity(service.pid))
                raise RuntimeError("the run failed")

        with pytest.raises(RuntimeError):
            failing_run()

        assert pinned == [{last}]
        assert os.sched_getaffinity(service.pid) == everywhere
    finally:
        service.kill()
        service.wait()


def test_efficiency_is_the_ratio_of_rates_over_all_rounds_each_side_with_the_same_documents():
    from bench import pipeline

    def bare(seconds: float) -> dict[str, object]:
        return {"documents": 100, "seconds": seconds, "chunks": 500, "cpu_seconds": 4.0}

    def system(seconds: float, from_registration: float) -> dict[str, object]:
        return {
            "documents": 100,
            "seconds": seconds,
            "seconds_from_registration": from_registration,
            "chunks": 500,
            "not_done": 0,
            "cpu_seconds": {"worker": 4.5, "postgres": 0.25, "redis": 0.0},
        }

    figures = pipeline.summarize([bare(2.0), bare(4.0)], [system(2.5, 2.6), system(4.5, 4.9)])

    assert figures["efficiency_ratio"] == pytest.approx(6.0 / 7.0)
    assert figures["efficiency_ratio_from_registration"] == pytest.approx(6.0 / 7.5)
    assert figures["efficiency_ratios"] == [0.8, round(4.0 / 4.5, 3)]
    assert figures["efficiency_ratio_median_round"] == pytest.approx((0.8 + 4.0 / 4.5) / 2)
    assert figures["bare_pipeline"]["docs_per_second"] == pytest.approx(200 / 6.0)
    assert figures["through_celery"]["cpu_ms_per_document"] == {
        "worker": 45.0,
        "postgres": 2.5,
        "redis": 0.0,
    }
    assert figures["bare_pipeline"]["cpu_ms_per_document"] == 40.0


def test_a_worker_profile_is_split_into_main_process_pipeline_stages_and_where_the_rest_goes():
    from bench import worker_profile

    root = worker_profile.ROOT
    main = 'process 10:"celery worker"'
    child = f'{main};process 11:"celery worker"'
    batch = f"documents_process_batch ({root}/documents/services.py:1125)"
    pipeline = f"{child};{batch};run_pipeline (documents/pipeline/runner.py:72)"
    raw = [
        f"{main};_epoll.poll (kombu/utils/eventio.py:83) 3\n",
        f"{pipeline};document_keyword_candidates ({root}/documents/pipeline/keywords.py:43)"
        ";extract_keywords (yake/core/yake.py:558) 6\n",
        f"{pipeline} 2\n",
        # py-spy leaves out a line number it does not know.
        f"{child};{batch};run_pipeline (documents/pipeline/runner.py);read (pymupdf/x.py) 1\n",
        f"{child};{batch};ChunkWriter.replace (documents/bulk.py:257)"
        ";Cursor.execute (psycopg/cursor.py:113) 4\n",
        f"{child};{batch};_local_copy (documents/services.py:871)"
        ";lexists (<frozen posixpath>:1) 2\n",
        f"{child};_run_code (<frozen runpy>:88);detect (documents/pipeline/detect.py:9) 1\n",
        # Library code whose path holds one of the project's package names is not the project's.
        f"{child};run (django/db/migrations/operations/base.py:9)"
        ";dumps (/usr/lib/python3.11/json/__init__.py:231) 1\n",
        "not a sample line\n",
    ]

    summary = worker_profile.summarize_profile(raw, main_pid=10)

    def share(count: int) -> float:
        return round(count / 20, 4)

    assert summary["samples"] == 20
    assert summary["main_process_share"] == share(3)
    assert summary["children_share"] == share(17)
    assert summary["pipeline_share"] == share(9)
    assert summary["pipeline_stages"] == {
        "keywords": share(6),
        "runner": share(3),
    }
    assert summary["outside_pipeline_share"] == share(8)
    assert summary["outside_pipeline_top"] == [
        {"where": "documents/bulk.py:ChunkWriter.replace", "ends_in": "psycopg", "share": share(4)},
        {"where": "documents/services.py:_local_copy", "ends_in": "posixpath", "share": share(2)},
        {
            "where": "documents/pipeline/detect.py:detect",
            "ends_in": "(own code)",
            "share": share(1),
        },
        {"where": "(no project frame)", "ends_in": "json", "share": share(1)},
    ]


def test_a_profile_recorded_without_its_processes_is_refused():
    from bench import worker_profile

    with pytest.raises(ValueError, match="--subprocesses"):
        worker_profile.summarize_profile(["run (documents/services.py:1) 5\n"], main_pid=10)


def test_chunk_store_parts_are_what_leaving_each_out_saves():
    best = {  # seconds for 2,000 chunks
        "stored_lz4": 0.600,
        "stored_pglz": 0.660,
        "stored_without_gin": 0.500,
        "stored_without_foreign_key": 0.560,
        "sent_only": 0.040,
        "to_tsvector_only": 0.300,
    }

    out = chunk_store.figures(best, chunks=2000, documents=200)

    assert out["ms_per_1000_chunks"]["stored_lz4"] == 300.0
    assert out["insert_server_ms_per_1000_chunks"] == 280.0
    assert out["insert_server_ms_per_document"] == 2.8
    assert out["insert_parts_ms_per_1000_chunks"] == {
        "to_tsvector": 130.0,
        "gin_index": 50.0,
        "foreign_key_checks": 20.0,
        "rest": 80.0,
    }
    assert out["pglz_instead_of_lz4_costs"] == 0.1
