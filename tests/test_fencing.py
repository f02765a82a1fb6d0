"""Never two at once, and no thrash after a restart, with real processes.

A job process paused (SIGSTOP) past its lease wakes after a newer attempt took the job:
it must stop within a second or two and leave nothing in the record, the model or storage.
A worker stopped mid-training checkpoints and requeues at once; restarted under the same
node name, it resumes the job from that checkpoint and trains on (no inherited drain flag).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import redis

from atelier.cli.processes import ATELIER_COMMAND, ManagedProcess, child_env, free_port
from atelier.cli.stack import EmbeddedStack
from atelier.client import Client, Job
from atelier.shared.auth import ApiKeyStore
from atelier.shared.job_logs import JobLogs
from atelier.shared.jobs import JobStatus, JobStore
from atelier.shared.settings import Settings
from atelier.shared.storage import ObjectLayout, make_object_store
from tests.conftest import TINY_TRAIN, flush_db, wait_for

pytestmark = pytest.mark.slow

FENCING_DB = 5
LEASE_SECONDS = 3.0
OWNER = "fence"


@dataclass
class FencingStack:
    stack: EmbeddedStack
    settings: Settings
    client: Client

    def job(self, job_id: str) -> Job:
        return self.client.get(job_id)

    def log_lines(self, name: str) -> list[dict[str, str]]:
        """A worker's own log (JSON lines), parsed."""
        path = self.stack.data_dir / "logs" / f"{name}.log"
        found = []
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found


@pytest.fixture(scope="module")
def fenced(redis_base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FencingStack]:
    root = tmp_path_factory.mktemp("fencing")
    url = f"{redis_base_url}/{FENCING_DB}"
    flush_db(url)
    base = Settings.from_env(
        {},
        data_dir=root,
        progress_interval_seconds=0.1,
        cancel_check_interval_seconds=0.2,
        lease_seconds=LEASE_SECONDS,
        reaper_interval_seconds=0.5,
        retry_backoff_seconds=0.5,
    )
    stack = EmbeddedStack(base, port=free_port(), external_redis_url=url, worker_roles=("train",))
    settings = stack.start()
    stack.add_worker("train")
    key = ApiKeyStore(redis.Redis.from_url(url)).create(OWNER)
    try:
        yield FencingStack(stack, settings, Client(settings.api_url, key, timeout=60))
    finally:
        stack.stop()


def wait_step(env: FencingStack, job_id: str, attempt: int, at_least: int) -> Job:
    def there() -> bool:
        job = env.job(job_id)
        return job["attempt"] == attempt and job["progress"]["step"] >= at_least

    wait_for(there, 120, f"attempt {attempt} of {job_id} at step {at_least}")
    return env.job(job_id)


def job_pid(job: Job) -> int:
    assert job["worker"] is not None
    return int(job["worker"].rsplit(":", 1)[1])


