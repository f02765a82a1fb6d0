"""Acknowledged means durable: a write Atelier answers 2xx for, or acts on, is held by
``ATELIER_REDIS_MIN_REPLICAS`` replicas first.

Redis replicates asynchronously: a write the primary has taken but not yet sent is gone
when a replica is promoted in its place. ``WAIT n timeout`` blocks until ``n`` replicas
hold every write *the calling connection* made. Our writes go out over pooled connections
(pipelines, scripts, kombu's own), so the WAIT cannot ride on the connection that wrote.
Instead one round trip sends ``INCR {p}:durable`` and then ``WAIT`` on the same connection:
the replication stream is one ordered log, so a replica that acknowledges the INCR holds
every write the primary took before it, ours included. With ``min_replicas`` 0 (a single
Redis) nothing is sent.

``confirm`` raises ``NotReplicated`` (a 503 with ``Retry-After``) when too few replicas
answer, and also when the primary refuses the INCR for lagging replicas
(``min-replicas-to-write``, ``NOREPLICAS``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from redis.client import Pipeline

from .errors import NotReplicated
from .redis_keys import KEYS, RedisKeys

RETRY_AFTER_SECONDS = 2
"""What a 503 for an unconfirmed write asks the client to wait: a replica that lags is
usually back within a second or two; a failover takes about ten."""


class Durability:
    def __init__(
        self,
        client: redis.Redis,
        min_replicas: int,
        wait_seconds: float,
        keys: RedisKeys = KEYS,
    ) -> None:
        self._redis = client
        self.min_replicas = min_replicas
        self._wait_ms = max(1, int(wait_seconds * 1000))
        self._keys = keys

    def replicas_holding(self) -> int:
        """How many replicas hold every write the primary had taken when this was called;
        at most ``min_replicas`` are waited for."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(self._keys.durable)
        pipe.wait(self.min_replicas, self._wait_ms)
        _, acknowledged = pipe.execute()
        return int(acknowledged)

    def confirmed_read(self, read: Callable[[Pipeline], object]) -> list[Any] | None:
        """The answers to the commands ``read`` queues, sent on one connection with the
        INCR and WAIT: None when too few replicas hold what that node has. What a node no
        replica follows shows may be a view a failover throws away (a primary cut off from
        its replica, or an old one a process still reaches), so it must not be acted on.
        A confirmation on another connection could reach another node."""
        pipe = self._redis.pipeline(transaction=False)
        read(pipe)
        queued = len(pipe)
        if self.min_replicas > 0:
            pipe.incr(self._keys.durable)
            pipe.wait(self.min_replicas, self._wait_ms)
        answers = pipe.execute()
        if self.min_replicas > 0 and int(answers[-1]) < self.min_replicas:
            return None
        return list(answers[:queued])

    def confirm(self, what: str = "The write") -> None:
        """Return once enough replicas hold every write made so far; else NotReplicated."""
        if self.min_replicas <= 0:
            return
        try:
            held = self.replicas_holding()
        except redis.ResponseError as exc:  # NOREPLICAS: the primary refuses writes now
            raise NotReplicated(
                f"{what} could not be confirmed: Redis refuses writes while its replicas "
                "lag. Retry shortly.",
                retry_after=RETRY_AFTER_SECONDS,
            ) from exc
        if held < self.min_replicas:
            raise NotReplicated(
                f"{what} was confirmed by {held} of the {self.min_replicas} Redis replicas "
                "required, so it could be lost in a failover. Retry shortly (with the same "
                "Idempotency-Key for a submit).",
                retry_after=RETRY_AFTER_SECONDS,
            )

    def confirmed(self) -> bool:
        """``confirm`` as a yes or no, for a worker deciding whether to go on."""
        try:
            self.confirm()
        except (NotReplicated, redis.RedisError):
            return False
        return True
