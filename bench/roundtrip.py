"""Job round trip: a minimal generation job through Atelier (HTTP submit, poll until
`succeeded`) against the same generation as a raw Celery task (`apply_async` → result) on
the same Redis, with the same Celery settings and one prefork child each."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from atelier.cli.processes import ManagedProcess, child_env, wait_until, worker_argv
from atelier.shared.models import ModelStore
from atelier.shared.redis_client import connect
from atelier.shared.storage import make_object_store
from bench import raw_celery
from bench.common import Result, median, percentile, stack

TINY = {"steps": 20, "batch_size": 16, "base_filters": 32, "latent_dim": 64}
POLL_SECONDS = 0.002  # one job in flight: fine polling, to resolve a few milliseconds
BATCH_POLL_SECONDS = 0.02  # many in flight: polling must not steal the worker's CPU


def round_trip(size: str) -> list[Result]:
    sequential, batch = (30, 40) if size == "quick" else (150, 200)
    with stack(("generate", "train")) as (running, client):
        settings = running.settings
        assert settings is not None
        model_id = client.wait(client.submit("train", "dcgan", TINY)["id"], timeout=600)["model_id"]
        record = ModelStore(connect(settings.redis_url)).get(model_id)
        assert record is not None
        weights = running.data_dir / "bench-weights.npz"
        weights.write_bytes(make_object_store(settings).get_bytes(record.weights_key))
        # An Atelier worker's command line with only the Celery app swapped: same pool,
        # concurrency, prefetch and acknowledgement settings.
        argv = worker_argv(raw_celery.QUEUE, "bench-raw")
        argv[argv.index("atelier.workers.celery_app")] = "bench.raw_celery"
        raw_worker = ManagedProcess(
            "raw-celery",
            argv,
            child_env(settings),
            running.data_dir / "logs" / "raw-celery.log",
        )
        try:
            app = raw_celery.app
            app.conf.update(broker_url=settings.redis_url, result_backend=settings.redis_url)
            config = json.dumps(record.config)

            def raw_once() -> None:
                result = app.send_task(
                    "bench.raw_generate",
                    args=[str(weights), config, 1, 0],
                    queue=raw_celery.QUEUE,
                )
                assert result.get(timeout=60)

            def submit() -> str:
                return str(client.submit("generate", "dcgan", {"model_id": model_id, "n": 1})["id"])

            def wait(job_id: str, poll: float = POLL_SECONDS) -> None:
                done = client.wait(job_id, poll_seconds=poll, timeout=600)
                assert done["status"] == "succeeded", done["error"]

            def atelier_once() -> None:
                wait(submit())

            wait_until(raw_worker.alive, 5, "the raw Celery worker")
            for _ in range(5):  # TensorFlow start-up and the model load, on both sides
                raw_once()
                atelier_once()
            raw_latency, atelier_latency = [], []
            for _ in range(sequential):  # interleaved, so drift hits both alike
                raw_latency.append(_timed(raw_once))
                atelier_latency.append(_timed(atelier_once))

            def raw_batch() -> None:
                results = [
                    app.send_task(
                        "bench.raw_generate",
                        args=[str(weights), config, 1, 0],
                        queue=raw_celery.QUEUE,
                    )
                    for _ in range(batch)
                ]
                for result in results:
                    assert result.get(timeout=600)

            def atelier_batch() -> None:
                for job_id in [submit() for _ in range(batch)]:
                    wait(job_id, BATCH_POLL_SECONDS)

            raw_rates, atelier_rates = [], []
            for _ in range(2):
                raw_rates.append(batch / _timed(raw_batch))
                atelier_rates.append(batch / _timed(atelier_batch))
        finally:
            raw_worker.stop()
    raw_rate, atelier_rate = max(raw_rates), max(atelier_rates)
    throughput = atelier_rate / raw_rate
    p50, raw_p50 = median(atelier_latency), median(raw_latency)
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
            "<= raw + 10 ms",
            p50 <= raw_p50 + 0.010,
            f"p95 {percentile(atelier_latency, 0.95) * 1000:.1f} ms against "
            f"{percentile(raw_latency, 0.95) * 1000:.1f} ms; polling every "
            f"{POLL_SECONDS * 1000:.0f} ms",
        ),
    ]


def _timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
