"""Bounded housekeeping: 10,000 queued jobs whose start deadlines have all passed, and one
dead worker's lease. The reaper takes them in claimed batches; the figure is its longest
sweep (goal: under 100 ms, so lease recovery never waits long), beside the one unbounded
sweep that handled everything at once before batches (same data, same run)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import redis

from atelier.shared.jobs import JobStatus, JobStore, JobType
from atelier.shared.settings import Settings
from atelier.workers.reaper import reap_once
from bench.common import Result, redis_server


def housekeeping(size: str) -> list[Result]:
    count = 2000 if size == "quick" else 10_000
    with (
        tempfile.TemporaryDirectory(prefix="atelier-bench-") as directory,
        redis_server(Path(directory), password=False) as url,
    ):
        client = redis.Redis.from_url(url)
        unbounded = _unbounded_sweep(JobStore(client), count)
        client.flushdb()
        sweeps, recovered_first = _bounded_sweeps(JobStore(client), count)
    worst = max(sweeps)
    return [
        Result(
            name=f"longest reaper sweep, {count:,} due start deadlines",
            value=worst * 1000,
            baseline=unbounded * 1000,
            baseline_name="one sweep over all of them (no batches)",
            unit="ms",
            ratio=worst / unbounded,
            goal="<= 100 ms",
            met=worst <= 0.1 and recovered_first,
            notes=f"{len(sweeps)} sweeps of <= {Settings().reaper_batch} each; the dead "
            f"worker's job requeued by the first: {recovered_first}",
        )
    ]


def _due_deadlines(store: JobStore, count: int) -> None:
    for _ in range(count):
        store.create("bench", JobType.GENERATE, "dcgan", {}, start_before=time.time() + 0.2)
    time.sleep(0.3)


def _unbounded_sweep(store: JobStore, count: int) -> float:
    """What a sweep did before batches: read every due id, expire each."""
    _due_deadlines(store, count)
    started = time.perf_counter()
    for job_id in store.missed_start_deadlines():
        store.expire(job_id, "late")
    return time.perf_counter() - started


def _bounded_sweeps(store: JobStore, count: int) -> tuple[list[float], bool]:
    _due_deadlines(store, count)
    dead = store.create("bench", JobType.TRAIN, "dcgan", {})
    store.claim(dead.id, "gone", -1)
    settings, sweeps = Settings(), []
    while True:
        started = time.perf_counter()
        report = reap_once(store, settings, lambda *_: None)
        sweeps.append(time.perf_counter() - started)
        if len(sweeps) == 1:
            job = store.get(dead.id)
            recovered_first = job is not None and job.status is JobStatus.QUEUED
        if not report.more:
            return sweeps, recovered_first
