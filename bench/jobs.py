"""Benchmarks that run whole jobs through a real stack (API → Redis → Celery → worker)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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
    Redis memory per queued job. No workers run, so every job stays queued."""
    count = 2000 if size == "quick" else 10_000
    with stack(()) as (running, client):
        assert running.settings is not None
        r = redis.Redis.from_url(running.settings.redis_url)
        api = _QueuedJobs(client.http, running.settings.api_url, _bench_model(r))
        empty_submit = api.submit_latencies(50)
        empty_list = api.list_latencies(100)
        memory_before = int(r.info("memory")["used_memory"])
        jobs_before = int(r.zcard("atelier:owner:local:jobs"))
        api.fill(count)
        per_job = (int(r.info("memory")["used_memory"]) - memory_before) / (
            int(r.zcard("atelier:owner:local:jobs")) - jobs_before
        )
        full_list = api.list_latencies(100)
        full_submit = api.submit_latencies(50)
    return [
        _scale_result(f"list page p50 with {count} queued jobs", full_list, empty_list, "70 jobs"),
        _scale_result(f"submit p50 with {count} queued jobs", full_submit, empty_submit, "20 jobs"),
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
