"""An optional OpenAI-compatible provider: embeddings and a short document summary.

Off by default (nothing here runs unless settings name a base URL). Plain HTTP with
`requests`; the caller passes `before_request`, the global rate limit. Answers map onto the
pipeline's errors: 429, 5xx, timeouts and connection errors are transient (retried with the
server's Retry-After when it sends one); other 4xx and malformed answers are permanent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import numpy as np
import requests

from documents.pipeline.embed import normalise_rows
from documents.pipeline.errors import PipelineError, TransientPipelineError

SUMMARY_PROMPT = (
    "Summarise the following document in at most three sentences, in its own language. "
    "Answer with the summary only."
)


class ProviderError(PipelineError):
    code = "provider"
    default_message = "The AI provider refused the request."


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class OpenAICompatibleClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        timeout: float = 30.0,
        before_request: Callable[[], None] = lambda: None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.before_request = before_request

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.before_request()
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = requests.post(
                f"{self.base_url}{path}", json=payload, headers=headers, timeout=self.timeout
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientPipelineError(f"AI provider unreachable: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientPipelineError(
                f"AI provider answered {response.status_code}",
                retry_after=_retry_after(response),
            )
        if response.status_code >= 400:
            raise ProviderError(
                f"The AI provider refused the request ({response.status_code}): "
                f"{response.text[:300]}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError("The AI provider answered something that is not JSON.") from exc


class OpenAIEmbedder:
    """`/embeddings` with `dimensions` requested, so vectors fit the configured size."""

    def __init__(self, client: OpenAICompatibleClient, *, model: str, dimensions: int) -> None:
        self.client = client
        self.model = model
        self.dimensions = dimensions
        self.name = f"openai:{model}:{dimensions}"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimensions), np.float32)
        answer = self.client.post(
            "/embeddings",
            {"model": self.model, "input": list(texts), "dimensions": self.dimensions},
        )
        try:
            rows = sorted(answer["data"], key=lambda item: item["index"])
            matrix = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError("The AI provider's embeddings answer is malformed.") from exc
        if matrix.shape != (len(texts), self.dimensions):
            raise ProviderError(
                f"The AI provider returned {matrix.shape} embeddings for {len(texts)} texts "
                f"of {self.dimensions} dimensions."
            )
        return normalise_rows(matrix)


def summarize(
    client: OpenAICompatibleClient, text: str, *, model: str, max_chars: int = 12000
) -> str:
    """A short summary of the document's beginning (bounded input, bounded cost)."""
    answer = client.post(
        "/chat/completions",
        {
            "model": model,
            "messages": [
                {"role": "system", "content": SUMMARY_PROMPT},
                {"role": "user", "content": text[:max_chars]},
            ],
            "temperature": 0.2,
        },
    )
    try:
        return str(answer["choices"][0]["message"]["content"]).strip()[:5000]
    except (KeyError, IndexError, TypeError) as exc:
        raise ProviderError("The AI provider's summary answer is malformed.") from exc
