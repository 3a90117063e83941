"""Fault injection with real workers, a real Redis and PostgreSQL.

Each test breaks one thing (the broker, the database connection, the provider, a worker, the
disk) and then asserts the same two facts: every document ends done (none lost) and each was
processed exactly once (attempts counted on the row, one processing run per document in the
task results, and exactly the chunks a single run makes).

The broker here is a Redis server of the test's own, on a free port, so it can be restarted
and flushed without touching anything else; the workers are started and stopped per test.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_celery_results.models import TaskResult

from config.celery import app
from documents import samples, services
from documents.models import Chunk, Document, DocumentStatus
from documents.pipeline import run_pipeline
from documents.tasks import document_process_task, documents_requeue_stuck_task
from operations import broker
from tests.conftest import WorkerProcess, wait_for, wait_terminal

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PROCESS_TASK = document_process_task.name


class RedisServer:
    """A throwaway redis-server (no persistence): restarting it empties it, as in production
    without AOF."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port, socket_timeout=5)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, timeout=10, interval=0.05)

    def _answers(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Killed and started again empty: every queued and unacknowledged message is gone."""
        self.stop()
        self.start()

    def depth(self, queue: str) -> int:
        return int(self.client.llen(queue))


@pytest.fixture(scope="module")
def fault_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("fault injection needs the redis-server program")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def _use_broker(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point this process's Celery app (publishing, control) at `url`.

    Celery reads CELERY_BROKER_URL from the environment before its configuration; kombu keeps
    the old connection pool registered, ready for when the URL is set back.
    """
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    app.conf.broker_url = url
    app._pool = None
    app.amqp._producer_pool = None
    broker.reset()


@pytest.fixture
def fault_broker(
    fault_redis: RedisServer, settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RedisServer]:
    if connection.vendor != "postgresql" or settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.skip("fault injection needs PostgreSQL and a Redis broker")
    fault_redis.client.flushall()
    original = app.conf.broker_url
    settings.CELERY_BROKER_URL = fault_redis.url
    _use_broker(fault_redis.url, monkeypatch)
    yield fault_redis
    monkeypatch.undo()
    _use_broker(original, monkeypatch)


@pytest.fixture
def start_worker(
    fault_broker: RedisServer, shared_media: Path, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers on the fault broker; all are stopped (or killed) after the test."""
    workers: list[WorkerProcess] = []

    def start(**options: object) -> WorkerProcess:
        worker = WorkerProcess(
            broker_url=fault_broker.url,
            media_root=shared_media,
            log_path=tmp_path / f"worker-{len(workers)}.log",
            **options,  # type: ignore[arg-type]
        )
        workers.append(worker)
        return worker.wait_ready()

    yield start
    for worker in workers:
        worker.stop(timeout=10)


def make_pdfs(folder: Path, count: int, pages: int = 2) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = [folder / f"doc-{index}.pdf" for index in range(count)]
    for index, path in enumerate(paths):
        samples.make_pdf(path, pages=pages, seed=index + 1, title=f"Document {index}")
    return paths


def upload(agent, path: Path) -> Document:
    document = services.document_create_from_upload(
        agent=agent, upload=SimpleUploadedFile(path.name, path.read_bytes()), original_name=path.name
    )
    document.refresh_from_db()
    return document


def assert_each_processed_once(
    documents: list[Document], files: dict[int, Path], *, attempts: int = 1
) -> None:
    """Done, claimed `attempts` times, one processing run that stored a result, and exactly the
    chunks one run of the pipeline makes."""
    finished = wait_terminal([d.pk for d in documents], timeout=180)
    for document in finished:
        expected = len(run_pipeline(files[document.pk]).chunks)
        ordinals = sorted(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
        assert (document.status, document.attempts) == (DocumentStatus.DONE, attempts), document
        assert (document.chunk_count, ordinals) == (expected, list(range(expected)))
    done_runs = TaskResult.objects.filter(task_name=PROCESS_TASK, result__contains='"done"')
    assert done_runs.count() == len(documents)


@pytest.mark.parametrize("fault", ["restarted empty", "flushed"])
def test_broker_loss_while_documents_wait_loses_none_and_the_reconciler_runs_once(
    fault, start_worker, fault_broker, agent, tmp_path
):
    # A worker that does not take document work yet: the messages wait in Redis.
    worker = start_worker(
        queues="scheduled", env={"DOCFLOW_QUEUED_LEASE_SECONDS": "2"}, concurrency=2
    )
    files = make_pdfs(tmp_path / "kb", 8)
    documents = [upload(agent, path) for path in files]
    assert fault_broker.depth("high") == len(documents)

    if fault == "flushed":
        fault_broker.client.flushall()
    else:
        fault_broker.restart()
        worker.wait_ready()  # the worker reconnected by itself
    assert fault_broker.depth("high") == 0
    app.control.add_consumer("high", destination=[worker.name], reply=True, timeout=5)
    time.sleep(2.5)  # past the queued lease
    assert set(Document.objects.values_list("status", flat=True)) == {DocumentStatus.QUEUED}

    # Beat's tick delivered twice (two copies of one message), running side by side.
    tick = str(uuid.uuid4())
    for _ in range(2):
        documents_requeue_stuck_task.apply_async(task_id=tick)

    assert_each_processed_once(documents, dict(zip([d.pk for d in documents], files)))
    lost_ids = {d.task_id for d in documents}
    assert not lost_ids & set(Document.objects.values_list("task_id", flat=True))
