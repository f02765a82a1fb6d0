"""Shared pieces of the benchmarks: the result record and a throwaway stack."""

from __future__ import annotations

import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atelier.cli.processes import free_port, start_redis
from atelier.cli.stack import EmbeddedStack
from atelier.client import Client, Job, Json, epoch_seconds
from atelier.shared.models import ModelRecord, ModelStore
from atelier.shared.redis_client import redis_for
from atelier.shared.settings import Settings
from atelier.shared.storage import make_object_store

TINY_DCGAN = {"steps": 20, "batch_size": 16, "base_filters": 32, "latent_dim": 64}
"""A dcgan that trains in seconds: the benchmarks that generate need a model, not a good one."""
BENCH_LIMITS = {
    "submits_per_minute": 600_000,
    "submits_burst": 100_000,
    "reads_per_minute": 600_000,
    "reads_burst": 100_000,
    "max_queued_jobs": 0,
}
"""The benchmarks measure the service, not its limits: budgets far above their load (the
rate limiter still runs on every request, so its cost is in the numbers) and no
queued-jobs quota (``scale`` queues 10,000 jobs)."""


@contextmanager
def redis_server(directory: Path, password: bool = True) -> Iterator[str]:
    """A redis-server of the benchmark's own, with Atelier's ACL user (and a fresh password
    unless ``password`` is false); its URL."""
    process, url = start_redis(
        Settings(),
        directory / "redis",
        free_port(),
        directory / "redis.log",
        password=secrets.token_hex(12) if password else "",
    )
    try:
        yield url
    finally:
        process.stop()


@dataclass
class Result:
    name: str
    value: float
    baseline: float
    baseline_name: str
    unit: str
    ratio: float
    goal: str
    met: bool
    notes: str = ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def stack(
    roles: tuple[str, ...] = ("train", "generate"),
) -> Iterator[tuple[EmbeddedStack, Client]]:
    """An `atelier up` stack of its own (own redis-server, local storage) in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as directory:
        base = Settings.from_env(
            {},
            data_dir=Path(directory),
            log_format="text",
            progress_interval_seconds=0.5,
            **BENCH_LIMITS,
        )
        running = EmbeddedStack(
            base, port=free_port(), worker_roles=roles, redis_admin_password=secrets.token_hex(16)
        )
        settings = running.start()
        try:
            yield running, Client(settings.api_url, running.api_key, timeout=120)
        finally:
            running.stop()


def admin_url(running: EmbeddedStack) -> str:
    """The stack's Redis as its ``default`` user: for a raw baseline (plain Celery with a
    result backend, plain XREAD), whose commands Atelier's ACL user is not given."""
    assert running.settings is not None and running.redis_admin_password
    address = running.settings.redis_url.rsplit("@", 1)[-1]
    return f"redis://default:{running.redis_admin_password}@{address}"


def timed(action: Callable[[], object]) -> float:
    """Seconds ``action`` takes."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def succeeded(job: Job) -> Job:
    """``job``, which must have succeeded."""
    assert job["status"] == "succeeded", job["error"]
    return job


def train_dcgan(client: Client, params: Json | None = None) -> str:
    """Train a dcgan (tiny by default) and wait: the new model's id."""
    job = client.submit("train", "dcgan", params or TINY_DCGAN)
    model_id = succeeded(client.wait(job["id"], timeout=600))["model_id"]
    assert model_id is not None
    return model_id


def model_weights(settings: Settings, model_id: str) -> tuple[ModelRecord, bytes]:
    """A stored model's record and its weights file."""
    record = ModelStore(redis_for(settings)).get(model_id)
    assert record is not None, model_id
    return record, make_object_store(settings).get_bytes(record.weights_key)


def seconds_between(began: str | None, ended: str | None) -> float:
    """Seconds from one of a job's timestamps (ISO 8601, from the server) to another;
    both must be set."""
    assert began is not None and ended is not None, (began, ended)
    return epoch_seconds(ended) - epoch_seconds(began)