def test_a_paused_attempt_that_wakes_writes_nothing(fenced: FencingStack) -> None:
    params = {**TINY_TRAIN, "steps": 1500, "sample_every": 500, "checkpoint_every": 100}
    job_id = fenced.client.submit("train", "dcgan", params)["id"]
    first = wait_step(fenced, job_id, 1, 150)
    pid = job_pid(first)
    os.kill(pid, signal.SIGSTOP)
    try:
        second = wait_step(fenced, job_id, 2, first["progress"]["step"] + 50)
    finally:
        os.kill(pid, signal.SIGCONT)
    woke = time.time()
    assert job_pid(second) != pid
    steps = []
    while time.time() < woke + 3:  # the stale process's progress writes must all be refused
        current = fenced.job(job_id)
        steps.append(current["progress"]["step"])
        assert current["attempt"] == 2
    assert steps == sorted(steps), "the reported step went backwards"

    done = fenced.client.wait(job_id, timeout=300)
    assert done["status"] == "succeeded" and done["attempt"] == 2, done["error"]
    stale_stops = [
        _epoch(line["ts"])
        for name in ("worker-train", "worker-train-2")
        for line in fenced.log_lines(name)
        if f"{job_id}: attempt 1 fenced off" in line.get("message", "")
    ]
    assert len(stale_stops) == 1, "the paused attempt never noticed it was fenced off"
    assert stale_stops[0] - woke < 2.5, f"stopped {stale_stops[0] - woke:.1f}s after waking"

    # Attempt 1 logged nothing after it woke, and storage holds only what the record names.
    lines = fenced.client.logs(job_id)
    assert not any("[attempt 1]" in line and "stopped" in line for line in lines)
    objects = make_object_store(fenced.settings)
    assert done["model_id"] is not None
    model = fenced.client.model(done["model_id"])
    referenced = {o["name"] for o in done["outputs"]}
    job_prefix = ObjectLayout.job_prefix(OWNER, job_id)
    attempt_one = [
        key
        for key in objects.list_keys(job_prefix)
        if (ObjectLayout.attempt_of(job_prefix, key) or (0, ""))[0] == 1
    ]
    record = redis.Redis.from_url(fenced.settings.redis_url).hget(f"atelier:job:{job_id}", "record")
    assert record is not None
    keys = {o["key"] for o in json.loads(record)["outputs"]}
    assert set(attempt_one) <= keys, set(attempt_one) - keys
    assert all(name.startswith("samples/") for name in referenced)
    weights = objects.list_keys(f"owners/{OWNER}/models/")
    assert weights == [ObjectLayout.model_weights(OWNER, model["id"])]


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_restarts_drain_and_resume_without_thrash(fenced: FencingStack) -> None:
    """Stop the one training worker mid-training, start it again under the same node name;
    then stop the whole stack and start a new one on the same data and Redis. Each stop
    checkpoints and requeues at once; each start resumes from that checkpoint and trains on."""
    stack = fenced.stack
    for spare in [p for p in stack.processes if p.name == "worker-train-2"]:
        spare.stop()  # one training worker, so the job waits for the restart
        stack.processes.remove(spare)
    params = {**TINY_TRAIN, "steps": 1_000_000, "sample_every": 1_000_000}
    job_id = fenced.client.submit("train", "dcgan", {**params, "checkpoint_every": 100_000})["id"]
    running = wait_step(fenced, job_id, 1, 100)

    worker = _worker_running(stack, running)
    worker.stop()  # SIGTERM: checkpoint at once and requeue (not a lease timeout)
    stack.processes.remove(worker)
    first_drain = _drained(fenced, job_id, running, 1)
    stack.processes.append(_same_worker_again(fenced, worker.name))
    again = wait_step(fenced, job_id, 2, first_drain + 200)
    assert f"resuming from the checkpoint at step {first_drain}" in "\n".join(
        fenced.client.logs(job_id)
    )

    stack.stop()  # the whole stack, as Ctrl-C or SIGTERM to `atelier up` does
    second_drain = _drained(fenced, job_id, again, 2)
    restarted = EmbeddedStack(
        stack.base,
        port=stack.port,
        external_redis_url=fenced.settings.redis_url,
        worker_roles=("train",),
    )
    restarted.start()
    try:
        resumed = wait_step(fenced, job_id, 3, second_drain + 200)
        assert resumed["status"] == "running" and resumed["failures"] == 0
        lines = "\n".join(fenced.client.logs(job_id))
        assert f"resuming from the checkpoint at step {second_drain}" in lines
        assert lines.count("worker shutting down") == 2  # one per stop: no thrash
        fenced.client.cancel(job_id)
        assert fenced.client.wait(job_id, timeout=30)["status"] == "canceled"
    finally:
        restarted.stop()


def _drained(env: FencingStack, job_id: str, before: Job, attempt: int) -> int:
    """The step at which ``attempt`` checkpointed and requeued when its worker stopped (read
    from Redis: the API may be down)."""
    client = redis.Redis.from_url(env.settings.redis_url)
    store = JobStore(client)

    def requeued() -> bool:
        job = store.get(job_id)
        return job is not None and job.status is JobStatus.QUEUED

    wait_for(requeued, 10, "the drained job requeued")
    stopped = store.get(job_id)
    assert stopped is not None and stopped.failures == 0 and stopped.error is None
    steps = [
        int(m.group(1))
        for line in JobLogs(client, 1000).read(job_id)
        if f"[attempt {attempt}]" in line and (m := re.search(r"shutting down at step (\d+)", line))
    ]
    assert len(steps) == 1
    assert stopped.checkpoint is not None
    assert stopped.checkpoint.step == steps[0] >= before["progress"]["step"]
    return steps[0]


def _same_worker_again(env: FencingStack, name: str) -> ManagedProcess:
    """The command `EmbeddedStack.add_worker` ran, under the same node name."""
    settings = env.settings.replace(worker_metrics_port=free_port())
    return ManagedProcess(
        name,
        [*ATELIER_COMMAND, "worker", "--queues", "train", "--name", name],
        child_env(settings),
        env.stack.data_dir / "logs" / f"{name}.log",
    )


def _worker_running(stack: EmbeddedStack, job: Job) -> ManagedProcess:
    pid = job_pid(job)
    ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    for process in stack.processes:
        if process.process.pid in (pid, ppid) or _descends(ppid, process.process.pid):
            return process
    raise AssertionError(f"no managed worker runs pid {pid}")


def _descends(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return False
