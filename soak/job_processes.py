"""The job-process faults both soak clusters make (one host or three): find the process
running each job from its record, and kill or pause it."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import redis

from atelier.shared.jobs import JobStatus, JobStore


class JobProcessFaults:
    """Mixed into a cluster that has ``redis()``: the namespaces of the three-host soak
    share this machine's pid space, so a record's ``host:pid`` names the process."""

    def redis(self) -> redis.Redis:
        raise NotImplementedError

    def running_job_pids(self) -> dict[str, int]:
        """job id → pid of the process running it (the record names ``host:pid``)."""
        store = JobStore(self.redis())
        return {
            job.id: int(job.worker.rsplit(":", 1)[1])
            for job in store.get_many(store.leased())
            if job.status is JobStatus.RUNNING and job.worker
        }

    def kill_job_process(self, pid: int) -> None:
        _signal(pid, signal.SIGKILL)

    def pause_job_process(self, pid: int, seconds: float) -> None:
        _signal(pid, signal.SIGSTOP)
        time.sleep(seconds)
        _signal(pid, signal.SIGCONT)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
