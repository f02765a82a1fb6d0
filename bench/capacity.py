"""How far one Redis carries a cluster: simulated GPU workers (``bench.capacity_sim``: the
real claim, lease, progress and finish, no TensorFlow) at 16, 64 and 256 workers, and the
real submit path at rising rates, against one redis-server with Atelier's ACL user.

Per phase: claims/s, submits/s, Redis CPU (``INFO cpu`` deltas over wall time, as a share
of its one core), ``used_memory``, p99 of claim and submit, jobs left queued, and the
machine's CPU, which says which side saturated. Each worker count opens with a steady
phase (every worker on a long job, no submits) for the cost of a running job per second.
Then: Redis commands per job (``INFO commandstats``) split into submit and worker, and the
cost of ``WAIT`` for one replica (``ATELIER_REDIS_MIN_REPLICAS=1``) against none, on the
same primary and replica. Writes ``bench/results/capacity.md``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis

from atelier.cli.processes import free_port
from atelier.cli.redis_acl import ATELIER_USER
from atelier.cli.redis_ha import Address, start_group
from atelier.shared.auth import ApiKeyStore
from atelier.shared.jobs import JobStore, JobType
from atelier.shared.models import ModelStore
from atelier.shared.queue import enqueue, make_celery
from atelier.shared.redis_keys import KEYS
from atelier.shared.settings import Settings
from bench.capacity_report import (
    CPU,
    Collected,
    Row,
    best,
    commands_table,
    ratio_results,
    write_report,
)
from bench.capacity_sim import (
    Shared,
    SubmitPlan,
    sim_model,
    start,
    submitter_process,
    worker_process,
)
from bench.common import BENCH_LIMITS, Result, redis_server

OWNERS = [f"tenant{n}" for n in range(8)]
WORKER_PROCESSES = 3
SUBMIT_PROCESSES = 2


@dataclass(frozen=True)
class Phase:
    name: str
    rate: float
    """Submits a second offered (0: none)."""
    seconds: float
    job_seconds: int = 1
    steady: bool = False
    """Every worker on a long job first, canceled after: a running job's cost per second."""


@dataclass(frozen=True)
class Plan:
    workers: tuple[int, ...]
    rates: tuple[float, ...]
    phase_seconds: float
    jobs_counted: int
    wait_workers: int
    wait_rate: float


PLANS = {
    "quick": Plan((16, 64, 256), (20, 60, 180), 5.0, 200, 64, 40),
    "full": Plan((16, 64, 256), (10, 20, 40, 80, 160, 320), 15.0, 1000, 64, 60),
}


