"""Routing job events to webhooks, minus Celery: the in-process API on the real
redis-server, the router reading the real event stream that job transitions write,
``deliver`` posting over real HTTP to a receiver on a free port, and the Standard Webhooks
reference library verifying. (``tests/test_webhook_delivery.py`` covers deliveries alone;
``tests/test_webhooks_worker.py`` runs it all through a real Celery worker.)"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from standardwebhooks import Webhook

from atelier.shared.job_logs import JobLogs
from atelier.shared.job_records import JobStatus, OutputRef
from atelier.shared.jobs import JobStore
from atelier.shared.redis_keys import KEYS
from atelier.workers import webhook_router
from atelier.workers.webhook_router import WebhookRouter, api_renderer
from atelier.workers.webhook_tasks import deliver
from tests.conftest import InProcessApi, inprocess_api_for, inprocess_settings
from tests.webhook_receiver import Receiver, running_receiver

ROUTER_SETTINGS = {
    "webhook_allow_private": True,
    "webhook_logs_interval_seconds": 0.5,
}


@dataclass
class Hooks:
    api: InProcessApi
    router: WebhookRouter
    receiver: Receiver
    key: str
    sent: list[str] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def submit(self, **body: Any) -> dict[str, Any]:
        payload = {"type": "train", "kind": "dcgan", "params": {}, **body}
        answer = self.api.http.post(self.api.url("/v1/jobs"), json=payload, headers=self.auth)
        assert answer.status_code == 202, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def route(self) -> None:
        """Route every event written so far (and owed logs deliveries)."""
        while self.router.step():
            pass

    def send_all(self) -> None:
        while self.sent:
            deliver(self.router.store, self.api.settings, self.sent.pop(0))

    def secret(self) -> str:
        answer = self.api.http.get(self.api.url("/v1/webhooks/secret"), headers=self.auth)
        assert answer.status_code == 200, answer.text
        secret: str = answer.json()["key"]
        return secret


@pytest.fixture()
def hooks(redis_base_url: str, tmp_path: Path) -> Iterator[Hooks]:
    settings = inprocess_settings(redis_base_url, tmp_path, **ROUTER_SETTINGS)
    for api in inprocess_api_for(settings):
        with running_receiver() as receiver:
            found = Hooks(api, None, receiver, api.raw_key())  # type: ignore[arg-type]
            found.router = WebhookRouter(
                api.redis, settings, api_renderer(settings), found.sent.append
            )
            yield found


def run_job(hooks: Hooks, job_id: str, log_lines: int = 3) -> None:
    run_job_in(hooks.api.redis, job_id, log_lines)


def run_job_in(client: redis.Redis, job_id: str, log_lines: int = 3) -> None:
    """Start, log, write an output and finish the job, as a worker would (no TensorFlow)."""
    jobs = JobStore(client)
    claimed = jobs.claim(job_id, "worker-test", 30)
    assert claimed is not None and claimed.fence is not None
    logs = JobLogs(client, 100)
    for n in range(log_lines):
        assert logs.append(job_id, claimed.fence, f"step {n}")
    output = OutputRef(
        name="a.txt", key=f"jobs/{job_id}/a.txt", content_type="text/plain", size_bytes=1
    )
    assert jobs.add_outputs(job_id, claimed.fence, [output])
    assert jobs.finish(job_id, JobStatus.SUCCEEDED, fence=claimed.fence) is not None


def events_of(received: list[Any]) -> list[str]:
    return [json.loads(r.body)["event"] for r in received]


def test_deliveries_are_signed_per_the_standard_and_carry_the_job_json(hooks: Hooks) -> None:
    job = hooks.submit(webhook=hooks.receiver.url + "/hook?x=1")
    assert job["webhook"] == hooks.receiver.url + "/hook?x=1"
    assert job["webhook_events_filter"] == ["start", "output", "logs", "completed"]
    run_job(hooks, job["id"])
    hooks.route()
    time.sleep(0.6)  # the logs interval: lines inside it go in one more delivery
    hooks.route()
    hooks.send_all()
    received = hooks.receiver.requests
    assert events_of(received)[0] == "start" and events_of(received)[-1] == "completed"
    assert set(events_of(received)) == {"start", "output", "logs", "completed"}
    verifier = Webhook(hooks.secret())
    for request in received:
        assert request.path == "/hook?x=1"
        payload = verifier.verify(request.body, request.headers)
        assert payload["id"] == job["id"]
        assert request.headers["webhook-id"].startswith("msg_")
    completed = json.loads(received[-1].body)
    now = hooks.api.http.get(hooks.api.url(f"/v1/jobs/{job['id']}"), headers=hooks.auth).json()
    assert completed == {**now, "event": "completed"}
    logs = [json.loads(r.body) for r in received if json.loads(r.body)["event"] == "logs"]
    assert logs[-1]["logs"] == ["step 0", "step 1", "step 2"]
    assert json.loads(received[0].body)["status"] == "running"


def test_logs_deliveries_are_throttled_per_job(hooks: Hooks) -> None:
    job = hooks.submit(webhook=hooks.receiver.url, webhook_events_filter=["logs"])
    run_job(hooks, job["id"], log_lines=40)
    hooks.route()
    hooks.send_all()
    # 40 lines at once: one delivery at the first, one owed and paid before completion.
    assert events_of(hooks.receiver.requests) == ["logs", "logs"]
    assert len(json.loads(hooks.receiver.requests[-1].body)["logs"]) == 40


def test_the_events_filter_is_respected(hooks: Hooks) -> None:
    job = hooks.submit(webhook=hooks.receiver.url, webhook_events_filter=["completed"])
    assert job["webhook_events_filter"] == ["completed"]
    quiet = hooks.submit()  # no webhook: nothing is sent for it
    run_job(hooks, job["id"])
    run_job(hooks, quiet["id"])
    hooks.route()
    hooks.send_all()
    assert events_of(hooks.receiver.requests) == ["completed"]


def test_events_a_dead_router_took_are_routed_by_another(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries are acknowledged only once their delivery is recorded: a router that died
    holding some leaves them pending in the group, and a live one claims them."""
    client, stream = hooks.api.redis, KEYS.all_events
    client.xgroup_create(stream, webhook_router.GROUP, id="0", mkstream=True)
    job = hooks.submit(webhook=hooks.receiver.url, webhook_events_filter=["completed"])
    run_job(hooks, job["id"])
    taken = client.xreadgroup(webhook_router.GROUP, "dead-router", {stream: ">"}, count=1000)
    assert taken  # ...and it never acknowledged them
    monkeypatch.setattr(webhook_router, "STALE_SECONDS", 0.0)
    hooks.route()
    hooks.send_all()
    assert events_of(hooks.receiver.requests) == ["completed"]
    assert hooks.api.admin.xpending(stream, webhook_router.GROUP)["pending"] == 0


