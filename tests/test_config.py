"""Settings from the environment: production checks, the inline default, Celery reliability."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from config.celery import app
from documents.checks import check_queued_lease, check_visibility_timeout

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_passes_with_production_values():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DEBUG": "false",
            "SECRET_KEY": "p" * 30 + "-a-long-random-production-secret-" + "q" * 20,
            "ALLOWED_HOSTS": "docflow.example.com",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/docflow",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        },
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_the_development_secret_key():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={"DEBUG": "false"})

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stdout + result.stderr


def test_without_a_broker_tasks_run_inline_and_a_log_line_says_so(tmp_path):
    result = manage("check", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})

    assert result.returncode == 0
    assert "tasks run inline" in result.stderr


def test_celery_is_configured_for_reliability():
    conf = app.conf
    assert conf.task_acks_late
    assert conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.result_backend == "django-db"
    assert conf.result_extended
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert {q.name for q in conf.task_queues} == {"high", "medium", "low", "scheduled"}
    route = app.amqp.router.route({}, "documents.tasks.document_process_task")
    assert route["queue"].name == "high"
    assert (
        app.amqp.router.route({}, "documents.tasks.documents_fan_out_task")["queue"].name == "low"
    )


def test_visibility_timeout_below_a_time_limit_is_an_error(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}

    (error,) = check_visibility_timeout()

    assert error.id == "docflow.E001"


def test_a_prefetch_that_could_outwait_the_visibility_timeout_is_an_error(settings):
    settings.CELERY_WORKER_PREFETCH_MULTIPLIER = 20

    (error,) = check_visibility_timeout()

    assert error.id == "docflow.E001"
    assert "PREFETCH" in error.msg


def test_the_configured_visibility_timeout_passes():
    assert check_visibility_timeout() == []


def test_a_queued_lease_shorter_than_the_retry_backoff_is_an_error(settings):
    settings.DOCFLOW = {**settings.DOCFLOW, "QUEUED_LEASE_SECONDS": 60}

    (error,) = check_queued_lease()

    assert error.id == "docflow.E002"


def test_a_management_command_queues_tasks_it_never_imported(tmp_path):
    """Task modules are only imported by workers; a command that publishes by task name in its
    own fresh process must still find the task (it used to log NotRegistered and queue nothing)."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "DEBUG": "true"}
    assert manage("migrate", "--noinput", env=env).returncode == 0
    setup = (
        "from documents.models import Organization; from profiles.models import CustomerProfile; "
        "o = Organization.objects.create(name='Acme', slug='acme'); "
        "[CustomerProfile.objects.create(organization=o, external_id=f'c{i}') for i in range(3)]"
    )
    assert manage("shell", "-c", setup, env=env).returncode == 0

    result = manage("enrich_profiles", "--wait", "--json", "--timeout", "60", env=env)

    assert result.returncode == 0, result.stderr
    assert "NotRegistered" not in result.stderr
    count = (
        "from profiles.models import CustomerProfile as P; "
        "print(P.objects.filter(enrichment_status='done').count())"
    )
    assert manage("shell", "-c", count, env=env).stdout.strip().splitlines()[-1] == "3"


def test_a_new_worker_process_puts_what_it_inherited_out_of_the_gcs_reach():
    import gc

    from celery.signals import worker_process_init

    from config.celery import _freeze_inherited_objects

    assert _freeze_inherited_objects in worker_process_init._live_receivers(None)
    assert gc.get_freeze_count() == 0
    try:
        _freeze_inherited_objects()

        assert gc.get_freeze_count() > 10_000  # Django, the app and their imports
    finally:
        gc.unfreeze()
