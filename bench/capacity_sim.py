"""Simulated GPU workers and submitters for ``bench.capacity``: Atelier's own code paths
with the model taken out, so what they cost Redis is what a cluster's workers and API
processes cost it, and nothing of TensorFlow's.

- A **simulated worker** is a thread doing what a Celery job process does for each
  message: take it from the queue with kombu (Celery's transport: ``BRPOP``, acknowledged on
  receipt as ``task_acks_late=False`` does), then ``JobRunner.run``: the replica check, the
  fair claim (``JobStore.claim_next``), the lease heartbeat (``workers.lease``), the stop
  checks and throttled progress writes (``JobContext``), the finish and the tidy. The
  job's kind is ``sim``, whose plug-in reports progress once a second for ``seconds``.
- A **submitter** is the real Flask app in-process (``create_app(...).test_client()``):
  every ``POST /v1/jobs`` runs auth, the rate limit, the idempotency reservation,
  validation, the quota admission, the create, the Celery publish and the replica
  confirmation, at a paced rate.

Both run in forked processes (several, so the GIL is not the only limit) and hand their
measurements back per phase through a queue.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from pydantic import Field

from atelier.shared.jobs import Job, JobStatus, JobType
from atelier.shared.kinds import KindSpec, StrictParams, load_kind_plugins
from atelier.shared.kinds.base import model_id_field
from atelier.shared.models import ModelRecord
from atelier.shared.queue import enqueue, make_celery
from atelier.shared.settings import Settings
from atelier.shared.storage import LocalObjectStore
from atelier.workers.context import JobContext
from atelier.workers.kinds.base import GenerateResult, ModelKind, TrainResult
from atelier.workers.runner import JobRunner

MODEL_ID = "model_sim"


class SimParams(StrictParams):
    model_id: str = model_id_field("sim")
    seconds: int = Field(1, ge=0, le=3600)


KIND = KindSpec(
    name="sim",
    description="Reports progress once a second for `seconds`, then succeeds (benchmarks only).",
    train_params=SimParams,
    generate_params=SimParams,
    implementation="bench.capacity_sim:SimulatedKind",
    modality="image",
)


class SimulatedKind(ModelKind):
    """A GPU job without the GPU: progress every second, stop checks every step."""

    name = "sim"

    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        raise NotImplementedError("sim jobs only generate")

    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        seconds = int(params["seconds"])
        total = max(1, seconds)
        for step in range(seconds):
            ctx.raise_for_stop(step)
            ctx.report(step, total, {"loss": 1.0 / (step + 1)})
            time.sleep(1.0)
        ctx.raise_for_stop(total)
        ctx.report(total, total, {"loss": 0.0})
        return GenerateResult(outputs=[], metrics={"predict_time": float(params["seconds"])})


def sim_model(owner: str) -> ModelRecord:
    """The model record every sim job names (validation reads it; so does the runner)."""
    return ModelRecord(
        id=f"{MODEL_ID}_{owner}",
        owner=owner,
        kind="sim",
        config={},
        weights_key="w",
        source_job_id="job_x",
        dataset="digits",
        steps=1,
        created_at=time.time(),
    )


@dataclass
class Tally:
    """One process's measurements, by phase: latencies in seconds and counts."""

    latencies: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    counts: dict[tuple[int, str], int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, phase: int, what: str, seconds: float | None = None) -> None:
        with self.lock:
            self.counts[phase, what] += 1
            if seconds is not None:
                self.latencies[phase].append(seconds)

    def export(self) -> tuple[dict[int, list[float]], dict[tuple[int, str], int]]:
        with self.lock:
            return dict(self.latencies), dict(self.counts)


@dataclass(frozen=True)
class Shared:
    """What the controller and its children share: the phase now, and the stop flag."""

    phase: Synchronized[int]
    stop: Event
    results: Queue[tuple[str, dict[int, list[float]], dict[tuple[int, str], int]]]

    @staticmethod
    def make() -> Shared:
        return Shared(mp.Value("i", 0), mp.Event(), mp.Queue())


# --- simulated workers ---------------------------------------------------------------------
def worker_process(settings: Settings, threads: int, directory: Path, shared: Shared) -> None:
    """``threads`` simulated workers in one process, until ``shared.stop``."""
    _quiet()
    load_kind_plugins(settings.kind_plugins)
    tally = Tally()
    running = [
        threading.Thread(target=_simulated_worker, args=(settings, directory, shared, tally))
        for _ in range(threads)
    ]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    shared.results.put(("worker", *tally.export()))


