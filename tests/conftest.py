"""Shared fixtures: an agent, generated sample files, and a real Celery worker process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from kombu.exceptions import KombuError

from documents import samples, services
from documents.models import Agent, Document, Organization

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _plain_http(settings: object) -> None:
    """The test client speaks plain HTTP; production redirects it to HTTPS."""
    settings.SECURE_SSL_REDIRECT = False  # type: ignore[attr-defined]
    # No collectstatic in tests: serve the admin's assets without the manifest.
    settings.STORAGES = {  # type: ignore[attr-defined]
        **settings.STORAGES,  # type: ignore[attr-defined]
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def organization(db: None) -> Organization:
    return Organization.objects.create(name="Acme", slug="acme")


@pytest.fixture
def agent(organization: Organization) -> Agent:
    return Agent.objects.create(organization=organization, name="Support bot", slug="support")


@pytest.fixture
def pdf_file(tmp_path: Path) -> Path:
    path = tmp_path / "handbook.pdf"
    samples.make_pdf(path, pages=3, title="Handbook", author="Ada")
    return path


@pytest.fixture
def corrupt_pdf(tmp_path: Path) -> Path:
    path = tmp_path / "broken.pdf"
    samples.make_corrupt_pdf(path)
    return path


@pytest.fixture
def media_root(tmp_path_factory: pytest.TempPathFactory, settings: object) -> Path:
    root = tmp_path_factory.mktemp("media")
    settings.MEDIA_ROOT = root  # type: ignore[attr-defined]
    return root


def upload(agent: Agent, path: Path) -> Document:
    """Upload a file as the admin does; its processing is queued after commit."""
    document = services.document_create_from_upload(
        agent=agent,
        upload=SimpleUploadedFile(path.name, path.read_bytes()),
        original_name=path.name,
    )
    document.refresh_from_db()
    return document


@pytest.fixture
def queued(agent: Agent, django_capture_on_commit_callbacks: Any) -> Document:
    """A web-page document whose processing message was captured, not sent."""
    with django_capture_on_commit_callbacks():
        document = Document.objects.create(agent=agent, source_url="https://example.com/a")
    document.refresh_from_db()
    return document


def wait_for(predicate: Callable[[], bool], timeout: float = 60, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def wait_terminal(document_ids: list[int], timeout: float = 90) -> list[Document]:
    def finished() -> bool:
        return all(d.is_terminal for d in Document.objects.filter(pk__in=document_ids))

    wait_for(finished, timeout=timeout)
    return list(Document.objects.filter(pk__in=document_ids).order_by("pk"))


def register(agent: Agent, paths: list[Path], queue: str = "high") -> list[Document]:
    """Files registered together, as `ingest_documents` does; their rows in the files' order."""
    from documents.archives import SourceFile

    batch = uuid.uuid4()
    services.documents_register(
        agent=agent,
        sources=[SourceFile(name=path.name, path=path) for path in paths],
        batch_id=batch,
        queue=queue,
    )
    return list(Document.objects.filter(batch_id=batch).order_by("pk"))


def document_runs(status: str) -> Counter[int]:
    """How many task runs stored each document with `status`, alone or in a batch, read from
    the Celery results (the witness that a document was not processed twice)."""
    from django_celery_results.models import TaskResult

    runs: Counter[int] = Counter()
    names = [
        "documents.tasks.document_process_task",
        "documents.tasks.documents_process_batch_task",
    ]
    for result in TaskResult.objects.filter(task_name__in=names, status="SUCCESS").values_list(
        "result", flat=True
    ):
        value = json.loads(result or "null")
        outcomes = value.get("documents", [value]) if isinstance(value, dict) else []
        runs.update(o["document_id"] for o in outcomes if o.get("status") == status)
    return runs


@pytest.fixture(scope="session")
def worker_media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker-media")


