"""Job round trip: a minimal generation job through Atelier (HTTP submit, poll until
`succeeded`) against the same generation as a raw Celery task (`apply_async` → result) on
the same Redis, with the same Celery settings and one prefork child each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from atelier.cli.processes import ManagedProcess, child_env, worker_argv
from atelier.cli.stack import EmbeddedStack
from atelier.client import Client
from bench import raw_celery
from bench.common import (
    Result,
    admin_url,
    median,
    model_weights,
    percentile,
    stack,
    succeeded,
    timed,
    train_dcgan,
)

POLL_SECONDS = 0.002  # one job in flight: fine polling, to resolve a few milliseconds
BATCH_POLL_SECONDS = 0.02  # many in flight: polling must not steal the worker's CPU


@dataclass
class Measured:
    raw_latency: list[float]
    atelier_latency: list[float]
    raw_rates: list[float]
    atelier_rates: list[float]


@dataclass
class Sides:
    """The same one-image generation, as an Atelier job and as a raw Celery task."""

    client: Client
    model_id: str
    app: Celery
    weights: Path
    config: str

    def raw_send(self) -> AsyncResult[Any]:
        return self.app.send_task(
            "bench.raw_generate",
            args=[str(self.weights), self.config, 1, 0],
            queue=raw_celery.QUEUE,
        )

    def raw_once(self) -> None:
        assert self.raw_send().get(timeout=60)

    def raw_batch(self, batch: int) -> None:
        for result in [self.raw_send() for _ in range(batch)]:
            assert result.get(timeout=600)

    def submit(self) -> str:
        return self.client.submit("generate", "dcgan", {"model_id": self.model_id, "n": 1})["id"]

    def wait(self, job_id: str, poll: float = POLL_SECONDS) -> None:
        succeeded(self.client.wait(job_id, poll_seconds=poll, timeout=600))

    def atelier_once(self) -> None:
        self.wait(self.submit())

    def atelier_batch(self, batch: int) -> None:
        for job_id in [self.submit() for _ in range(batch)]:
            self.wait(job_id, BATCH_POLL_SECONDS)

    def measure(self, sequential: int, batch: int) -> Measured:
        for _ in range(5):  # TensorFlow start-up and the model load, on both sides
            self.raw_once()
            self.atelier_once()
        measured = Measured([], [], [], [])
        for _ in range(sequential):  # interleaved, so drift hits both alike
            measured.raw_latency.append(timed(self.raw_once))
            measured.atelier_latency.append(timed(self.atelier_once))
        for _ in range(2):
            measured.raw_rates.append(batch / timed(lambda: self.raw_batch(batch)))
            measured.atelier_rates.append(batch / timed(lambda: self.atelier_batch(batch)))
        return measured


def round_trip(size: str) -> list[Result]:
    sequential, batch = (30, 40) if size == "quick" else (150, 200)
    with stack(("generate", "train")) as (running, client):
        sides = _prepare(running, client)
        raw_worker = _start_raw_worker(running)
        try:
            measured = sides.measure(sequential, batch)
        finally:
            raw_worker.stop()
    return _results(measured, batch)


def _prepare(running: EmbeddedStack, client: Client) -> Sides:
    """A trained model, its weights in a file for the raw task, and the raw Celery app
    pointed at the stack's Redis."""
    settings = running.settings
    assert settings is not None
    model_id = train_dcgan(client)
    record, weights = model_weights(settings, model_id)
    weights_path = running.data_dir / "bench-weights.npz"
    weights_path.write_bytes(weights)
    app = raw_celery.app
    raw_url = admin_url(running)
    app.conf.update(broker_url=raw_url, result_backend=raw_url)
    return Sides(client, model_id, app, weights_path, json.dumps(record.config))


def _start_raw_worker(running: EmbeddedStack) -> ManagedProcess:
    """An Atelier worker's command line with only the Celery app swapped: same pool,
    concurrency, prefetch and acknowledgement settings."""
    assert running.settings is not None
    argv = worker_argv(raw_celery.QUEUE, "bench-raw")
    argv[argv.index("atelier.workers.celery_app")] = "bench.raw_celery"
    worker = ManagedProcess(
        "raw-celery",
        argv,
        child_env(running.settings.replace(redis_url=admin_url(running))),
        running.data_dir / "logs" / "raw-celery.log",
    )
    worker.raise_if_exited(" at start")
    return worker


def _results(measured: Measured, batch: int) -> list[Result]:
    raw_rate, atelier_rate = max(measured.raw_rates), max(measured.atelier_rates)
    throughput = atelier_rate / raw_rate
    p50, raw_p50 = median(measured.atelier_latency), median(measured.raw_latency)
    p95 = percentile(measured.atelier_latency, 0.95) * 1000
    raw_p95 = percentile(measured.raw_latency, 0.95) * 1000
    return [
        Result(
            "round trip, minimal generate jobs/s",
            atelier_rate,
            raw_rate,
            "raw Celery apply_async → result",
            "jobs/s",
            throughput,
            ">= 0.7",
            throughput >= 0.7,
            f"{batch} jobs submitted at once, best of 2",
        ),
        Result(
            "round trip p50 latency",
            p50 * 1000,
            raw_p50 * 1000,
            "raw Celery apply_async → result",
            "ms",
            p50 / raw_p50,
            "<= raw + 5 ms",
            p50 <= raw_p50 + 0.005,
            f"p95 {p95:.1f} ms against {raw_p95:.1f} ms; Client.wait (a long poll)",
        ),
    ]
