"""Benchmarks that run whole jobs through a real stack (API → Redis → Celery → worker)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
import requests

from atelier.client import Client, Job, epoch_seconds
from atelier.shared.models import ModelRecord, ModelStore
from bench.common import (
    Result,
    median,
    percentile,
    seconds_between,
    stack,
    succeeded,
    timed,
    train_dcgan,
)

BATCH, FILTERS, LATENT = 64, 32, 64
TRAIN = {"dataset": "digits", "batch_size": BATCH, "base_filters": FILTERS, "latent_dim": LATENT}


def training_throughput(size: str) -> list[Result]:
    """dcgan steps/s inside a job (progress, samples, checkpoints on) against a plain
    Keras `fit` of the same network, batch and data in a fresh process (`bench.plain_dcgan`),
    run before and after the job; each side's best run counts."""
    steps = 300 if size == "quick" else 1000
    plain = [_plain_keras_steps_per_second(steps)]
    in_job = []
    with stack(("train",)) as (_, client):
        for _ in range(1 if size == "quick" else 2):
            in_job.append(_job_steps_per_second(client, steps))
            plain.append(_plain_keras_steps_per_second(steps))
    ratio = max(in_job) / max(plain)
    return [
        Result(
            "dcgan training, steps/s in a job",
            max(in_job),
            max(plain),
            "plain Keras fit, own process",
            "steps/s",
            ratio,
            ">= 0.95",
            ratio >= 0.95,
            f"{steps} steps; job runs {', '.join(f'{r:.1f}' for r in in_job)}, "
            f"plain runs {', '.join(f'{r:.1f}' for r in plain)}",
        )
    ]


def _job_steps_per_second(client: Client, steps: int) -> float:
    job = client.submit(
        "train",
        "dcgan",
        {**TRAIN, "steps": steps, "sample_every": 100, "checkpoint_every": 250},
    )
    seen: list[tuple[float, int]] = []

    def record(current: Job) -> None:
        progress = current["progress"]
        if progress["updated_at"] and progress["step"]:
            seen.append((epoch_seconds(progress["updated_at"]), progress["step"]))

    succeeded(client.wait(job["id"], on_update=record, poll_seconds=0.2, timeout=1800))
    # Steady state: from a fifth of the way in to the end (TF start-up excluded, as in
    # the baseline).
    window = [(t, s) for t, s in seen if s >= steps // 5]
    (t0, s0), (t1, s1) = window[0], window[-1]
    return (s1 - s0) / (t1 - t0)


def _plain_keras_steps_per_second(steps: int) -> float:
    argv = [sys.executable, "-m", "bench.plain_dcgan", "--steps", str(steps)]
    argv += ["--batch", str(BATCH), "--filters", str(FILTERS), "--latent", str(LATENT)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=1800)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["steps_per_second"])


def scale(size: str) -> list[Result]:
    """List and submit latency with many queued jobs against an (almost) empty system, and
    Redis memory per queued job. No workers run, so every job stays queued.

    Two stacks side by side, one filled and one not, with their requests alternated (in
    ABBA order): measured one after the other, the empty side came first, on a stack just
    started, and any drift of the machine's load between the two phases went into the
    ratio (0.84 on a loaded machine, 1.30 / 1.49 on a fresh clone, 0.97-1.00 quiet;
    bench/results/spread-2026-12-06.md)."""
    count = 2000 if size == "quick" else 10_000
    with stack(()) as (filled, filled_client), stack(()) as (empty, empty_client):
        assert filled.settings is not None and empty.settings is not None
        r = redis.Redis.from_url(filled.settings.redis_url)
        full_api = _QueuedJobs(filled_client.http, filled.settings.api_url, _bench_model(r))
        empty_api = _QueuedJobs(
            empty_client.http,
            empty.settings.api_url,
            _bench_model(redis.Redis.from_url(empty.settings.redis_url)),
        )
        empty_api.fill(EMPTY_JOBS)
        memory_before = int(r.info("memory")["used_memory"])
        jobs_before = int(r.zcard("atelier:owner:local:jobs"))
        full_api.fill(count)
        per_job = (int(r.info("memory")["used_memory"]) - memory_before) / (
            int(r.zcard("atelier:owner:local:jobs")) - jobs_before
        )
        time.sleep(2)  # Redis fsyncs its append-only file each second: let the fill's settle
        _alternated(full_api.list_page, empty_api.list_page, WARM_UP)  # not counted
        full_list, empty_list = _alternated(full_api.list_page, empty_api.list_page, 300)
        full_submit, empty_submit = _alternated(full_api.submit, empty_api.submit, 100)
    return [
        _scale_result(
            f"list page p50 with {count} queued jobs", full_list, empty_list, f"{EMPTY_JOBS} jobs"
        ),
        _scale_result(
            f"submit p50 with {count} queued jobs", full_submit, empty_submit, f"{EMPTY_JOBS} jobs"
        ),
        Result(
            "Redis memory per queued job",
            per_job,
            2048,
            "goal",
            "bytes",
            per_job / 2048,
            "<= 1 (2 KB)",
            per_job <= 2048,
        ),
    ]


