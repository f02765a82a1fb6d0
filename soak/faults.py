"""A seeded schedule of faults against a running cluster.

Each fault is drawn from the seed alone (its kind, target and timing), so a run that found a
bug is repeated with the same ``--seed``. A fault that needs a running job (kill -9 or
SIGSTOP of a job process) falls back to another kind when none runs at that moment.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Protocol

from soak.cluster import LEASE_SECONDS, TRAIN_WORKERS, Cluster
from soak.ledger import Fault, Ledger
from soak.netns import IsolatedWorker

KINDS = (
    "kill-job-process",
    "pause-job-process",
    "restart-worker",
    "kill-redis",
    "stop-s3",
    "restart-api",
    "cut-network",
)


class JobProcesses(Protocol):
    """A cluster whose running jobs' processes can be found and signalled."""

    def running_job_pids(self) -> dict[str, int]: ...

    def kill_job_process(self, pid: int) -> None: ...

    def pause_job_process(self, pid: int, seconds: float) -> None: ...


def job_process_fault(
    cluster: JobProcesses, kind: str, rng: random.Random, pause_seconds: float
) -> str | None:
    """kill -9, or SIGSTOP for ``pause_seconds``, of a running job's process: the job's
    id, or None when no job runs."""
    running = cluster.running_job_pids()
    if not running:
        return None
    job_id = rng.choice(sorted(running))
    if kind == "kill-job-process":
        cluster.kill_job_process(running[job_id])
    else:  # past the lease, so the job moves on and the old process is fenced off
        cluster.pause_job_process(running[job_id], pause_seconds)
    return job_id


class FaultInjector(threading.Thread):
    def __init__(
        self,
        cluster: Cluster,
        ledger: Ledger,
        seed: int,
        every: tuple[float, float],
        isolated: IsolatedWorker | None,
    ) -> None:
        super().__init__(name="faults", daemon=True)
        self.cluster = cluster
        self.ledger = ledger
        self.rng = random.Random(seed ^ 0x5EED)
        self.every = every
        self.isolated = isolated
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.rng.uniform(*self.every)):
            kind = self.rng.choice([k for k in KINDS if k != "cut-network" or self.isolated])
            fault = self.inject(kind)
            fault.ended = time.time()
            with self.ledger.lock:
                self.ledger.faults.append(fault)

    def inject(self, kind: str) -> Fault:
        started = time.time()
        if kind in ("kill-job-process", "pause-job-process"):
            job_id = job_process_fault(self.cluster, kind, self.rng, LEASE_SECONDS * 2.5)
            if job_id is None:
                return self.inject("restart-worker")
            return Fault(kind, job_id, started)
        return Fault(kind, self._node_fault(kind), started)

    def _node_fault(self, kind: str) -> str:
        if kind == "restart-worker":
            name = self.rng.choice((*TRAIN_WORKERS, "worker-generate"))
            self.cluster.terminate_worker(name)
            return name
        if kind == "kill-redis":
            self.cluster.kill_redis()
            return "redis"
        if kind == "stop-s3":
            seconds = self.rng.uniform(10, 30)
            self.cluster.stop_s3(seconds)
            return f"s3 ({seconds:.0f} s)"
        if kind == "restart-api":
            self.cluster.restart_api()
            return "api"
        assert self.isolated is not None
        seconds = LEASE_SECONDS * self.rng.uniform(1.5, 3.0)
        self.isolated.cut(seconds)
        return f"{self.isolated.name} ({seconds:.0f} s)"


def measure_recovery(ledger: Ledger) -> None:
    """Each fault recovered when a job was next seen advancing or finishing after it ended."""
    with ledger.lock:
        events = sorted(ledger.progress_events)
        for fault in ledger.faults:
            fault.recovered = next((t for t in events if t >= fault.ended), None)