def _database_url() -> str:
    db = connection.settings_dict
    return (
        f"postgres://{quote(db['USER'])}:{quote(db['PASSWORD'] or '')}"
        f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


class WorkerProcess:
    """A `celery -A config worker` (prefork) process on `broker_url` and the test database."""

    def __init__(
        self,
        *,
        broker_url: str,
        media_root: Path,
        log_path: Path,
        queues: str = "high,medium,low,scheduled",
        concurrency: int = 2,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = f"test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
        self.log_path = log_path
        environment = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "DOCFLOW_FETCH_ALLOW_PRIVATE": "true",  # the tests' web server is on loopback
            "CELERY_BROKER_URL": broker_url,
            "MEDIA_ROOT": str(media_root),
            "DOCFLOW_RETRY_BACKOFF_SECONDS": "0.3",
            "DOCFLOW_RETRY_BACKOFF_MAX_SECONDS": "1",
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        command = [
            sys.executable, "-m", "celery", "-A", "config", "worker",
            "-Q", queues, "--pool", "prefork", "-c", str(concurrency), "-n", self.name,
            "--without-gossip", "--without-mingle", "-l", "info",
        ]  # fmt: skip
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        """Until the worker answers a ping on the broker the calling process uses."""
        from config.celery import app

        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError("worker exited:\n" + self.log()[-3000:])
            try:
                return bool(app.control.ping(destination=[self.name], timeout=0.5))
            except (OSError, redis.RedisError, KombuError):  # the broker is coming back
                return False

        try:
            wait_for(answers, timeout=timeout, interval=0.3)
        except AssertionError:
            self.process.kill()
            raise AssertionError("worker did not start:\n" + self.log()[-3000:]) from None
        return self

    def stop(self, timeout: float = 30) -> int:
        """Warm shutdown (SIGTERM: finish the tasks in hand), killed if it takes too long."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None,
    django_db_blocker: object,
    worker_media_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """A real `celery -A config worker` (prefork) on Redis and the test database."""
    if connection.vendor != "postgresql" or settings.CELERY_TASK_ALWAYS_EAGER:
        pytest.skip("worker tests need DATABASE_URL (PostgreSQL) and CELERY_BROKER_URL (Redis)")
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    worker = WorkerProcess(
        broker_url=settings.CELERY_BROKER_URL,
        media_root=worker_media_root,
        log_path=tmp_path_factory.mktemp("worker") / "worker.log",
    ).wait_ready()
    yield worker
    worker.stop(timeout=20)


@pytest.fixture
def shared_media(worker_media_root: Path, settings: object) -> Path:
    """The web side and the worker must see the same MEDIA_ROOT."""
    settings.MEDIA_ROOT = worker_media_root  # type: ignore[attr-defined]
    return worker_media_root


class _Pages:
    """Responses served by the local HTTP server, scripted per path by the tests."""

    def __init__(self) -> None:
        self.routes: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.hits: dict[str, int] = {}

    def add(self, path: str, *responses: tuple[int, dict[str, str], bytes]) -> None:
        self.routes[path] = list(responses)


@pytest.fixture
def web_server() -> Iterator[tuple[str, _Pages]]:
    """A local HTTP server; each path answers its scripted responses in turn (last repeats)."""
    pages = _Pages()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            pages.hits[self.path] = pages.hits.get(self.path, 0) + 1
            responses = pages.routes.get(self.path) or [(404, {}, b"not found")]
            status, headers, body = responses.pop(0) if len(responses) > 1 else responses[0]
            self.send_response(status)
            for key, value in {"Content-Type": "text/html; charset=utf-8", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pages
    server.shutdown()


class FakeOpenAI:
    """Answers /embeddings and /chat/completions; `failures` are served first, in order."""

    def __init__(self) -> None:
        self.failures: list[tuple[int, dict[str, str]]] = []
        self.requests: list[tuple[str, dict]] = []
        self.dimensions_answered: int | None = None


@pytest.fixture
def fake_openai() -> Iterator[tuple[str, FakeOpenAI]]:
    fake = FakeOpenAI()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append((self.path, body))
            if fake.failures:
                status, headers = fake.failures.pop(0)
                self._answer(status, {"error": "try later"}, headers)
            elif self.path == "/v1/embeddings":
                size = fake.dimensions_answered or body["dimensions"]
                data = [
                    {"index": i, "embedding": [float(len(text) % 7 + 1)] * size}
                    for i, text in enumerate(body["input"])
                ]
                self._answer(200, {"data": data, "model": body["model"]})
            elif self.path == "/v1/chat/completions":
                message = {"content": "  A handbook about the product.  "}
                self._answer(200, {"choices": [{"message": message}]})
            else:
                self._answer(404, {"error": "no such path"})

        def _answer(self, status: int, payload: dict, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", fake
    server.shutdown()
