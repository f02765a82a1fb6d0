"""The soak driver's own record of what it asked for and what it saw. The invariants are
checked against this ledger, never against Atelier's counters alone."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})
STALE_SECONDS = 5.0
"""After writes are confirmed again, how long a reader may still see a failover's
before-and-after (an API's pooled connection to the demoted primary, resyncing)."""


@dataclass
class Entry:
    """One accepted job (a 202 from POST /v1/jobs)."""

    job_id: str
    owner: str
    job_type: str
    kind: str
    key: str
    """Its Idempotency-Key: re-sending the same body with it must name the same job."""
    body: dict[str, Any]
    accepted_at: float
    cancel_requested: bool = False
    cancel_answer: str | None = None
    """The status a 2xx answer to its cancel named: ``canceled`` is a promise."""
    final: str | None = None
    final_at: float | None = None
    model_id: str | None = None
    error: str | None = None
    """``type: message`` of a failed job."""
    last_step: int = 0
    last_checkpoint: int = 0
    checkpoint_seen_at: float = 0.0
    """When ``last_checkpoint`` was first seen."""
    last_attempt: int = 0

    @property
    def finished(self) -> bool:
        return self.final is not None


@dataclass
class Fault:
    kind: str
    target: str
    started: float
    ended: float = 0.0
    recovered: float | None = None
    """When the system was seen making progress again after the fault ended."""


@dataclass
class Failover:
    """The Redis primary lost (killed, or its host cut off) and another promoted."""

    cause: str
    started: float
    promoted_after: float | None = None
    """Seconds until the sentinels named a new primary (None: they never did)."""
    confirmed_after: float | None = None
    """Seconds until a write was confirmed by a replica again."""


@dataclass
class Ledger:
    entries: dict[str, Entry] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    replays: int = 0
    cancels: int = 0
    progress_events: list[float] = field(default_factory=list)
    """Times at which a job was seen advancing or finishing (recovery is measured by it)."""
    submit_waits: list[float] = field(default_factory=list)
    """Seconds from each accepted submit's first send to its 2xx answer."""
    unanswered_posts: int = 0
    """Submits sent that got no 2xx (unreachable, 5xx), counted by ``soak.spread``: each
    may have made a job that was never acknowledged, and counted it."""
    failovers: list[Failover] = field(default_factory=list)
    rewound_by_failovers: set[str] = field(default_factory=set)
    """Jobs seen going back past a checkpoint while a failover was under way."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, entry: Entry) -> None:
        with self.lock:
            self.entries[entry.job_id] = entry

    def violation(self, message: str) -> None:
        with self.lock:
            self.violations.append(message)

    def active(self) -> list[Entry]:
        with self.lock:
            return [e for e in self.entries.values() if not e.finished]

    def succeeded_models(self, owner: str) -> list[str]:
        with self.lock:
            return [
                e.model_id
                for e in self.entries.values()
                if e.owner == owner and e.final == "succeeded" and e.model_id
            ]

    def observe(self, entry: Entry, job: dict[str, Any]) -> None:
        """One poll of a job: terminal once and for ever; training steps never go back
        further than the checkpoint seen before, unless a failover came between.

        Replication is asynchronous and only claims, finishes and what the API answers
        2xx wait for a replica: a checkpoint pointer or a progress write the primary took
        may be gone after a failover, and a primary cut off from its replica shows the
        processes beside it its own progress until it rejoins. So a failover may rewind a
        running job to an earlier checkpoint; such jobs are counted, not violations."""
        now = time.time()
        status = job["status"]
        if entry.final is not None:
            if status != entry.final:
                self.violation(f"{entry.job_id} was {entry.final}, then {status}")
            return
        step, checkpoint = job["progress"]["step"], job["checkpoint_step"] or 0
        if step < entry.last_step and step < entry.last_checkpoint:
            if self.failover_since(entry.checkpoint_seen_at, now):
                self.rewound_by_failovers.add(entry.job_id)
            else:
                self.violation(
                    f"{entry.job_id} went back from step {entry.last_step} to {step}, past its "
                    f"checkpoint at {entry.last_checkpoint} (attempt {job['attempt']})"
                )
        if step > entry.last_step or status in TERMINAL:
            with self.lock:
                self.progress_events.append(now)
        if checkpoint > entry.last_checkpoint:
            entry.checkpoint_seen_at = now
        entry.last_step, entry.last_checkpoint = step, max(checkpoint, entry.last_checkpoint)
        entry.last_attempt = job["attempt"]
        if status in TERMINAL:
            entry.final, entry.final_at, entry.model_id = status, now, job["model_id"]
            if job.get("error"):
                entry.error = f"{job['error']['type']}: {job['error']['message']}"

    def failover_since(self, since: float, now: float) -> bool:
        """A failover was under way at some time from ``since`` to ``now``: until writes
        were confirmed again, and ``STALE_SECONDS`` after."""
        for failover in self.failovers:
            settled = failover.confirmed_after
            ended = failover.started + (settled if settled is not None else now) + STALE_SECONDS
            if failover.started <= now and ended >= since:
                return True
        return False

    def outcomes(self) -> Counter[tuple[str, str]]:
        with self.lock:
            return Counter((e.job_type, e.final or "unfinished") for e in self.entries.values())