def test_a_job_canceled_before_it_ran_is_told_completed(hooks: Hooks) -> None:
    job = hooks.submit(webhook=hooks.receiver.url)
    canceled = hooks.api.http.post(
        hooks.api.url(f"/v1/jobs/{job['id']}/cancel"), headers=hooks.auth
    )
    assert canceled.status_code == 202, canceled.text
    hooks.route()
    hooks.send_all()
    (request,) = hooks.receiver.requests  # no start: it never ran
    body = Webhook(hooks.secret()).verify(request.body, request.headers)
    assert (body["event"], body["status"], body["attempt"]) == ("completed", "canceled", 0)


def test_completed_waits_for_the_replicas_to_hold_the_finish(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finish no replica confirms (this Redis has none; with ATELIER_REDIS_MIN_REPLICAS=1
    it plays a primary cut off from its replica) is not told to the receiver: the other
    events are, and ``completed`` comes once the finish is held (here: once the router no
    longer needs a replica)."""
    job = hooks.submit(webhook=hooks.receiver.url)
    run_job(hooks, job["id"])
    strict = hooks.api.settings.replace(redis_min_replicas=1, redis_replica_wait_seconds=0.05)
    hooks.router = WebhookRouter(hooks.api.redis, strict, api_renderer(strict), hooks.sent.append)
    hooks.route()
    time.sleep(0.6)
    hooks.route()
    hooks.send_all()
    assert "completed" not in events_of(hooks.receiver.requests)
    assert "start" in events_of(hooks.receiver.requests)
    monkeypatch.setattr(webhook_router, "STALE_SECONDS", 0.0)
    hooks.router = WebhookRouter(
        hooks.api.redis, hooks.api.settings, api_renderer(hooks.api.settings), hooks.sent.append
    )
    hooks.route()
    hooks.send_all()
    assert events_of(hooks.receiver.requests).count("completed") == 1
