"""Fault injection with real workers, a real Redis and PostgreSQL.

Each test breaks one thing (the broker, the database connection, the provider, a worker, the
disk) and then asserts the same two facts: every document ends done (none lost) and each was
processed exactly once (attempts counted on the row, one processing run per document in the
task results, and exactly the chunks a single run makes).

The broker here is a Redis server of the test's own, on a free port, so it can be restarted
and flushed without touching anything else; the workers are started and stopped per test.
"""

from __future__ import annotations

import os
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
import requests
from django.db import connection
from rest_framework.authtoken.models import Token

from config.celery import app
from documents import samples, services
from documents.models import Chunk, Document, DocumentStatus
from documents.pipeline import run_pipeline
from documents.tasks import document_process_task, documents_requeue_stuck_task
from operations import broker
from tests.conftest import (
    WorkerProcess,
    document_runs,
    register,
    upload,
    wait_for,
    wait_terminal,
)

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


def assert_each_processed_once(
    documents: list[Document], files: dict[int, Path], *, attempts: int | None = 1
) -> list[Document]:
    """Done, claimed `attempts` times, one processing run that stored a result, and exactly the
    chunks one run of the pipeline makes."""
    finished = wait_terminal([d.pk for d in documents], timeout=180)
    # On failure, the whole picture: which document, and what every one went through.
    picture = [(d.pk, d.status, d.attempts, d.task_id, d.error_code) for d in finished]
    for document in finished:
        expected = len(run_pipeline(files[document.pk]).chunks)
        ordinals = sorted(Chunk.objects.filter(document=document).values_list("ordinal", flat=True))
        assert document.status == DocumentStatus.DONE, (document.error_code, document.error)
        assert attempts is None or document.attempts == attempts, (document.pk, picture)
        assert (document.chunk_count, ordinals) == (expected, list(range(expected)))
    assert document_runs("done") == {document.pk: 1 for document in documents}
    return finished


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

    assert_each_processed_once(documents, dict(zip([d.pk for d in documents], files, strict=True)))
    lost_ids = {d.task_id for d in documents}
    assert not lost_ids & set(Document.objects.values_list("task_id", flat=True))


def wait_processing(document: Document, timeout: float = 60) -> None:
    wait_for(
        lambda: Document.objects.get(pk=document.pk).status == DocumentStatus.PROCESSING,
        timeout=timeout,
        interval=0.02,
    )


def test_sigterm_finishes_the_task_in_hand_and_leaves_the_waiting_ones_queued(
    start_worker, fault_broker, agent, tmp_path
):
    worker = start_worker(concurrency=1)
    long_pdf = tmp_path / "long.pdf"
    samples.make_pdf(long_pdf, pages=400, seed=3)
    waiting = make_pdfs(tmp_path / "waiting", 3)
    long_document = upload(agent, long_pdf)
    wait_processing(long_document)
    files = {long_document.pk: long_pdf} | {upload(agent, path).pk: path for path in waiting}

    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=120) == 0

    long_document.refresh_from_db()
    assert (long_document.status, long_document.attempts) == (DocumentStatus.DONE, 1)
    rest = Document.objects.exclude(pk=long_document.pk)
    assert set(rest.values_list("status", "attempts")) == {(DocumentStatus.QUEUED, 0)}
    assert fault_broker.depth("high") == 3  # handed back to the broker, not lost

    start_worker(concurrency=2)
    assert_each_processed_once(list(Document.objects.all()), files)


def test_a_database_connection_dropped_mid_task_is_retried_once(
    start_worker, fault_broker, agent, tmp_path
):
    application = f"docflow-fault-{uuid.uuid4().hex[:8]}"
    start_worker(concurrency=1, env={"PGAPPNAME": application})
    long_pdf = tmp_path / "long.pdf"
    samples.make_pdf(long_pdf, pages=400, seed=5)
    document = upload(agent, long_pdf)
    wait_processing(document)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = %s",
            [application],
        )
        (terminated,) = cursor.fetchone()
    assert terminated >= 1

    assert_each_processed_once([document], {document.pk: long_pdf}, attempts=2)


