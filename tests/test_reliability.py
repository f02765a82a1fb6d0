"""Long-job reliability with real processes: kill -9 a job process, SIGTERM a worker,
restart redis-server, stop the S3 server.

This module runs its own stack (its own redis-server, which it restarts, and its own
SeaweedFS S3 server, which it stops and starts again on the same data) with short leases,
and two training workers.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from atelier.cli.processes import ManagedProcess, free_port, start_redis
from atelier.cli.seaweedfs import SeaweedServer
from atelier.cli.stack import EmbeddedStack
from atelier.client import ApiError, Client, Job, epoch_seconds
from atelier.shared.auth import ApiKeyStore
from atelier.shared.jobs import JobType
from atelier.shared.queue import enqueue, make_celery, queue_length
from atelier.shared.settings import Settings
from atelier.shared.storage import ObjectLayout, make_object_store
from tests.conftest import TINY_TRAIN, s3_server, s3_settings, wait_for

pytestmark = pytest.mark.slow

LEASE_SECONDS = 3.0
LOST_MESSAGE_SECONDS = 1.0
MAX_ATTEMPTS = 3
TRAIN_WORKERS = 2
LONG = {**TINY_TRAIN, "steps": 1_000_000, "sample_every": 1_000_000, "checkpoint_every": 1_000_000}


@dataclass
class ReliabilityStack:
    stack: EmbeddedStack
    settings: Settings
    redis_process: ManagedProcess
    redis_dir: Path
    redis_port: int
    s3: SeaweedServer
    client: Client
    stopped_workers: frozenset[int] = frozenset()
    """Pids of workers a test sent SIGTERM (they may take a moment to exit)."""

    def restart_redis(self, down_seconds: float = 1.0) -> None:
        self.redis_process.stop()  # SIGTERM: Redis flushes its append-only file and exits
        time.sleep(down_seconds)
        self.redis_process, _ = start_redis(
            Settings(), self.redis_dir, self.redis_port, self.redis_dir / "redis.log"
        )

    def stop_s3(self) -> None:
        self.s3.stop()

    def start_s3(self) -> None:
        self.s3.start()  # the same data directory and port: every object is still there

    def stop_worker(self, pid: int) -> None:
        """SIGTERM a worker, as Kubernetes and docker stop do."""
        self.stopped_workers |= {pid}
        os.kill(pid, signal.SIGTERM)

    def settle(self) -> None:
        """The state every test starts from, whatever ran before it: S3 up, no unfinished
        job of ours, and two training workers that were not told to stop."""
        if not self.s3.running:
            self.start_s3()
        for status in ("queued", "running"):
            for job in self.client.jobs(status=status, limit=100)["data"]:
                try:
                    self.client.cancel(job["id"])
                except ApiError as finished:  # it ended between the listing and the cancel
                    assert finished.status == 409, finished.problem
                self.client.wait(job["id"], timeout=60)
        trainers = [
            p
            for p in self.stack.processes
            if p.name.startswith("worker-train")
            and p.alive()
            and p.process.pid not in self.stopped_workers
        ]
        for _ in range(TRAIN_WORKERS - len(trainers)):
            self.stack.add_worker("train")

    def stack_redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    def job(self, job_id: str) -> Job:
        return self.client.get(job_id)

    def logs(self, job_id: str) -> list[str]:
        lines: list[str] = self.client.logs(job_id)
        return lines


@pytest.fixture(scope="module")
def rel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReliabilityStack]:
    root = tmp_path_factory.mktemp("reliability")
    redis_dir, redis_port = root / "redis", free_port()
    redis_process, redis_url = start_redis(
        Settings(), redis_dir, redis_port, redis_dir / "redis.log"
    )
    s3 = s3_server(root / "seaweedfs")
    s3.start()
    base = Settings.from_env(
        {},
        data_dir=root / "data",
        progress_interval_seconds=0.2,
        cancel_check_interval_seconds=0.2,
        lease_seconds=LEASE_SECONDS,
        reaper_interval_seconds=0.5,
        lost_message_seconds=LOST_MESSAGE_SECONDS,
        max_attempts=MAX_ATTEMPTS,
        retry_backoff_seconds=0.5,
        upload_retry_seconds=60,
        **s3_settings(s3.endpoint, "reliability"),
    )
    stack = EmbeddedStack(base, port=free_port(), external_redis_url=redis_url)
    settings = stack.start()
    stack.add_worker("train")
    key = ApiKeyStore(redis.Redis.from_url(redis_url)).create("rel")
    env = ReliabilityStack(
        stack,
        settings,
        redis_process,
        redis_dir,
        redis_port,
        s3,
        Client(settings.api_url, key, timeout=60),
    )
    try:
        yield env
    finally:
        stack.stop()
        env.redis_process.stop()
        env.s3.stop()


@pytest.fixture(autouse=True)
def settled(rel: ReliabilityStack) -> ReliabilityStack:
    """Each test can run alone or after any other: it gets a settled stack."""
    rel.settle()
    return rel


def job_pid(job: Job) -> int:
    assert job["worker"] is not None
    return int(job["worker"].rsplit(":", 1)[1])


def parent_pid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_running(rel: ReliabilityStack, job_id: str, attempt: int, min_step: int = 1) -> Job:
    def running() -> bool:
        job = rel.job(job_id)
        return bool(
            job["status"] == "running"
            and job["attempt"] == attempt
            and job["progress"]["step"] >= min_step
        )

    wait_for(running, 120, f"{job_id} running attempt {attempt}")
    return rel.job(job_id)


def resumed_from(logs: list[str]) -> list[int]:
    return [
        int(m.group(1))
        for line in logs
        if (m := re.search(r"resuming from the checkpoint at step (\d+)", line))
    ]


def test_second_delivery_of_a_running_job_does_not_run_it(rel: ReliabilityStack) -> None:
    job = rel.client.submit("train", "dcgan", LONG)
    first = wait_running(rel, job["id"], 1)
    celery = make_celery(rel.settings)
    enqueue(celery, rel.settings, job["id"], JobType.TRAIN)  # what a broker redelivery does
    # The idle second training worker takes the duplicate at once and drops it.
    wait_for(
        lambda: queue_length(rel.stack_redis(), rel.settings.train_queue) == 0,
        30,
        "duplicate to be taken",
    )
    time.sleep(1.0)
    again = rel.job(job["id"])
    assert (again["status"], again["attempt"], again["worker"]) == ("running", 1, first["worker"])
    assert sum("attempt 1 of" in line for line in rel.logs(job["id"])) == 1
    assert not any("attempt 2" in line for line in rel.logs(job["id"]))
    rel.client.cancel(job["id"])
    assert rel.client.wait(job["id"], timeout=30)["status"] == "canceled"


def test_a_lost_message_is_sent_again(rel: ReliabilityStack) -> None:
    """The API died between recording a job and sending its message, or a worker took the
    message (acknowledged on receipt) and died before starting the job: the job is queued
    with no message anywhere. The reaper sees it overdue with an empty queue and sends it."""
    from atelier.shared.jobs import JobStore

    job = JobStore(rel.stack_redis()).create("rel", JobType.TRAIN, "dcgan", dict(TINY_TRAIN))
    assert queue_length(rel.stack_redis(), rel.settings.train_queue) == 0
    done = rel.client.wait(job.id, timeout=120)
    assert done["status"] == "succeeded", done["error"]
    assert done["attempt"] == 1 and done["failures"] == 0
    assert done["started_at"] is not None
    waited = epoch_seconds(done["started_at"]) - epoch_seconds(done["created_at"])
    assert LOST_MESSAGE_SECONDS <= waited < LOST_MESSAGE_SECONDS + 10, waited


def test_sigkilled_job_resumes_from_its_checkpoint(rel: ReliabilityStack) -> None:
    params = {**TINY_TRAIN, "steps": 400, "checkpoint_every": 50, "sample_every": 100}
    job = rel.client.submit("train", "dcgan", params)
    wait_for(lambda: (rel.job(job["id"])["checkpoint_step"] or 0) >= 100, 120, "two checkpoints")
    running = rel.job(job["id"])
    os.kill(job_pid(running), signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: rel.job(job["id"])["attempt"] == 2, 60, "the job to be re-run")
    detected = time.monotonic() - killed_at
    assert detected < LEASE_SECONDS + 10, detected

    done = rel.client.wait(job["id"], timeout=300)
    assert done["status"] == "succeeded", done["error"]
    assert (done["attempt"], done["failures"]) == (2, 1)
    assert done["progress"]["step"] == 400
    resumed = resumed_from(rel.logs(job["id"]))
    assert len(resumed) == 1 and resumed[0] >= 100, resumed
    assert f"steps {resumed[0] + 1}..400" in "\n".join(rel.logs(job["id"]))
    print(f"SIGKILL noticed and re-run after {detected:.1f}s; resumed at step {resumed[0]}")


def test_job_that_kills_its_worker_every_time_fails(rel: ReliabilityStack) -> None:
    job = rel.client.submit("train", "dcgan", LONG)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        running = wait_running(rel, job["id"], attempt)
        os.kill(job_pid(running), signal.SIGKILL)
    done = rel.client.wait(job["id"], timeout=60)
    assert done["status"] == "failed" and done["error"] is not None
    assert done["error"]["type"] == "WorkerLost"
    assert f"gave up after {MAX_ATTEMPTS} failed attempts" in done["error"]["message"]
    assert done["attempt"] == MAX_ATTEMPTS


def test_sigterm_checkpoints_and_requeues_at_once(rel: ReliabilityStack) -> None:
    job = rel.client.submit("train", "dcgan", {**LONG, "steps": 100_000})
    running = wait_running(rel, job["id"], 1, min_step=20)
    celery_parent = parent_pid(job_pid(running))
    stopped_at = time.monotonic()
    rel.stop_worker(celery_parent)
    wait_for(lambda: rel.job(job["id"])["attempt"] == 2, 60, "the job to move")
    moved = time.monotonic() - stopped_at
    again = rel.job(job["id"])
    assert again["failures"] == 0 and (again["checkpoint_step"] or 0) >= 20
    assert again["worker"] != running["worker"]
    assert moved < LEASE_SECONDS + 5, moved  # requeued at once, not found by the reaper
    wait_for(lambda: resumed_from(rel.logs(job["id"])) != [], 60, "resume")
    assert resumed_from(rel.logs(job["id"]))[0] >= 20
    rel.client.cancel(job["id"])
    assert rel.client.wait(job["id"], timeout=30)["status"] == "canceled"
    print(f"SIGTERM: job moved to another worker after {moved:.1f}s")


def test_redis_restart_loses_no_accepted_job(rel: ReliabilityStack) -> None:
    ids = [rel.client.submit("train", "dcgan", {**TINY_TRAIN, "steps": 60})["id"] for _ in range(4)]
    wait_running(rel, ids[0], 1)
    rel.restart_redis(down_seconds=1.0)
    finished = [rel.client.wait(job_id, timeout=300) for job_id in ids]
    assert [j["status"] for j in finished] == ["succeeded"] * 4, [j["error"] for j in finished]


def test_object_store_outage_is_survived(rel: ReliabilityStack) -> None:
    params = {**TINY_TRAIN, "steps": 300, "checkpoint_every": 25, "sample_every": 25}
    job = rel.client.submit("train", "dcgan", params)
    wait_running(rel, job["id"], 1, min_step=30)
    rel.stop_s3()
    time.sleep(6)
    rel.start_s3()
    done = rel.client.wait(job["id"], timeout=300)
    assert done["status"] == "succeeded", done["error"]
    store = make_object_store(rel.settings)
    assert done["model_id"] is not None
    assert store.exists(ObjectLayout.model_weights("rel", done["model_id"]))
    logs = rel.logs(job["id"])
    seen = [line for line in logs if ("failed" in line and "retrying" in line) or "dropped" in line]
    assert seen, "the outage was seen and ridden out"

    # A generation job that starts during an outage waits for its model's weights (the
    # soak found every such job failing after its few quick retries).
    rel.stop_s3()
    try:
        generate = rel.client.submit("generate", "dcgan", {"model_id": done["model_id"], "n": 2})
        time.sleep(15)  # longer than botocore's own retries ride out
    finally:
        rel.start_s3()
    generated = rel.client.wait(generate["id"], timeout=120)
    assert generated["status"] == "succeeded", generated["error"]
    assert generated["attempt"] == 1 and generated["failures"] == 0


def test_start_deadline_and_max_run_time(rel: ReliabilityStack) -> None:
    busy = [rel.client.submit("train", "dcgan", LONG)["id"] for _ in range(2)]
    for job_id in busy:
        wait_running(rel, job_id, 1)
    start_before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    late = rel.client.submit("train", "dcgan", TINY_TRAIN, start_before=start_before)
    expired = rel.client.wait(late["id"], timeout=30)
    assert expired["status"] == "expired" and expired["started_at"] is None
    assert expired["error"] is not None and expired["error"]["type"] == "StartDeadlineMissed"
    for job_id in busy:
        rel.client.cancel(job_id)
        rel.client.wait(job_id, timeout=30)

    capped = rel.client.submit("train", "dcgan", LONG, max_run_seconds=3)
    done = rel.client.wait(capped["id"], timeout=60)
    assert done["status"] == "failed" and done["error"] is not None
    assert done["error"]["type"] == "DeadlineExceeded"
    assert done["attempt"] == 1  # a deadline is not retried

    with pytest.raises(ApiError) as past:
        rel.client.submit("train", "dcgan", {}, start_before="2020-01-01T00:00:00Z")
    assert "start_before must be in the future" in past.value.problem["detail"]


def test_idempotent_submit(rel: ReliabilityStack) -> None:
    body = {"type": "train", "kind": "dcgan", "params": {**TINY_TRAIN, "steps": 5}}
    url = rel.settings.api_url + "/v1/jobs"
    key = rel.client.http.headers["Authorization"]
    headers = {"Authorization": str(key), "Idempotency-Key": "order-42"}
    first = requests.post(url, json=body, headers=headers, timeout=10)
    again = requests.post(url, json=body, headers=headers, timeout=10)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = requests.post(url, json={**body, "params": {"steps": 6}}, headers=headers, timeout=10)
    assert other.status_code == 422
    assert other.json()["type"] == "urn:atelier:problem:idempotency-key-reused"
    listed = rel.client.jobs(limit=100)["data"]
    assert sum(1 for j in listed if j["params"].get("steps") in (5, 6)) == 1
