"""The Celery application: `celery -A config worker` / `celery -A config beat`.

All configuration lives in Django settings under the CELERY_ namespace.
"""

from __future__ import annotations

import gc
import logging
import os

from celery import Celery
from celery.signals import (
    after_setup_logger,
    task_failure,
    task_postrun,
    task_prerun,
    worker_process_init,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("docflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

logger = logging.getLogger(__name__)


def warn_when_inline() -> None:
    """Say once, loudly, that there is no broker: work then runs in the calling process."""
    if app.conf.task_always_eager:
        logger.warning("CELERY_BROKER_URL is not set: tasks run inline, in the calling process.")


@after_setup_logger.connect
def _log_inline_mode(**_: object) -> None:
    warn_when_inline()


@worker_process_init.connect
def _commit_without_waiting_in_workers(**_: object) -> None:
    """In worker processes, commits do not wait for PostgreSQL's WAL flush by default.

    A worker's writes are claims, progress and Celery task states, which a database crash may
    lose without harm (the reconciling path re-runs the work); what must survive, the final
    result and failures, is written with `documents.services.durable()`. This removes three
    fsync waits per document, which on small documents cost more than the processing itself.
    """
    from django.db.backends.signals import connection_created

    connection_created.connect(_set_async_commit, dispatch_uid="docflow.async_commit")


@worker_process_init.connect
def _freeze_inherited_objects(**_: object) -> None:
    """Put what a child inherits from its parent (Django, the app, every import: some 160,000
    objects) out of the garbage collector's reach.

    The pipeline allocates enough objects to start a collection every few milliseconds, and
    each full one walked all of them: the pipeline ran about 4 % slower in a worker than
    alone. Those objects live as long as the process anyway.
    """
    gc.freeze()


def _set_async_commit(sender: object, connection: object, **_: object) -> None:
    if getattr(connection, "vendor", "") == "postgresql":
        with connection.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("SET synchronous_commit TO off")


@task_prerun.connect
def _drop_broken_connections(task: object = None, **_: object) -> None:
    """Connections are reused across tasks (CELERY_DB_REUSE_MAX); one that broke (database
    restarted) or outlived CONN_MAX_AGE is dropped before the next task, as Django does
    between requests. Not for tasks run inline: they share the caller's connection."""
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@task_prerun.connect
def _start_task_clock(task_id: str = "", task: object = None, **_: object) -> None:
    if not getattr(getattr(task, "request", None), "is_eager", False):
        from operations.metrics import task_started

        task_started(task_id)


@task_postrun.connect
def _count_task(task_id: str = "", task: object = None, state: str = "", **_: object) -> None:
    """Every worker adds its task outcomes to the shared counters behind /metrics."""
    if not getattr(getattr(task, "request", None), "is_eager", False):
        from operations.metrics import task_finished

        task_finished(task_id, getattr(task, "name", "unknown"), state or "UNKNOWN")


@task_failure.connect
def _keep_dead_letter(
    sender: object = None,
    task_id: str = "",
    exception: BaseException | None = None,
    args: object = None,
    kwargs: object = None,
    traceback: object = None,
    **_: object,
) -> None:
    """A task that failed for good keeps its full arguments, to be replayed from the admin."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from operations.dead_letters import dead_letter_record

    try:
        dead_letter_record(
            task_id=task_id,
            task_name=getattr(sender, "name", "unknown"),
            args=args,  # type: ignore[arg-type]
            kwargs=kwargs,  # type: ignore[arg-type]
            exception=exception or Exception("unknown"),
            traceback=traceback,
            worker=getattr(getattr(sender, "request", None), "hostname", "") or "",
        )
    except Exception:
        logger.exception("could not record the dead letter of task %s", task_id)
