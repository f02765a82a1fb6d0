"""The invariants a soak checks once its jobs have drained, from its own ledger and from
what a client, the store and the object store show."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from typing import Protocol

import redis
import requests

from atelier.client import ApiError
from atelier.shared.job_logs import JobLogs
from atelier.shared.jobs import JobStore
from atelier.shared.models import ModelRecord, ModelStore
from atelier.shared.settings import Settings
from atelier.shared.storage import ObjectLayout, make_object_store
from atelier.shared.storage_tidy import PutOffTidies
from soak.ledger import Entry, Ledger
from soak.spread import SpreadClient
from soak.writers import two_writers

ATTEMPT = re.compile(r"\[attempt (\d+)\]")


class SoakCluster(Protocol):
    """What the checks read: one host's stack (``soak.cluster``) or many hosts'
    (``soak.hostcluster``)."""

    settings: Settings

    def redis(self) -> redis.Redis: ...

    def api_key(self, owner: str) -> str: ...

    def api_urls(self) -> list[str]: ...

    def worker_metrics_urls(self) -> list[str]: ...


PUT_OFF_TIDY_SECONDS = 120.0
"""A put-off tidy is first tried 10 s after its attempt ends, then every 30 s: long enough
for a replica to be back after the soak's last failover."""


def check_all(cluster: SoakCluster, ledger: Ledger) -> None:
    """Every check adds what it finds to ``ledger.violations``."""
    for entry in ledger.entries.values():
        if entry.final is None:
            ledger.violation(f"{entry.job_id} ({entry.job_type}) still unfinished after the drain")
        if entry.cancel_answer == "canceled" and entry.final != "canceled":
            ledger.violation(f"{entry.job_id} was answered canceled, then ended {entry.final}")
        if entry.final == "failed" and "gave up after" not in (entry.error or ""):
            # The workload sends valid jobs: only faults fail them, by using up attempts.
            ledger.violation(f"{entry.job_id} failed, and no fault explains it: {entry.error}")
    check_outcomes_kept(cluster, ledger)
    check_attempts_never_overlap(cluster, ledger)
    check_no_stale_objects(cluster, ledger)
    check_models(cluster, ledger)
    check_one_writer_at_a_time(cluster, ledger)
    check_metrics(cluster, ledger)


def check_outcomes_kept(cluster: SoakCluster, ledger: Ledger) -> None:
    """Each job ends as the driver was first shown it ending: status and model."""
    store = JobStore(cluster.redis())
    for entry in ledger.entries.values():
        job = store.get(entry.job_id)
        if entry.final in (None, "vanished"):
            continue
        if job is None:
            ledger.violation(f"{entry.job_id} was shown {entry.final}, then vanished")
        elif (job.status.value, job.model_id) != (entry.final, entry.model_id):
            ledger.violation(
                f"{entry.job_id} was shown {entry.final} (model {entry.model_id}), "
                f"is {job.status.value} (model {job.model_id})"
            )


def check_one_writer_at_a_time(cluster: SoakCluster, ledger: Ledger) -> None:
    """No finished job holds writes of two attempts (``soak.writers``)."""
    store = JobStore(cluster.redis())
    models = ModelStore(cluster.redis())
    owned: dict[str, list[ModelRecord]] = {}
    for entry in ledger.entries.values():
        job = store.get(entry.job_id)
        if job is None or not job.status.is_terminal():
            continue
        if job.owner not in owned:
            owned[job.owner] = models.list_for_owner(job.owner, limit=100_000)[0]
        for problem in two_writers(job, owned[job.owner]):
            ledger.violation(problem)


def check_attempts_never_overlap(cluster: SoakCluster, ledger: Ledger) -> None:
    """In each job's log, lines of attempt N never follow a line of a later attempt: once an
    attempt has started, no earlier one wrote again (fencing)."""
    store = JobStore(cluster.redis())
    logs = JobLogs(cluster.redis(), cluster.settings.job_log_lines)
    for entry in ledger.entries.values():
        attempts = [
            int(m.group(1)) for line in logs.read(entry.job_id) if (m := ATTEMPT.search(line))
        ]
        if attempts != sorted(attempts):
            ledger.violation(
                f"{entry.job_id}: an earlier attempt wrote after a later one {attempts}"
            )
        job = store.get(entry.job_id)
        if job is not None and attempts and max(attempts) > job.attempt:
            ledger.violation(f"{entry.job_id}: log names attempt {max(attempts)} > {job.attempt}")


