"""What an attempt's finish left in the store, learned from reads a replica confirms.

Two ways a finish can leave the worker unsure of it:

- the replicas did not confirm it (``JobRunner._settle`` reads the record to learn whether
  a failover took it back);
- its reply was lost: the connection dropped after ``EXEC`` ran. redis-py then either
  raises the ``ConnectionError`` (the primary is still away when it reconnects) or, since
  the transaction watched the job, turns it into a ``WatchError``; ``JobStore._transition``
  retries on that, reads the job already finished, and answers None as if the attempt had
  been fenced off. The three-host soak counted such a success as something else
  (``atelier_jobs_finished_total{status="succeeded"}`` 11 for 12 succeeded records), and a
  finish whose ``EXEC`` never ran would have retried the whole job for a dropped reply.

``finish_surely`` reads the record when the finish raised or answered None: a record that
this attempt still holds, finished as it meant to, is its finish; one it still holds and
has not finished gets the finish again; anything else is another attempt's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis

from ..shared.durability import Durability
from ..shared.job_records import decode
from ..shared.jobs import Job, JobStatus, JobStore
from ..shared.redis_keys import KEYS
from .context import PROCESS_DRAINING

__all__ = ["SETTLE_SECONDS", "durable_record", "finish_surely"]

log = logging.getLogger(__name__)

SETTLE_SECONDS = 60.0
"""How long a job process waits, after a finish the replicas did not confirm, to learn
whether it stands: longer than a failover and a cut-off primary's rejoining (about 30 s in
the cluster soak)."""

LOST_REPLY_ERRORS = (redis.ConnectionError, redis.TimeoutError)


def durable_record(durability: Durability, job_id: str) -> tuple[bool, Job | None]:
    """The job as a primary a replica follows holds it, read with the confirmation on
    one connection (``Durability.confirmed_read``), tried for at most ``SETTLE_SECONDS``
    (less once the process is told to stop): ``(True, job)``, or ``(False, None)`` when no
    such read could be made. Storage is tidied on what this says: a primary cut off from
    its replica may point at another checkpoint."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            answers = durability.confirmed_read(lambda pipe: pipe.hgetall(KEYS.job(job_id)))
        except redis.RedisError:
            answers = None
        if answers is not None:
            return True, decode(answers[0]) if answers[0] else None
        if time.monotonic() > deadline or PROCESS_DRAINING.is_set():
            return False, None
        time.sleep(1.0)


def finish_surely(
    jobs: JobStore, durability: Durability, job: Job, status: JobStatus, **fields: Any
) -> tuple[Job | None, bool]:
    """``JobStore.finish`` under ``job``'s fence, past a lost reply: ``(record, read)``,
    where ``record`` is the finished record this attempt's finish wrote (None: the job is
    another attempt's, or gone), and ``read`` says it came from a confirmed read rather
    than the finish's own answer. Raises the finish's error when no confirmed read says
    what it left."""
    for again in (True, False):
        error: Exception | None = None
        try:
            done = jobs.finish(job.id, status, fence=job.fence, **fields)
            if done is not None:
                return done, False
        except LOST_REPLY_ERRORS as exc:
            error = exc
        known, current = durable_record(durability, job.id)
        if known and _finished_by(current, job, status):
            log.warning("%s: the %s finish stood; its reply was lost", job.id, status)
            return current, True
        if error is None:
            return None, False  # answered None: another attempt's, or gone
        if not known:
            raise error
        if current is None or current.fence != job.fence or current.status.is_terminal():
            return None, False
        if not again:
            raise error
        # Still this attempt's and not finished: the EXEC never ran. The work is done, so
        # finish again (once) rather than let a dropped connection retry the whole job.
        log.warning("%s: the %s finish was not applied (%s); again", job.id, status, error)
    raise AssertionError("the second try returns or raises")


def _finished_by(current: Job | None, job: Job, status: JobStatus) -> bool:
    """The record is this attempt's finish: its fence, the status it meant to write."""
    return current is not None and current.fence == job.fence and current.status is status
