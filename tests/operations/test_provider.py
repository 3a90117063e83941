"""The optional OpenAI-compatible provider against a local server that throttles and fails on
purpose, and the global token bucket in Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import redis

from documents import services
from documents.models import Chunk, Document, DocumentStatus
from documents.pipeline import TransientPipelineError
from documents.pipeline.remote import OpenAICompatibleClient, OpenAIEmbedder, ProviderError
from operations import broker, ratelimit
from operations.ratelimit import Rate, RateLimited
from tests.conftest import ROOT


@pytest.fixture(autouse=True)
def _fresh_buckets(settings) -> None:
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for key in client.scan_iter("docflow:ratelimit:*"):
        client.delete(key)
    broker.reset()
    services._providers.clear()


@pytest.mark.parametrize(
    ("text", "rate"),
    [("5/m", Rate(5, 60.0)), ("10/s", Rate(10, 1.0)), (" 1000 / h ", Rate(1000, 3600.0))],
)
def test_rates_parse(text: str, rate: Rate) -> None:
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["", "5", "0/m", "5/d", "five/m"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        Rate.parse(text)


def test_the_bucket_grants_its_capacity_then_says_how_long_to_wait() -> None:
    rate = Rate(5, 60.0)

    waits = [ratelimit.acquire("test-a", rate) for _ in range(6)]

    assert waits[:5] == [0.0] * 5
    assert 11.5 < waits[5] <= 12.0  # one token refills every 12 s


TAKE = """
import django
django.setup()
from operations import ratelimit
rate = ratelimit.Rate(5, 60.0)
print(sum(ratelimit.acquire("test-shared", rate) == 0 for _ in range(5)))
"""


def test_the_bucket_is_shared_by_processes(settings) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "LOG_LEVEL": "ERROR",
    }
    children = [
        subprocess.Popen(
            [sys.executable, "-c", TAKE], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]

    granted = sum(int(child.communicate(timeout=60)[0].split()[-1]) for child in children)

    assert granted == 5  # 15 attempts from 3 processes, one quota of 5


def test_a_long_wait_is_not_blocked_on_but_raised() -> None:
    rate = Rate(1, 3600.0)
    ratelimit.wait_for_slot("test-b", rate, max_block=1.0)

    with pytest.raises(RateLimited) as raised:
        ratelimit.wait_for_slot("test-b", rate, max_block=1.0)

    assert raised.value.wait > 3000


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after"),
    [
        (429, {"Retry-After": "7"}, TransientPipelineError, 7.0),
        (503, {}, TransientPipelineError, None),
        (500, {"Retry-After": "2"}, TransientPipelineError, 2.0),
        (401, {}, ProviderError, None),
    ],
)
def test_provider_answers_map_to_transient_or_permanent_errors(
    fake_openai, status, headers, error, retry_after
) -> None:
    url, fake = fake_openai
    fake.failures.append((status, headers))
    embedder = OpenAIEmbedder(OpenAICompatibleClient(url), model="m", dimensions=4)

    with pytest.raises(error) as raised:
        embedder.embed(["hello"])

    assert getattr(raised.value, "retry_after", None) == retry_after


def test_embeddings_are_normalised_and_checked(fake_openai) -> None:
    url, fake = fake_openai
    embedder = OpenAIEmbedder(OpenAICompatibleClient(url, api_key="k"), model="m", dimensions=4)

    matrix = embedder.embed(["a", "bb"])
    fake.dimensions_answered = 3
    with pytest.raises(ProviderError, match="returned"):
        embedder.embed(["a"])

    assert matrix.shape == (2, 4)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0)
    assert fake.requests[0] == (
        "/v1/embeddings",
        {"model": "m", "input": ["a", "bb"], "dimensions": 4},
    )


@pytest.mark.django_db
def test_a_document_through_the_provider_retries_a_throttle_then_stores_summary_and_vectors(
    fake_openai, agent, pdf_file: Path, settings, media_root, django_capture_on_commit_callbacks
) -> None:
    url, fake = fake_openai
    settings.DOCFLOW = {
        **settings.DOCFLOW,
        "EMBEDDING_PROVIDER": "openai",
        "EMBEDDING_MODEL": "text-embedding-3-small",
        "EMBEDDING_DIMENSIONS": 8,
        "OPENAI_BASE_URL": url,
        "OPENAI_SUMMARY_MODEL": "gpt-4o-mini",
        "OPENAI_RATE_LIMIT": "100/s",
    }
    with pdf_file.open("rb") as handle, django_capture_on_commit_callbacks():
        document = services.document_create_from_upload(
            agent=agent, upload=handle, original_name="handbook.pdf"
        )
    task_id = Document.objects.get(pk=document.pk).task_id
    fake.failures.append((429, {"Retry-After": "3"}))

    with pytest.raises(TransientPipelineError) as throttled:
        services.document_process(document_id=document.pk, task_id=task_id)
    services.document_release_for_retry(document_id=document.pk, task_id=task_id, error="retry")
    outcome = services.document_process(document_id=document.pk, task_id=task_id)

    assert throttled.value.retry_after == 3.0
    assert outcome.status == "done"
    document.refresh_from_db()
    assert document.status == DocumentStatus.DONE
    assert document.summary == "A handbook about the product."
    assert document.embedding_model == "openai:text-embedding-3-small:8"
    assert Chunk.objects.filter(document=document).count() == document.chunk_count > 0
    paths = [path for path, _ in fake.requests]
    assert paths.count("/v1/chat/completions") == 1


@pytest.mark.django_db
def test_a_refused_request_fails_the_document_with_the_providers_reason(
    fake_openai, agent, pdf_file: Path, settings, media_root, django_capture_on_commit_callbacks
) -> None:
    url, fake = fake_openai
    settings.DOCFLOW = {
        **settings.DOCFLOW,
        "EMBEDDING_PROVIDER": "openai",
        "EMBEDDING_DIMENSIONS": 8,
        "OPENAI_BASE_URL": url,
    }
    with pdf_file.open("rb") as handle, django_capture_on_commit_callbacks():
        document = services.document_create_from_upload(
            agent=agent, upload=handle, original_name="handbook.pdf"
        )
    fake.failures.append((401, {}))

    outcome = services.document_process(
        document_id=document.pk, task_id=Document.objects.get(pk=document.pk).task_id
    )

    document.refresh_from_db()
    assert (outcome.status, document.status, document.error_code) == (
        "failed",
        "failed",
        "provider",
    )
    assert "refused the request (401)" in document.error
