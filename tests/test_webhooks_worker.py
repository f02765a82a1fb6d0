"""Webhooks through the real processes: gunicorn API, a real ``atelier worker --queues
webhooks`` Celery worker (router thread + send task on threads), redis-server, and a
receiver on a free port. Jobs are moved through their lifecycle by the job store, as a job
worker would, so no TensorFlow runs (a job worker never sends webhooks anyway)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from standardwebhooks import Webhook

from atelier.cli.processes import free_port
from atelier.cli.stack import EmbeddedStack
from atelier.shared.auth import ApiKeyStore
from atelier.shared.job_records import WebhookEvent
from atelier.shared.settings import Settings
from atelier.shared.webhooks import WebhookStore
from tests.conftest import ROOMY_LIMITS, TOY_KIND, flush_db, wait_for
from tests.test_webhooks import run_job_in
from tests.webhook_receiver import Answer, running_receiver

pytestmark = pytest.mark.slow

WEBHOOKS_DB = 5


@pytest.fixture(scope="module")
def webhooks_stack(
    redis_base_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStack]:
    url = f"{redis_base_url}/{WEBHOOKS_DB}"
    flush_db(url)
    base = Settings.from_env(
        {},
        data_dir=tmp_path_factory.mktemp("webhooks-stack"),
        log_level="INFO",
        webhook_allow_private=True,
        webhook_retry_base_seconds=0.3,
        webhook_retry_max_seconds=0.6,
        lost_message_seconds=2.0,
        kind_plugins=TOY_KIND,
        **ROOMY_LIMITS,
    )
    stack = EmbeddedStack(
        base, port=free_port(), api_workers=1, external_redis_url=url, worker_roles=("webhooks",)
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_a_real_worker_delivers_signed_retries_with_one_id(webhooks_stack: EmbeddedStack) -> None:
    settings = webhooks_stack.settings
    assert settings is not None
    client = redis.Redis.from_url(settings.redis_url)
    key = ApiKeyStore(client).create("alice", "test")
    auth = {"Authorization": f"Bearer {key}"}
    with running_receiver() as receiver:
        receiver.answer(Answer(500), Answer(200))
        body = {
            "type": "train",
            "kind": "dcgan",
            "params": {},
            "webhook": receiver.url + "/hook",
            "webhook_events_filter": ["start", "completed"],
        }
        answer = requests.post(f"{settings.api_url}/v1/jobs", json=body, headers=auth, timeout=30)
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        run_job_in(client, job_id)
        received = receiver.wait_for(3, timeout=30)
        secret = requests.get(f"{settings.api_url}/v1/webhooks/secret", headers=auth, timeout=30)
        verifier = Webhook(secret.json()["key"])
        for request in received:
            verifier.verify(request.body, request.headers)
        # The first request (start or completed: they go out together) got the 500; it
        # came again under the same id, the other once.
        ids = Counter(r.headers["webhook-id"] for r in received)
        assert ids[received[0].headers["webhook-id"]] == 2 and sorted(ids.values()) == [1, 2]
        events = Counter(json.loads(r.body)["event"] for r in received)
        assert set(events) == {"start", "completed"}

        def all_delivered() -> bool:
            listed = requests.get(
                f"{settings.api_url}/v1/jobs/{job_id}/webhooks", headers=auth, timeout=30
            ).json()["data"]
            return [(d["event"], d["status"]) for d in listed] == [
                ("completed", "delivered"),
                ("start", "delivered"),
            ]

        wait_for(all_delivered, 10, "both deliveries recorded as delivered")

    port = webhooks_stack.worker_metrics_ports["worker-webhooks"]
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    attempts = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("atelier_webhook_attempts_total{")
    }
    # Three attempts: one answered 500 (then pending), two delivered.
    assert sum(v for k, v in attempts.items() if 'status="pending"' in k) == 1
    assert sum(v for k, v in attempts.items() if 'status="delivered"' in k) == 2
    assert "atelier_webhook_deliveries_pending " in metrics


def test_a_delivery_whose_message_was_lost_is_sent_by_the_sweep(
    webhooks_stack: EmbeddedStack, tmp_path: Path
) -> None:
    """The record is the truth: a delivery recorded with no Celery message at all (its
    router died between the two) is sent once its due time passes."""
    settings = webhooks_stack.settings
    assert settings is not None
    store = WebhookStore(redis.Redis.from_url(settings.redis_url))
    with running_receiver() as receiver:
        delivery = store.create(
            "job_lost", "alice", WebhookEvent.COMPLETED, receiver.url, '{"id":"job_lost"}', 1.0
        )
        (request,) = receiver.wait_for(1, timeout=20)
        assert request.headers["webhook-id"] == delivery.id
        Webhook(store.secret("alice")).verify(request.body, request.headers)


def test_a_job_run_by_a_job_worker_is_told_to_its_webhook(webhooks_stack: EmbeddedStack) -> None:
    """The whole chain: a training worker runs a (toy, tiny) job and only writes events; the
    webhooks worker turns them into signed deliveries."""
    settings = webhooks_stack.settings
    assert settings is not None
    client = redis.Redis.from_url(settings.redis_url)
    auth = {"Authorization": f"Bearer {ApiKeyStore(client).create('bob', 'test')}"}
    if not any(p.name.startswith("worker-train") for p in webhooks_stack.processes):
        webhooks_stack.add_worker("train")
    with running_receiver() as receiver:
        body = {"type": "train", "kind": "toy", "params": {"steps": 4}, "webhook": receiver.url}
        answer = requests.post(f"{settings.api_url}/v1/jobs", json=body, headers=auth, timeout=30)
        assert answer.status_code == 202, answer.text

        def completed() -> bool:
            return any(json.loads(r.body)["event"] == "completed" for r in receiver.requests)

        wait_for(completed, 180, "the completed webhook")
        secret = requests.get(f"{settings.api_url}/v1/webhooks/secret", headers=auth, timeout=30)
        verifier = Webhook(secret.json()["key"])
        bodies = [verifier.verify(r.body, r.headers) for r in receiver.requests]
        # Sent concurrently (the worker's threads): arrival order is not event order.
        events = [b["event"] for b in bodies]
        assert events.count("start") == 1 and "logs" in events
        final = next(b for b in bodies if b["event"] == "completed")
        assert final["status"] == "succeeded" and final["id"] == answer.json()["id"]
