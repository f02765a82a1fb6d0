"""Benchmarks that run whole jobs through a real stack (API → Redis → Celery → worker)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests

from atelier.client import Client, epoch_seconds
from bench.common import Result, median, percentile, stack

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

    def record(current: dict[str, object]) -> None:
        progress = current["progress"]
        assert isinstance(progress, dict)
        if progress["updated_at"] and progress["step"]:
            seen.append((epoch_seconds(str(progress["updated_at"])), int(progress["step"])))

    done = client.wait(job["id"], on_update=record, poll_seconds=0.2, timeout=1800)
    assert done["status"] == "succeeded", done["error"]
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
    body: dict[str, object] = {"type": "generate", "kind": "dcgan"}
    with stack(()) as (running, client):
        assert running.settings is not None
        import redis as redis_lib

        r = redis_lib.Redis.from_url(running.settings.redis_url)
        session = client.http
        url = running.settings.api_url
        # A model to name, so submits are valid: the scale is in jobs, not models.
        from atelier.shared.models import ModelRecord, ModelStore

        model = ModelStore(r).save(
            ModelRecord(
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
        )
        body["params"] = {"model_id": model.id, "n": 1}

        def submit_latencies(n: int) -> list[float]:
            out = []
            for _ in range(n):
                started = time.perf_counter()
                response = session.post(f"{url}/v1/jobs", json=body, timeout=30)
                out.append(time.perf_counter() - started)
                assert response.status_code == 202, response.text
            return out

        def list_latencies(n: int) -> list[float]:
            out = []
            for _ in range(n):
                started = time.perf_counter()
                response = session.get(f"{url}/v1/jobs", params={"limit": 20}, timeout=30)
                out.append(time.perf_counter() - started)
                assert response.status_code == 200 and len(response.json()["data"]) == 20
            return out

        empty_submit = submit_latencies(50)
        empty_list = list_latencies(100)
        memory_before = int(r.info("memory")["used_memory"])
        jobs_before = int(r.zcard("atelier:owner:local:jobs"))
        _fill(session, url, body, count)
        per_job = (int(r.info("memory")["used_memory"]) - memory_before) / (
            int(r.zcard("atelier:owner:local:jobs")) - jobs_before
        )
        full_list = list_latencies(100)
        full_submit = submit_latencies(50)
    list_ratio = median(full_list) / median(empty_list)
    submit_ratio = median(full_submit) / median(empty_submit)
    return [
        Result(
            f"list page p50 with {count} queued jobs",
            median(full_list) * 1000,
            median(empty_list) * 1000,
            "70 jobs",
            "ms",
            list_ratio,
            "<= 1.2",
            list_ratio <= 1.2,
            f"p95 {percentile(full_list, 0.95) * 1000:.1f} ms",
        ),
        Result(
            f"submit p50 with {count} queued jobs",
            median(full_submit) * 1000,
            median(empty_submit) * 1000,
            "20 jobs",
            "ms",
            submit_ratio,
            "<= 1.2",
            submit_ratio <= 1.2,
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


def _fill(session: requests.Session, url: str, body: dict[str, object], count: int) -> None:
    for _ in range(count):
        response = session.post(f"{url}/v1/jobs", json=body, timeout=30)
        assert response.status_code == 202, response.text


def warm_vs_cold(size: str) -> list[Result]:
    """A generate job on a model the worker has loaded, against the first on that model
    (server-side submit → finish; the worker has TensorFlow loaded for both)."""
    repeats = 3 if size == "quick" else 7
    tiny = {"steps": 20, "batch_size": 16, "base_filters": 32, "latent_dim": 64}
    with stack() as (_, client):
        models = [
            client.wait(client.submit("train", "dcgan", tiny)["id"], timeout=600)["model_id"]
            for _ in range(repeats + 1)
        ]

        def latency(model_id: str) -> float:
            job = client.wait(
                client.submit("generate", "dcgan", {"model_id": model_id, "n": 16})["id"],
                poll_seconds=0.02,
                timeout=120,
            )
            assert job["status"] == "succeeded"
            return epoch_seconds(job["finished_at"]) - epoch_seconds(job["created_at"])

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