class Probe:
    """Redis's own figures (``INFO``), read as Atelier's ACL user."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def cpu_seconds(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def memory(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def commands(self) -> dict[str, tuple[int, int]]:
        """Calls and microseconds per command since the server started."""
        stats = self.client.info("commandstats")
        found = {
            name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in stats.items()
        }
        found[CPU] = (int(self.cpu_seconds() * 1e6), 0)  # used_cpu, µs
        return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU ticks of the whole machine, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def settings_for(url: str, directory: Path, min_replicas: int = 0) -> Settings:
    return Settings.from_env(
        {},
        redis_url=url,
        data_dir=directory,
        local_storage_dir=directory / "objects",
        log_level="WARNING",
        kind_plugins="bench.capacity_sim:KIND",
        max_running_jobs=100_000,
        redis_min_replicas=min_replicas,
        **BENCH_LIMITS,
    )


def tenants(client: redis.Redis) -> list[tuple[str, str]]:
    """An API key and a sim model for each owner: (key, model id)."""
    found = []
    for owner in OWNERS:
        model = ModelStore(client).save(sim_model(owner))
        found.append((ApiKeyStore(client).create(owner), model.id))
    return found


@contextmanager
def children(
    settings: Settings, workers: int, plan: SubmitPlan | None
) -> Iterator[tuple[Shared, Collected]]:
    """Worker processes (and submitters for ``plan``); once stopped, what they measured
    is in the list yielded with the shared flags."""
    shared, found = Shared.make(), cast(Collected, [])
    procs = []
    n = WORKER_PROCESSES
    per = [workers // n + (i < workers % n) for i in range(n)]
    for threads in filter(None, per):
        procs.append(start(worker_process, settings, threads, settings.data_dir, shared))
    for _ in range(SUBMIT_PROCESSES if plan else 0):
        procs.append(start(submitter_process, settings, plan, shared))
    try:
        yield shared, found
    finally:
        shared.stop.set()
        found += [shared.results.get(timeout=120) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)


def run_series(
    url: str, directory: Path, workers: int, phases: list[Phase], min_replicas: int = 0
) -> list[Row]:
    """One worker count through ``phases``: a row per phase."""
    client = redis.Redis.from_url(url)
    settings = settings_for(url, directory, min_replicas)
    keys = tenants(client)
    rates = {i + 1: p.rate / SUBMIT_PROCESSES for i, p in enumerate(phases)}
    plan = SubmitPlan(rates, {i + 1: p.job_seconds for i, p in enumerate(phases)}, keys)
    probe, measured = Probe(client), []
    with children(settings, workers, plan) as (shared, found):
        time.sleep(2.0 + workers / 100)  # the workers' first BRPOPs
        for i, phase in enumerate(phases, start=1):
            long_jobs = steady_jobs(client, settings, workers) if phase.steady else []
            before = (time.perf_counter(), probe.cpu_seconds(), machine_busy())
            shared.phase.value = i
            time.sleep(phase.seconds)
            after = (time.perf_counter(), probe.cpu_seconds(), machine_busy())
            queued = int(client.zcard(KEYS.queued(JobType.GENERATE.value)))
            measured.append((before, after, probe.memory(), queued))
            shared.phase.value = 0
            stop_jobs(client, long_jobs)
    return [
        Row.of(workers, phase, i, m, found, min_replicas)
        for i, (phase, m) in enumerate(zip(phases, measured, strict=True), start=1)
    ]


def steady_jobs(client: redis.Redis, settings: Settings, count: int) -> list[str]:
    """``count`` hour-long jobs, created and sent as the API does, once all run."""
    store, celery = JobStore(client), make_celery(settings)
    ids = []
    for n in range(count):
        owner = OWNERS[n % len(OWNERS)]
        params = {"model_id": sim_model(owner).id, "seconds": 3600}
        job = store.create(owner, JobType.GENERATE, "sim", params)
        enqueue(celery, settings, job.id, JobType.GENERATE)
        ids.append(job.id)
    deadline = time.monotonic() + 60
    while client.zcard(KEYS.running) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    return ids


def stop_jobs(client: redis.Redis, ids: list[str]) -> None:
    store = JobStore(client)
    for job_id in ids:
        store.request_cancel(job_id)
    deadline = time.monotonic() + 30
    while ids and client.zcard(KEYS.running) and time.monotonic() < deadline:
        time.sleep(0.2)


def count_commands(url: str, directory: Path, jobs: int) -> dict[str, Any]:
    """Commands per job: ``jobs`` submits with no worker, then one worker runs them all
    (its idle polling, measured after, taken off). One worker: no claim races, so this is
    a job's own cost; what racing claims add shows as picks per claim in the rows."""
    from atelier.api.app import create_app

    client, probe = redis.Redis.from_url(url), Probe(redis.Redis.from_url(url))
    settings = settings_for(url, directory)
    keys = tenants(client)
    http = create_app(settings).test_client()
    marks = [probe.commands()]
    for n in range(jobs):
        key, model_id = keys[n % len(keys)]
        body = {"type": "generate", "kind": "sim", "params": {"model_id": model_id, "seconds": 0}}
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": secrets.token_hex(8)}
        assert http.post("/v1/jobs", json=body, headers=headers).status_code == 202
    marks.append(probe.commands())
    with children(settings, 1, None) as (_, found):
        began = time.perf_counter()
        while client.zcard(KEYS.queued("generate")) or client.zcard(KEYS.running):
            time.sleep(0.05)
        ran = time.perf_counter() - began
        marks.append(probe.commands())
        time.sleep(3.0)
        marks.append(probe.commands())
    ended = sum(
        n for _, _, counts in found for (_, what), n in counts.items() if what == "succeeded"
    )
    return commands_table(marks, jobs, ran / 3.0, ended)


def wait_cost(directory: Path, plan: Plan) -> list[Row]:
    """The same load with writes confirmed by one replica and without, on one group."""
    group = start_group(
        Settings(),
        directory / "ha",
        nodes=[Address("127.0.0.1", free_port()) for _ in range(2)],
        sentinels=[],
        password=secrets.token_hex(12),
    )
    try:
        primary = group.nodes[0].address
        rows = []
        for db, replicas in ((1, 0), (2, 1)):
            url = f"redis://{ATELIER_USER}:{group.password}@{primary.host}:{primary.port}/{db}"
            phase = Phase(f"WAIT {'on' if replicas else 'off'}", plan.wait_rate, plan.phase_seconds)
            rows += run_series(url, directory / f"db{db}", plan.wait_workers, [phase], replicas)
        return rows
    finally:
        group.stop()


def capacity(size: str) -> list[Result]:
    plan, load = PLANS[size], os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="atelier-bench-cap-") as raw:
        root = Path(raw)
        with redis_server(root) as url:
            rows: list[Row] = []
            for db, workers in enumerate(plan.workers, start=1):
                phases = [Phase("steady", 0, plan.phase_seconds, steady=True)]
                phases += [Phase(f"{r:g}/s", r, plan.phase_seconds) for r in plan.rates]
                rows += run_series(
                    url.replace("/0", f"/{db}"), root / f"w{workers}", workers, phases
                )
            commands = count_commands(url.replace("/0", "/9"), root / "commands", plan.jobs_counted)
        waits = wait_cost(root, plan)
    write_report(rows, waits, commands, size, load)
    return results(rows, waits, commands)


def results(rows: list[Row], waits: list[Row], commands: dict[str, Any]) -> list[Result]:
    low, high = min(r.workers for r in rows), max(r.workers for r in rows)
    return ratio_results(best(rows, low), best(rows, high), waits, commands, rows)
