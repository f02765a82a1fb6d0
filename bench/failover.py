"""What high availability costs and what a failover takes: a primary, a replica and three
sentinels on loopback (``cli.redis_ha``), two API-only stacks through the sentinels.

- Submit latency with ``ATELIER_REDIS_MIN_REPLICAS=1`` (every acknowledged write waits for
  the replica: ``INCR`` + ``WAIT``) against 0, on the same Redis group, requests alternating
  between the two so both see the same machine.
- Worst unavailability: submits one after another while the primary is killed with kill -9
  and, once the sentinels have promoted the replica, started again as its replica (a
  supervisor's restart). The longest wait between two acknowledged submits, against the
  sentinels' own promotion time.
"""

from __future__ import annotations

import secrets
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from atelier.cli.processes import free_port
from atelier.cli.redis_ha import Address, RedisGroup, start_group
from atelier.cli.stack import EmbeddedStack
from bench.common import BENCH_LIMITS, Result, percentile
from bench.jobs import _bench_model

LOOPBACK = "127.0.0.1"
WAIT_COST_GOAL_MS = 1.0
UNAVAILABLE_GOAL_SECONDS = 20.0


@contextmanager
def _group(directory: Path) -> Iterator[RedisGroup]:
    from atelier.shared.settings import Settings

    group = start_group(
        Settings(),
        directory / "redis",
        nodes=[Address(LOOPBACK, free_port()) for _ in range(2)],
        sentinels=[Address(LOOPBACK, free_port()) for _ in range(3)],
        password=secrets.token_hex(12),
    )
    try:
        yield group
    finally:
        group.stop()


@contextmanager
def _api(directory: Path, group: RedisGroup, db: int, min_replicas: int) -> Iterator[_Submits]:
    from atelier.shared.redis_client import redis_for
    from atelier.shared.settings import Settings

    base = Settings.from_env(
        {}, data_dir=directory, log_format="text", redis_min_replicas=min_replicas, **BENCH_LIMITS
    )
    stack = EmbeddedStack(base, port=free_port(), worker_roles=(), external_redis_url=group.url(db))
    settings = stack.start()
    try:
        yield _Submits(settings.api_url, stack.api_key, _bench_model(redis_for(settings)))
    finally:
        stack.stop()


class _Submits:
    def __init__(self, url: str, key: str, model_id: str) -> None:
        self.url = f"{url}/v1/jobs"
        self.body = {"type": "generate", "kind": "dcgan", "params": {"model_id": model_id}}
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def once(self) -> tuple[int, float]:
        """One submit: its status and seconds."""
        started = time.perf_counter()
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        answer = self.http.post(self.url, json=self.body, headers=headers, timeout=60)
        return answer.status_code, time.perf_counter() - started


def failover(size: str) -> list[Result]:
    count = 300 if size == "quick" else 1500
    with tempfile.TemporaryDirectory(prefix="atelier-bench-ha-") as raw, _group(Path(raw)) as group:
        root = Path(raw)
        with _api(root / "on", group, 1, 1) as waiting, _api(root / "off", group, 2, 0) as plain:
            on: list[float] = []
            off: list[float] = []
            for _ in range(count):
                for api, found in ((waiting, on), (plain, off)):
                    status, seconds = api.once()
                    assert status == 202, status
                    found.append(seconds * 1000)
            gap, promoted, refused = _kill_primary(group, waiting)
    cost = percentile(on, 0.5) - percentile(off, 0.5)
    return [
        Result(
            "submit p50 with writes confirmed by a replica (WAIT)",
            percentile(on, 0.5),
            percentile(off, 0.5),
            "same API, ATELIER_REDIS_MIN_REPLICAS=0",
            "ms",
            percentile(on, 0.5) / percentile(off, 0.5),
            f"<= +{WAIT_COST_GOAL_MS:g} ms",
            cost <= WAIT_COST_GOAL_MS,
            f"+{cost:.2f} ms; p95 {percentile(on, 0.95):.2f} against "
            f"{percentile(off, 0.95):.2f} ms; {count} submits each, alternating",
        ),
        Result(
            "longest wait between acknowledged submits across kill -9 of the primary",
            gap,
            promoted,
            "the sentinels' promotion of the replica",
            "s",
            gap / promoted,
            f"<= {UNAVAILABLE_GOAL_SECONDS:g} s",
            gap <= UNAVAILABLE_GOAL_SECONDS,
            f"{refused} submits answered 503 meanwhile (retried); the old primary started "
            "again as a replica once the replica was promoted",
        ),
    ]


def _kill_primary(group: RedisGroup, api: _Submits) -> tuple[float, float, int]:
    """(longest gap between 2xx answers, seconds to promotion, 503s) around the kill."""
    old = group.primary()
    last_ok = time.monotonic()
    killed = last_ok
    gap, promoted, refused = 0.0, 0.0, 0
    group.node_at(old).kill()
    restarted = False
    while time.monotonic() - killed < 30:
        status, _ = api.once()
        now = time.monotonic()
        if status == 202:
            gap, last_ok = max(gap, now - last_ok), now
        else:
            refused += 1
            time.sleep(0.2)
        if not restarted and _promoted(group, old):
            promoted = now - killed
            group.start_again(group.node_at(old))
            restarted = True
        if restarted and now - last_ok < 0.5 and now - killed > promoted + 5:
            break
    return gap, promoted or float("nan"), refused


def _promoted(group: RedisGroup, old: Address) -> bool:
    try:
        return group.primary() != old
    except RuntimeError:
        return False