def test_provider_429_and_500_and_our_rate_limit_through_the_worker(
    start_worker, fault_broker, agent, tmp_path, fake_openai
):
    base_url, fake = fake_openai
    fake.failures = [(429, {"Retry-After": "1"}), (500, {})]
    worker = start_worker(
        env={
            "DOCFLOW_EMBEDDING_PROVIDER": "openai",
            "DOCFLOW_OPENAI_BASE_URL": base_url,
            "DOCFLOW_OPENAI_RATE_LIMIT": "2/s",  # burst 2, then one call every 0.5 s
            "DOCFLOW_RATE_LIMIT_MAX_BLOCK_SECONDS": "0.05",  # longer waits go back to the broker
        }
    )
    files = make_pdfs(tmp_path / "kb", 6, pages=1)
    documents = [upload(agent, path) for path in files]

    finished = assert_each_processed_once(
        documents, {d.pk: path for d, path in zip(documents, files, strict=True)}, attempts=None
    )

    # The provider's two refusals cost one retry each; waiting for our own limit costs none.
    assert sum(d.attempts for d in finished) == len(documents) + 2
    assert "rate limited, back in" in worker.log()
    embeddings = [body for path, body in fake.requests if path.endswith("/embeddings")]
    assert len(embeddings) == len(documents) + 2  # nothing embedded twice
    assert all(d.embedding_model == "openai:text-embedding-3-small:256" for d in finished)


def test_a_thousand_uploads_at_once_each_processed_once(
    start_worker, fault_broker, agent, admin_user, live_server, tmp_path
):
    start_worker(concurrency=4)
    token = Token.objects.create(user=admin_user).key
    count = 1000

    def post(index: int) -> dict:
        body = f"Note {index}: refunds are possible within {index} days of purchase.\n"
        response = requests.post(
            f"{live_server.url}/api/v1/documents",
            data={"agent": agent.pk},
            files={"file": (f"note-{index}.txt", body.encode())},
            # As behind the TLS proxy: the live server was built with the HTTPS redirect on.
            headers={"Authorization": f"Token {token}", "X-Forwarded-Proto": "https"},
            timeout=60,
        )
        assert response.status_code == 201, response.text
        return response.json()

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(post, range(count)))

    assert len({a["id"] for a in answers}) == len({a["task_id"] for a in answers}) == count
    finished = wait_terminal([a["id"] for a in answers], timeout=240)
    assert {d.status for d in finished} == {DocumentStatus.DONE}
    assert {d.attempts for d in finished} == {1}
    assert Chunk.objects.count() == sum(d.chunk_count for d in finished) >= count
    assert document_runs("done") == {document.pk: 1 for document in finished}


def test_broker_restarted_empty_while_a_document_is_processing(
    start_worker, fault_broker, agent, tmp_path
):
    worker = start_worker(concurrency=1)
    long_pdf = tmp_path / "long.pdf"
    samples.make_pdf(long_pdf, pages=400, seed=9)
    document = upload(agent, long_pdf)
    wait_processing(document)

    fault_broker.restart()  # the message in hand is gone with the broker's memory
    worker.wait_ready()
    # The worker cancels what it held when the connection dropped (its ack can no longer
    # reach anyone); the row is left processing, with no message anywhere.
    wait_for(lambda: not any((app.control.inspect(timeout=1).active() or {}).values()))
    assert Document.objects.get(pk=document.pk).status == DocumentStatus.PROCESSING

    # Beat's reconciler, once the processing lease has run out.
    outcome = services.documents_requeue_stuck(
        queued_for=timedelta(minutes=15), processing_for=timedelta(seconds=0)
    )

    assert outcome.requeued == 1
    assert_each_processed_once([document], {document.pk: long_pdf}, attempts=2)


def test_a_worker_killed_mid_batch_hands_the_batch_over_and_loses_nothing(
    start_worker, agent, tmp_path, settings
):
    # Big enough for the long file to share the batch, so that the kill lands inside one.
    settings.DOCFLOW = {**settings.DOCFLOW, "PROCESS_BATCH_MAX_BYTES": 100 * 1024 * 1024}
    start_worker(concurrency=1)
    long_pdf = tmp_path / "long.pdf"
    samples.make_pdf(long_pdf, pages=1200, seed=7)
    small = make_pdfs(tmp_path / "kb", 3)
    paths = [small[0], long_pdf, small[1], small[2]]
    documents = register(agent, paths)
    files = {document.pk: paths[index] for index, document in enumerate(documents)}
    long_one = documents[1]
    # Past its first half second the long document writes its stages: the batch is inside it.
    wait_for(
        lambda: Document.objects.get(pk=long_one.pk).stage not in ("queued", "extract"),
        timeout=60,
        interval=0.05,
    )

    active = app.control.inspect(timeout=1).active() or {}
    ((pid, batch),) = [
        (task["worker_pid"], task["args"])
        for tasks in active.values()
        for task in tasks
        if task["name"] == "documents.tasks.documents_process_batch_task"
    ]
    # The kill lands in the one batch that holds all four.
    assert [pk for pk, _ in batch[0]] == [document.pk for document in documents], batch
    os.kill(pid, signal.SIGKILL)

    # Delivered again, the batch hands each document to a task of its own (a new task id):
    # the claim of the killed batch counts as one attempt for each of them.
    finished = assert_each_processed_once(documents, files, attempts=2)
    assert all(a.task_id != b.task_id for a, b in zip(finished, documents, strict=True))