def check_no_stale_objects(cluster: SoakCluster, ledger: Ledger) -> None:
    """What a finished job's attempts stored is referenced by its record, except the older
    kept checkpoints of its last attempt and samples (those past ``max_listed_samples``
    are in storage only, listed by ``GET /v1/jobs/{id}/samples``). Tidies an attempt put
    off (a failover left no replica to confirm its record) are first given
    ``PUT_OFF_TIDY_SECONDS`` to be settled by the reapers."""
    tidies = PutOffTidies(cluster.redis())
    deadline = time.monotonic() + PUT_OFF_TIDY_SECONDS
    while (pending := tidies.pending()) and time.monotonic() < deadline:
        time.sleep(1.0)
    if pending:
        ledger.violation(
            f"{pending} put-off storage tidies unsettled after {PUT_OFF_TIDY_SECONDS:.0f} s"
        )
    store = JobStore(cluster.redis())
    objects = make_object_store(cluster.settings)
    for entry in ledger.entries.values():
        job = store.get(entry.job_id)
        if job is None or not job.status.is_terminal():
            continue
        referenced = {o.key for o in job.outputs}
        if job.checkpoint is not None:
            referenced.add(job.checkpoint.key)
        prefix = ObjectLayout.job_prefix(job.owner, job.id)
        for key in objects.list_keys(prefix):
            fence = (ObjectLayout.attempt_of(prefix, key) or (0, "?"))[1]
            own_checkpoint = fence == job.fence and "/checkpoints/" in key
            if key not in referenced and not own_checkpoint and "/samples/" not in key:
                ledger.violation(f"{job.id}: {key} left by {fence}, the job ended as {job.fence}")


def check_models(cluster: SoakCluster, ledger: Ledger) -> None:
    """Each succeeded training job has one model, named by its record, that generates; and
    no weights are stored for a model nobody recorded."""
    models = ModelStore(cluster.redis())
    objects = make_object_store(cluster.settings)
    trained = [
        e for e in ledger.entries.values() if e.job_type == "train" and e.final == "succeeded"
    ]
    found = []
    for entry in trained:
        model = models.get(entry.model_id or "")
        if model is None or model.source_job_id != entry.job_id:
            ledger.violation(f"{entry.job_id} succeeded without its model {entry.model_id}")
            continue
        found.append(entry)
    for owner in {e.owner for e in ledger.entries.values()}:
        owned = models.list_for_owner(owner, limit=100_000)[0]
        recorded = {model.weights_key for model in owned}
        for key in objects.list_keys(f"owners/{owner}/models/"):
            if key not in recorded:
                ledger.violation(f"weights {key} belong to no recorded model")
    _generate_from_each(cluster, ledger, found)


def _generate_from_each(cluster: SoakCluster, ledger: Ledger, trained: list[Entry]) -> None:
    generated = {
        e.body.get("model_id")
        for e in ledger.entries.values()
        if e.job_type == "generate" and e.final == "succeeded"
    }
    clients = {
        o: SpreadClient(cluster.api_urls(), cluster.api_key(o), ledger)
        for o in {e.owner for e in trained}
    }
    waiting = []
    for entry in trained:
        if entry.model_id in generated:
            continue
        body = {"model_id": entry.model_id, "n": 2}
        try:
            job = clients[entry.owner].submit("generate", "dcgan", body)
        except ApiError as exc:
            ledger.violation(f"model {entry.model_id} of {entry.job_id} refused: {exc}")
            continue
        ledger.accepted(
            Entry(job["id"], entry.owner, "generate", "dcgan", uuid.uuid4().hex, body, time.time())
        )
        waiting.append((entry, job["id"]))
    for entry, job_id in waiting:
        done = clients[entry.owner].wait(job_id, timeout=300)
        ledger.observe(ledger.entries[job_id], dict(done))
        if done["status"] != "succeeded":
            ledger.violation(f"model {entry.model_id} did not generate: {done['error']}")


def check_metrics(cluster: SoakCluster, ledger: Ledger) -> None:
    """Prometheus agrees with the ledger: jobs the APIs accepted, and attempts the workers
    ended as succeeded (one per succeeded job). A submit that got no 2xx may have made a
    job and counted it (then lost it in a failover, so its retry made another): each may
    add one to the APIs' count."""
    submitted = sum(
        _sum(requests.get(url + "/metrics", timeout=10).text, "atelier_jobs_submitted_total")
        for url in cluster.api_urls()
    )
    accepted = len(ledger.entries)
    if not accepted <= submitted <= accepted + ledger.unanswered_posts:
        ledger.violation(
            f"atelier_jobs_submitted_total {submitted:g}: {accepted} accepted, "
            f"{ledger.unanswered_posts} submits unanswered"
        )
    succeeded = 0.0
    for url in cluster.worker_metrics_urls():
        worker_text = requests.get(url, timeout=10).text
        succeeded += _sum(worker_text, "atelier_jobs_finished_total", 'status="succeeded"')
    in_ledger = Counter(e.final for e in ledger.entries.values())["succeeded"]
    if succeeded != in_ledger:
        ledger.violation(
            f"atelier_jobs_finished_total{{status=succeeded}} {succeeded:g} != {in_ledger}"
        )


def _sum(exposition: str, name: str, label: str = "") -> float:
    total = 0.0
    for line in exposition.splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total