def _timed_claims(runner: JobRunner, shared: Shared, tally: Tally) -> None:
    """Measure the runner's claim (replica checks included) and count its claim scripts
    (one pick each: the script has no lost race to retry, so one per claim or empty)."""
    claim, pick = runner._claim, runner.jobs.claim_next

    def timed_claim(job_id: str, job_type: JobType | None) -> Job | None:
        started = time.perf_counter()
        job = claim(job_id, job_type)
        if job is not None:
            tally.add(shared.phase.value, "claim", time.perf_counter() - started)
        else:
            tally.add(shared.phase.value, "empty")
        return job

    def counted_pick(*args: Any, **kwargs: Any) -> Any:
        tally.add(shared.phase.value, "pick")
        return pick(*args, **kwargs)

    setattr(runner, "_claim", timed_claim)  # noqa: B010 - measuring, not changing
    setattr(runner.jobs, "claim_next", counted_pick)  # noqa: B010


def _simulated_worker(settings: Settings, directory: Path, shared: Shared, tally: Tally) -> None:
    celery = make_celery(settings)

    def wake(job_id: str, job_type: JobType) -> None:
        enqueue(celery, settings, job_id, job_type)

    runner = JobRunner(settings, objects=LocalObjectStore(directory), wake=wake)
    _timed_claims(runner, shared, tally)
    with celery.connection_for_read() as connection:
        messages = connection.SimpleQueue(settings.generate_queue)
        while not shared.stop.is_set():
            try:
                message = messages.get(block=True, timeout=1)
            except queue.Empty:
                continue
            message.ack()  # on receipt, as Celery does with task_acks_late=False
            job_id = message.payload[0][0]  # Celery's protocol 2 body: [args, kwargs, embed]
            outcome = runner.run(job_id, None, JobType.GENERATE)
            tally.add(shared.phase.value, str(outcome.value if outcome else "none"))
        messages.close()


# --- submitters ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SubmitPlan:
    """Per phase: submits a second for this process, and the jobs' ``seconds``."""

    rates: dict[int, float]
    job_seconds: dict[int, int]
    keys: list[tuple[str, str]]
    """(API key, model id) per owner, taken in turn."""


def submitter_process(settings: Settings, plan: SubmitPlan, shared: Shared) -> None:
    from atelier.api.app import create_app

    _quiet()
    http = create_app(settings).test_client()
    tally = Tally()
    due, turn = time.monotonic(), 0
    while not shared.stop.is_set():
        phase = shared.phase.value
        rate = plan.rates.get(phase, 0.0)
        if rate <= 0:
            time.sleep(0.05)
            due = time.monotonic()
            continue
        due = max(due + 1.0 / rate, time.monotonic() - 1.0)  # catch up at most 1 s
        time.sleep(max(0.0, due - time.monotonic()))
        key, model_id = plan.keys[turn % len(plan.keys)]
        turn += 1
        body = {
            "type": "generate",
            "kind": "sim",
            "params": {"model_id": model_id, "seconds": plan.job_seconds.get(phase, 1)},
        }
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex}
        started = time.perf_counter()
        answer = http.post("/v1/jobs", json=body, headers=headers)
        seconds = time.perf_counter() - started
        tally.add(
            phase, f"http-{answer.status_code}", seconds if answer.status_code < 300 else None
        )
    shared.results.put(("submit", *tally.export()))


def _quiet() -> None:
    """Log lines still formatted and written, as in production, but not to the terminal."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


def start(target: Callable[..., None], *args: Any) -> mp.process.BaseProcess:
    """A forked child (no TensorFlow anywhere here, and nothing threaded in the parent)."""
    process = mp.get_context("fork").Process(target=target, args=args, daemon=True)
    process.start()
    return process


def job_statuses(counts: dict[tuple[int, str], int]) -> dict[str, int]:
    """Attempts ended, by outcome, over every phase."""
    ended: dict[str, int] = defaultdict(int)
    for (_, what), n in counts.items():
        if what in {s.value for s in JobStatus} or what == "none":
            ended[what] += n
    return dict(ended)
