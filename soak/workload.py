"""What three owners do during a soak: submit tiny training jobs and generation jobs from
their models, cancel some, and re-send some submits with the same Idempotency-Key; and a
watcher that polls every unfinished job into the ledger.

A submit is sent again with the same key until the API answers, as a careful client does
through an outage: the key makes the retry safe, and the answer names the job."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any, Protocol

import requests

from atelier.client import ApiError, Client
from soak.ledger import Entry, Ledger

OWNERS = ("ana", "ben", "cleo")
TINY_TRAIN = {"batch_size": 16, "latent_dim": 8, "base_filters": 4, "checkpoint_every": 25}
# Why a call may fail during a fault and be tried again (the API restarting, Redis gone).
UNREACHABLE = (requests.ConnectionError, requests.Timeout)
ANSWER_CODES_TO_RETRY = frozenset({500, 502, 503, 504})


class Workload(threading.Thread):
    def __init__(
        self, ledger: Ledger, clients: dict[str, Client], seed: int, jobs_per_minute: float
    ) -> None:
        super().__init__(name="workload", daemon=True)
        self.ledger = ledger
        self.clients = clients
        self.rng = random.Random(seed)
        self.interval = 60.0 / jobs_per_minute
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.rng.expovariate(1.0 / self.interval)):
            owner = self.rng.choice(OWNERS)
            action = self.rng.choices(
                ["train", "generate", "cancel", "replay"], weights=[45, 35, 8, 12]
            )[0]
            getattr(self, f"_{action}")(owner)

    def _train(self, owner: str) -> None:
        steps = self.rng.choice([60, 120, 200])
        body = {**TINY_TRAIN, "steps": steps, "sample_every": 50, "seed": self.rng.randrange(1000)}
        self.submit(owner, "train", body)

    def _generate(self, owner: str) -> None:
        models = self.ledger.succeeded_models(owner)
        if not models:
            return self._train(owner)
        body = {"model_id": self.rng.choice(models), "n": 4, "seed": self.rng.randrange(1000)}
        self.submit(owner, "generate", body)

    def _cancel(self, owner: str) -> None:
        mine = [e for e in self.ledger.active() if e.owner == owner]
        if not mine:
            return
        entry = self.rng.choice(mine)
        try:
            answer = self.clients[owner].cancel(entry.job_id)
        except ApiError as exc:
            if exc.status != 409:  # 409: it finished first, which is fine
                self.ledger.violation(f"cancel of {entry.job_id}: {exc}")
            return
        except UNREACHABLE:
            return
        entry.cancel_requested = True
        entry.cancel_answer = answer["status"]
        self.ledger.cancels += 1

    def _replay(self, owner: str) -> None:
        with self.ledger.lock:
            mine = [e for e in self.ledger.entries.values() if e.owner == owner]
        if not mine:
            return
        entry = self.rng.choice(mine)
        job_id = self._send(owner, entry.job_type, entry.body, entry.key)
        if job_id is not None and job_id != entry.job_id:
            self.ledger.violation(f"key {entry.key} named {entry.job_id}, then {job_id}")
        self.ledger.replays += 1

    def submit(self, owner: str, job_type: str, body: dict[str, Any]) -> str | None:
        key = uuid.uuid4().hex
        job_id = self._send(owner, job_type, body, key)
        if job_id is not None:
            kind = "dcgan"
            self.ledger.accepted(Entry(job_id, owner, job_type, kind, key, body, time.time()))
        return job_id

    def _send(self, owner: str, job_type: str, body: dict[str, Any], key: str) -> str | None:
        """POST until answered (bounded: the soak's drain must end); the job id, or None if
        refused (4xx, recorded as a violation: the workload sends only valid bodies)."""
        started = time.monotonic()
        while time.monotonic() < started + 120:
            try:
                job = self.clients[owner].submit(job_type, "dcgan", body, idempotency_key=key)
                self.ledger.submit_waits.append(time.monotonic() - started)
                return job["id"]
            except UNREACHABLE:
                pass
            except ApiError as exc:
                if exc.status not in ANSWER_CODES_TO_RETRY:
                    self.ledger.violation(f"submit refused: {exc}")
                    return None
            time.sleep(0.5)
        self.ledger.violation(f"submit with key {key} unanswered for 120 s")
        return None


class Watcher(threading.Thread):
    """Polls every unfinished job in the ledger; a job that is not found has vanished."""

    def __init__(self, ledger: Ledger, clients: dict[str, Client], every: float = 0.5) -> None:
        super().__init__(name="watcher", daemon=True)
        self.ledger = ledger
        self.clients = clients
        self.every = every
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(self.every):
            self.poll_once()

    def poll_once(self) -> None:
        for entry in self.ledger.active():
            try:
                job = self.clients[entry.owner].get(entry.job_id)
            except UNREACHABLE:
                return  # the API is away; try the whole round again later
            except ApiError as exc:
                if exc.status == 404:
                    self.ledger.violation(f"{entry.job_id} vanished (404)")
                    entry.final = "vanished"
                continue
            self.ledger.observe(entry, dict(job))


class FaultThread(Protocol):
    stop_event: threading.Event

    def start(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


def drive(ledger: Ledger, clients: dict[str, Client], faults: FaultThread, args: Any) -> None:
    """The workload and the faults for ``args.minutes``, then the jobs drain (at most
    ``args.drain_seconds``) while the watcher records how each ended."""
    workload = Workload(ledger, clients, args.seed, args.jobs_per_minute)
    watcher = Watcher(ledger, clients)
    for thread in (workload, watcher, faults):
        thread.start()
    time.sleep(args.minutes * 60)
    for stopping in (workload, faults):
        stopping.stop_event.set()
    for stopping in (workload, faults):
        stopping.join()
    deadline = time.monotonic() + args.drain_seconds
    while ledger.active() and time.monotonic() < deadline:
        time.sleep(1)
    watcher.stop_event.set()
    watcher.join()
    watcher.poll_once()