EMPTY_JOBS = 20  # queued on the almost empty side: its list pages are full (20 a page)
WARM_UP = 20  # list pages on each side before the timed ones: the filled side's API
# processes have just served its 2,000 submits, the other side's only 20


def _alternated(
    first: Callable[[], object], second: Callable[[], object], n: int
) -> tuple[list[float], list[float]]:
    """``n`` timings of each, alternated in ABBA order so neither always goes first."""
    times: tuple[list[float], list[float]] = ([], [])
    for index in range(n):
        order = ((0, first), (1, second)) if index % 2 == 0 else ((1, second), (0, first))
        for side, action in order:
            times[side].append(timed(action))
    return times


def _bench_model(r: redis.Redis) -> str:
    """A model record to name, so submits are valid: the scale is in jobs, not models."""
    record = ModelRecord(
        id="model_bench",
        owner="local",
        kind="dcgan",
        config={},
        weights_key="w",
        source_job_id="job_x",
        dataset="digits",
        steps=1,
        created_at=time.time(),
    )
    return ModelStore(r).save(record).id


@dataclass
class _QueuedJobs:
    """Raw HTTP submits and list pages against a stack with no workers."""

    session: requests.Session
    url: str
    model_id: str

    @property
    def body(self) -> dict[str, object]:
        return {"type": "generate", "kind": "dcgan", "params": {"model_id": self.model_id, "n": 1}}

    def submit(self) -> None:
        response = self.session.post(f"{self.url}/v1/jobs", json=self.body, timeout=30)
        assert response.status_code == 202, response.text

    def list_page(self) -> None:
        response = self.session.get(f"{self.url}/v1/jobs", params={"limit": 20}, timeout=30)
        assert response.status_code == 200 and len(response.json()["data"]) == 20

    def submit_latencies(self, n: int) -> list[float]:
        return [timed(self.submit) for _ in range(n)]

    def list_latencies(self, n: int) -> list[float]:
        return [timed(self.list_page) for _ in range(n)]

    def fill(self, count: int) -> None:
        for _ in range(count):
            self.submit()


def _scale_result(name: str, full: list[float], empty: list[float], baseline: str) -> Result:
    ratio = median(full) / median(empty)
    return Result(
        name,
        median(full) * 1000,
        median(empty) * 1000,
        baseline,
        "ms",
        ratio,
        "<= 1.2",
        ratio <= 1.2,
        f"p95 {percentile(full, 0.95) * 1000:.1f} ms",
    )


def warm_vs_cold(size: str) -> list[Result]:
    """A generate job on a model the worker has loaded, against the first on that model
    (server-side submit → finish; the worker has TensorFlow loaded for both)."""
    repeats = 3 if size == "quick" else 7
    with stack() as (_, client):
        models = [train_dcgan(client) for _ in range(repeats + 1)]

        def latency(model_id: str) -> float:
            job = client.wait(
                client.submit("generate", "dcgan", {"model_id": model_id, "n": 16})["id"],
                poll_seconds=0.02,
                timeout=120,
            )
            return seconds_between(succeeded(job)["created_at"], job["finished_at"])

        latency(models[0])  # TensorFlow start-up, so "cold" means a cold model only
        cold = [latency(m) for m in models[1:]]
        warm = [latency(models[1]) for _ in range(repeats)]
    ratio = median(warm) / median(cold)
    return [
        Result(
            "generate latency, warm model",
            median(warm) * 1000,
            median(cold) * 1000,
            "cold model",
            "ms",
            ratio,
            "<= 0.2",
            ratio <= 0.2,
        )
    ]
