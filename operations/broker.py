"""One lazily created Redis client on the broker's Redis, per process, with short timeouts:
what the metrics counters and the rate limiter share (never a blocking dependency)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

_client: Any = None


def broker_redis() -> Any:
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2
        )
    return _client


def reset() -> None:
    """Forget the client (tests, or a process that forked)."""
    global _client
    _client = None
