"""Redis connections that ride out a Redis restart instead of failing the caller."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

# ~30 s of retries (50 ms doubling to 2 s): longer than a Redis restart with AOF replay of
# a busy queue, shorter than gunicorn's 30 s timeout plus one request.
_RETRIES = 20


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), _RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=30,
        socket_connect_timeout=5,
        socket_timeout=30,
    )
