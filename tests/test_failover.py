"""A Redis failover under load, with real processes: a primary, a replica and three
sentinels on loopback (``cli.redis_ha``), an API and workers pointed at the sentinels with
``ATELIER_REDIS_MIN_REPLICAS=1``.

A generation load and one training job run while the primary is killed with kill -9 and,
with it, the training job's process (the host that held both is gone). A supervisor
starts the old primary again once the sentinels have promoted the replica. Every submit
answered 2xx must exist afterwards and succeed; the training job resumes from a checkpoint
and leaves exactly one model; submits are answered again within 20 s of the kill.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests

from atelier.cli.processes import ATELIER_COMMAND, child_env, free_port
from atelier.cli.redis_ha import Address, RedisGroup, start_group
from atelier.cli.stack import EmbeddedStack
from atelier.client import Client
from atelier.shared.auth import ApiKeyStore
from atelier.shared.jobs import JobStatus, JobStore, JobType
from atelier.shared.queue import enqueue, make_celery
from atelier.shared.redis_client import redis_for
from atelier.shared.settings import Settings
from tests.conftest import ROOMY_LIMITS, TINY_TRAIN, TOY_KIND, wait_for

pytestmark = pytest.mark.slow

LOOPBACK = "127.0.0.1"
ANSWERED_AGAIN_WITHIN_SECONDS = 20.0


@dataclass
class HaStack:
    group: RedisGroup
    stack: EmbeddedStack
    settings: Settings
    key: str

    def client(self) -> Client:
        return Client(self.settings.api_url, self.key, timeout=60, max_retries=10)


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaStack]:
    root = tmp_path_factory.mktemp("failover")
    group = start_group(
        Settings(),
        root / "redis",
        nodes=[Address(LOOPBACK, free_port()) for _ in range(2)],
        sentinels=[Address(LOOPBACK, free_port()) for _ in range(3)],
        password=secrets.token_hex(12),
    )
    base = Settings.from_env(
        {},
        data_dir=root / "stack",
        kind_plugins=TOY_KIND,
        redis_min_replicas=1,
        lease_seconds=5.0,
        reaper_interval_seconds=0.5,
        retry_backoff_seconds=0.5,
        lost_message_seconds=3.0,
        progress_interval_seconds=0.2,
        **ROOMY_LIMITS,
    )
    stack = EmbeddedStack(
        base, port=free_port(), external_redis_url=group.url(), worker_roles=("train", "generate")
    )
    try:
        settings = stack.start()
        key = ApiKeyStore(redis_for(settings)).create("ha")
        yield HaStack(group, stack, settings, key)
    finally:
        stack.stop()
        group.stop()


@dataclass
class SubmitLoad:
    """Generation submits, one at a time, each retried with its Idempotency-Key until it is
    answered 2xx: the ids acknowledged, and when each answer came."""

    url: str
    key: str
    model_id: str
    acknowledged: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {self.key}"
        body = {"type": "generate", "kind": "toy", "params": {"model_id": self.model_id}}
        while not self.stop.is_set():
            headers = {"Idempotency-Key": uuid.uuid4().hex}
            while not self.stop.is_set():
                try:
                    answer = http.post(
                        f"{self.url}/v1/jobs", json=body, headers=headers, timeout=30
                    )
                except requests.RequestException as exc:
                    self.errors.append(type(exc).__name__)
                    time.sleep(0.5)
                    continue
                if answer.status_code in (201, 202):
                    self.acknowledged[answer.json()["id"]] = time.monotonic()
                    break
                self.errors.append(str(answer.status_code))
                assert answer.status_code == 503, answer.text  # nothing else is expected
                time.sleep(float(answer.headers.get("Retry-After", "1")))
            time.sleep(0.2)


def _promoted(group: RedisGroup, old: Address) -> bool:
    try:
        return group.primary() != old
    except RuntimeError:
        return False


def test_a_failover_loses_no_acknowledged_job(ha: HaStack) -> None:
    client = ha.client()
    toy = client.wait(client.submit("train", "toy", {"steps": 3})["id"], timeout=180)
    assert toy["status"] == "succeeded" and toy["model_id"] is not None
    params = {**TINY_TRAIN, "steps": 1500, "sample_every": 500, "checkpoint_every": 40}
    training = client.submit("train", "dcgan", params)["id"]
    wait_for(lambda: (client.get(training)["checkpoint_step"] or 0) >= 40, 180, "a checkpoint")

    load = SubmitLoad(ha.settings.api_url, ha.key, toy["model_id"])
    sender = threading.Thread(target=load.run, daemon=True)
    sender.start()
    wait_for(lambda: len(load.acknowledged) >= 5, 60, "submits before the kill")

    old = ha.group.primary()
    job_pid = int((client.get(training)["worker"] or "").rsplit(":", 1)[1])
    killed_at = time.monotonic()
    ha.group.node_at(old).kill()
    os.kill(job_pid, signal.SIGKILL)
    wait_for(lambda: _promoted(ha.group, old), 30, "the sentinels to promote the replica")
    promoted_after = time.monotonic() - killed_at
    ha.group.start_again(ha.group.node_at(old))  # the supervisor's restart, as a replica
    wait_for(lambda: any(t > killed_at for t in load.acknowledged.values()), 30, "a submit")
    answered_again = min(t for t in load.acknowledged.values() if t > killed_at) - killed_at
    time.sleep(5)
    load.stop.set()
    sender.join(60)

    print(
        f"failover: replica promoted {promoted_after:.1f} s after kill -9, a submit "
        f"answered 2xx again {answered_again:.1f} s after it; {len(load.acknowledged)} "
        f"submits acknowledged, retried answers: {sorted(set(load.errors))}"
    )
    assert answered_again <= ANSWERED_AGAIN_WITHIN_SECONDS
    for job_id in load.acknowledged:
        assert client.wait(job_id, timeout=180)["status"] == "succeeded", job_id
    done = client.wait(training, timeout=600)
    assert done["status"] == "succeeded" and done["attempt"] >= 2, done
    assert any("resuming from the checkpoint" in line for line in client.logs(training))
    models = [m for m in client.models() if m["source_job_id"] == training]
    assert [m["id"] for m in models] == [done["model_id"]]


def test_a_write_no_replica_confirms_is_not_acknowledged(ha: HaStack) -> None:
    """With the replica stopped (SIGSTOP: connected, silent), a submit is a 503 that says
    why, and a key made by the CLI is not printed; once the replica is back, the same
    submit (same Idempotency-Key) is answered with the one job it made."""
    client = ha.client()
    replica = next(n for n in ha.group.nodes if n.address != ha.group.primary())
    body = {"type": "train", "kind": "toy", "params": {"steps": 2}}
    headers = {"Authorization": f"Bearer {ha.key}", "Idempotency-Key": uuid.uuid4().hex}
    url = f"{ha.settings.api_url}/v1/jobs"
    store = JobStore(redis_for(ha.settings))
    replica.process.signal_group(signal.SIGSTOP)
    try:
        refused = requests.post(url, json=body, headers=headers, timeout=30)
        # A job and its message as a submit makes them, unacknowledged: no worker may
        # claim it while no replica can confirm the claim.
        unclaimed = store.create("ha", JobType.TRAIN, "toy", {"steps": 1, "dataset": "digits"})
        enqueue(make_celery(ha.settings), ha.settings, unclaimed.id, JobType.TRAIN)
        time.sleep(4)
        waiting = store.get(unclaimed.id)
        cli = subprocess.run(
            [*ATELIER_COMMAND, "keys", "create", "--owner", "ha"],
            env=child_env(ha.settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        replica.process.signal_group(signal.SIGCONT)
    assert refused.status_code == 503, refused.text
    assert refused.json()["type"].endswith(":not-replicated")
    assert "0 of the 1 Redis replicas" in refused.json()["detail"]
    assert refused.headers["Retry-After"] == "2"
    assert cli.returncode != 0 and "0 of the 1 Redis replicas" in cli.stderr
    assert not cli.stdout.strip()  # no key shown
    assert waiting is not None and waiting.status is JobStatus.QUEUED and waiting.attempt == 0
    assert client.wait(unclaimed.id, timeout=120)["status"] == "succeeded"  # message resent

    again = requests.post(url, json=body, headers=headers, timeout=30)
    # The refused submit's job was made, only not acknowledged: the retry finds it (201 if
    # it has run meanwhile), and no second job is made.
    assert again.status_code in (201, 202) and again.headers.get("Idempotent-Replayed") == "true"
    assert client.wait(again.json()["id"], timeout=120)["status"] == "succeeded"
    made = [j for j in client.jobs(kind="toy")["data"] if j["params"].get("steps") == 2]
    assert [j["id"] for j in made] == [again.json()["id"]]
    listed = subprocess.run(
        [*ATELIER_COMMAND, "keys", "list", "--owner", "ha"],
        env=child_env(ha.settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert len(listed.stdout.strip().splitlines()) >= 2  # a header, and the fixture's key
