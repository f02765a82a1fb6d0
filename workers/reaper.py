"""The reaper: requeues jobs whose worker died, fails jobs that keep killing workers,
expires jobs that missed their start deadline, sends the messages of requeued jobs, sends
again the messages that were lost, and settles the storage tidies attempts had to put off.

Every worker node runs one in its Celery parent process (which never runs jobs, so it is
alive when a job process is SIGKILLed or OOM-killed). Several reapers may race: each step
is a guarded transition, so a job is requeued once, and a duplicate message is harmless
because only one claim of a queued job can win.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..shared.errors import WorkerLost
from ..shared.jobs import JobErrorInfo, JobStatus, JobStore, JobType
from ..shared.settings import Settings
from .metrics import REAPER_ACTION_NAMES, REAPER_ACTIONS

log = logging.getLogger(__name__)


@dataclass
class ReapReport:
    requeued: int = 0
    failed: int = 0
    expired: int = 0
    sent: int = 0
    resent: int = 0
    purged: int = 0
    """Finished jobs deleted by the retention sweep."""
    stopped: int = 0
    """Sweep trials stopped early by the median rule (``shared.sweep_stopping``)."""
    tidied: int = 0
    """Put-off storage tidies settled (``shared.storage_tidy``)."""
    more: bool = False
    """A batch came back full: more is due, and the next sweep should follow at once."""


def reap_once(
    jobs: JobStore,
    settings: Settings,
    send: Callable[[str, str], None],
    waiting: Callable[[str], int] | None = None,
    retention: Callable[[int], int] | None = None,
    stopping: Callable[[int], int] | None = None,
    tidying: Callable[[int], int] | None = None,
) -> ReapReport:
    """One sweep; ``send(job_id, job_type)`` puts a job's message on its queue, and
    ``waiting(job_type)`` counts the messages in that queue (None skips the lost-message
    check), and ``retention(batch)`` deletes up to a batch of jobs past their retention
    (``shared.lifecycle.sweep_retention``; None skips it); ``stopping(batch)`` stops the
    losing trials of up to a batch of sweeps (``shared.sweep_stopping``; None skips it);
    ``tidying(batch)`` settles up to a batch of put-off storage tidies (None skips it).

    Each kind of work is taken in a batch of at most ``settings.reaper_batch`` ids that
    this sweep claims (other nodes' reapers pass over them), leases first: a flood of due
    deadlines neither makes a sweep long nor delays the recovery of a dead worker's job."""
    report = ReapReport()
    batch = settings.reaper_batch
    leases = jobs.claim_expired_leases(batch)
    for job_id in leases:
        _recover(jobs, job_id, report, send)
    deadlines = jobs.claim_missed_start_deadlines(batch)
    for job_id in deadlines:
        # One guarded transition: it expires the job only if it is still queued.
        if jobs.expire(job_id, "start_before passed while the job waited in the queue"):
            report.expired += 1
        else:
            jobs.forget_start_deadline(job_id)
    requeues = jobs.claim_due_requeues(batch)
    for job_id in requeues:
        job = jobs.get(job_id)
        # Claimable, then sent, then forgotten: a crash in between duplicates a message
        # (harmless), the other order could lose it.
        if job is not None and job.status is JobStatus.QUEUED:
            jobs.make_claimable(job)
            send(job_id, job.type.value)
            report.sent += 1
        jobs.forget_requeue(job_id)
    if waiting is not None:
        _resend_lost(jobs, settings, send, waiting, report)
    if retention is not None:
        report.purged = retention(batch)
    report.stopped = stopping(batch) if stopping is not None else 0
    report.tidied = _tidy(tidying, batch)
    report.more = batch in (len(leases), len(deadlines), len(requeues), report.purged)
    _count(report)
    return report


def _count(report: ReapReport) -> None:
    for action in REAPER_ACTION_NAMES:
        if count := getattr(report, action):
            REAPER_ACTIONS.labels(action).inc(count)


def _tidy(tidying: Callable[[int], int] | None, batch: int) -> int:
    """Storage being away must not stop the rest of the sweep."""
    if tidying is None:
        return 0
    try:
        return tidying(batch)
    except Exception:
        log.warning("settling put-off storage tidies failed", exc_info=True)
        return 0


def _resend_lost(
    jobs: JobStore,
    settings: Settings,
    send: Callable[[str, str], None],
    waiting: Callable[[str], int],
    report: ReapReport,
) -> None:
    """A job long due while its queue is empty has no message: a worker took it and died
    before claiming (messages are acknowledged on receipt), or the API died between
    recording the job and sending it. Sending again is safe: if the message was only slow,
    the second one finds the job claimed and is dropped."""
    now = time.time()
    for job_type in JobType:
        if waiting(job_type.value) > 0:  # messages still wait: the workers are just busy
            continue
        for job_id in jobs.overdue_queued(job_type, now - settings.lost_message_seconds):
            job = jobs.get(job_id)
            if job is None or job.status is not JobStatus.QUEUED:
                if job is not None:
                    jobs.forget_queued(job)
                continue
            send(job_id, job_type.value)
            jobs.message_resent(job, now)
            report.resent += 1
            log.warning(
                "%s: queued %.0f s with an empty queue, its message was lost; sent again",
                job_id,
                now - job.created_at,
            )


def _recover(
    jobs: JobStore, job_id: str, report: ReapReport, send: Callable[[str, str], None]
) -> None:
    """A lease ran out: the attempt failed by a lost worker (the store's retry policy says
    whether the job is queued again or has used up its attempts)."""
    job = jobs.get(job_id)
    if job is None or job.status is not JobStatus.RUNNING:
        jobs.forget_lease(job_id)
        return
    lost = WorkerLost(
        f"worker {job.worker} stopped renewing its lease during attempt {job.attempt} "
        "(killed, out of memory, or cut off)"
    )
    error = JobErrorInfo(type=type(lost).__name__, message=str(lost))
    after = jobs.attempt_failed(job_id, error, fence=job.fence or "")
    if after is None:
        return
    if jobs.fair.take_owed_wakeup(job.type):  # its running slot is free again
        send(job_id, job.type.value)
    if after.status is JobStatus.FAILED:
        report.failed += 1
    else:
        report.requeued += 1
    log.warning("%s %s: %s", job_id, after.status.value, (after.error or error).message)


class ReaperThread(threading.Thread):
    def __init__(
        self,
        jobs: JobStore,
        settings: Settings,
        send: Callable[[str, str], None],
        waiting: Callable[[str], int] | None = None,
        retention: Callable[[int], int] | None = None,
        stopping: Callable[[int], int] | None = None,
        tidying: Callable[[int], int] | None = None,
    ) -> None:
        super().__init__(name="atelier-reaper", daemon=True)
        self._jobs = jobs
        self._settings = settings
        self._send = send
        self._waiting = waiting
        self._retention = retention
        self._stopping = stopping
        self._tidying = tidying
        self._stop_event = threading.Event()

    def run(self) -> None:
        pause = self._settings.reaper_interval_seconds
        while not self._stop_event.wait(pause):
            pause = self._settings.reaper_interval_seconds
            try:
                report = reap_once(
                    self._jobs,
                    self._settings,
                    self._send,
                    self._waiting,
                    self._retention,
                    self._stopping,
                    self._tidying,
                )
            except Exception:
                log.warning("reaper sweep failed", exc_info=True)
                continue
            if report.more:
                pause = 0.0  # a backlog: the next batch at once

    def stop(self) -> None:
        self._stop_event.set()
