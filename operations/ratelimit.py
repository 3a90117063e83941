"""A token bucket in Redis shared by every worker on every machine.

Celery's `rate_limit` is per worker process; a provider's quota ("5 requests a minute") is
global. The bucket lives in one Redis hash updated by a Lua script (atomic, on Redis' own
clock, so machines with skewed clocks agree).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from operations.broker import broker_redis

_SCRIPT = """
local capacity = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_second)
local wait = 0
if tokens >= wanted then
  tokens = tokens - wanted
else
  wait = (wanted - tokens) / per_second
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / per_second) + 60)
return tostring(wait)
"""

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Rate:
    requests: int
    per_seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """ "5/m", "10/s", "1000/h"."""
        match = re.fullmatch(r"\s*(\d+)\s*/\s*([smh])\s*", text or "")
        if not match or int(match.group(1)) < 1:
            raise ValueError(f"{text!r} is not a rate like 5/m, 10/s or 1000/h.")
        return cls(int(match.group(1)), _UNITS[match.group(2)])


def acquire(name: str, rate: Rate, *, tokens: int = 1) -> float:
    """Take `tokens` from the bucket `name`; returns 0 when taken, else the seconds until
    enough have refilled (nothing is taken then)."""
    script = broker_redis().register_script(_SCRIPT)
    wait = script(
        keys=[f"docflow:ratelimit:{name}"],
        args=[rate.requests, rate.requests / rate.per_seconds, tokens],
    )
    return float(wait)


class RateLimited(Exception):
    def __init__(self, name: str, wait: float) -> None:
        super().__init__(f"Rate limit of {name!r} reached: next slot in {wait:.1f} s.")
        self.wait = wait


def wait_for_slot(name: str, rate: Rate, *, max_block: float = 5.0) -> None:
    """Block up to `max_block` seconds for a slot; a longer wait raises RateLimited, so the
    caller can retry its task later instead of holding a worker process idle."""
    deadline = time.monotonic() + max_block
    while True:
        wait = acquire(name, rate)
        if wait <= 0:
            return
        if time.monotonic() + wait > deadline:
            raise RateLimited(name, wait)
        time.sleep(wait)
