"""Webhook deliveries and the webhook API against the real things, minus Celery: the
in-process API on the real redis-server, deliveries recorded in Redis and sent by
``deliver`` over real HTTP to a receiver on a free port, verified with the Standard
Webhooks reference library. (``tests/test_webhooks.py`` routes real job events;
``tests/test_webhooks_worker.py`` runs it all through a real Celery worker.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from standardwebhooks import Webhook

from atelier.cli.main import main as cli_main
from atelier.shared.auth import ApiKeyStore
from atelier.shared.job_records import WebhookEvent
from atelier.shared.webhooks import Delivery, DeliveryStatus, WebhookStore
from atelier.workers.webhook_http import HttpLimits, post
from atelier.workers.webhook_tasks import deliver
from tests.conftest import InProcessApi, inprocess_api_for, inprocess_settings
from tests.webhook_receiver import Answer, Receiver, running_receiver

METADATA_URL = "http://169.254.169.254/latest/meta-data/"
FAST_RETRIES: dict[str, Any] = {
    "webhook_allow_private": True,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_max_seconds": 0.1,
    "webhook_timeout_seconds": 3.0,
    "webhook_max_response_bytes": 1000,
}
BODY = '{"id":"job_1","status":"succeeded","event":"completed"}'


@dataclass
class Deliveries:
    api: InProcessApi
    store: WebhookStore
    receiver: Receiver
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def record(self, url: str | None = None, job_id: str = "job_1") -> Delivery:
        return self.store.create(
            job_id, "alice", WebhookEvent.COMPLETED, url or self.receiver.url, BODY, 30
        )

    def send(self, delivery_id: str) -> Delivery | None:
        return deliver(self.store, self.api.settings, delivery_id)

    def secret(self) -> str:
        answer = self.api.http.get(self.api.url("/v1/webhooks/secret"), headers=self.auth)
        assert answer.status_code == 200, answer.text
        secret: str = answer.json()["key"]
        return secret

    def submit(self, **body: Any) -> Any:
        payload = {"type": "train", "kind": "dcgan", "params": {}, **body}
        return self.api.http.post(self.api.url("/v1/jobs"), json=payload, headers=self.auth)


@pytest.fixture()
def hooks(redis_base_url: str, tmp_path: Path) -> Iterator[Deliveries]:
    settings = inprocess_settings(redis_base_url, tmp_path, **FAST_RETRIES)
    for api in inprocess_api_for(settings):
        with running_receiver() as receiver:
            yield Deliveries(api, WebhookStore(api.redis), receiver, api.raw_key())


def test_a_delivery_is_signed_per_the_standard(hooks: Deliveries) -> None:
    delivery = hooks.record(hooks.receiver.url + "/hook?x=1")
    after = hooks.send(delivery.id)
    assert after is not None and after.status is DeliveryStatus.DELIVERED
    (request,) = hooks.receiver.requests
    assert request.path == "/hook?x=1" and request.body.decode() == BODY
    assert request.headers["webhook-id"] == delivery.id
    assert request.headers["content-type"] == "application/json"
    assert Webhook(hooks.secret()).verify(request.body, request.headers)["id"] == "job_1"
    assert hooks.send(delivery.id) is None  # delivered: nothing left to send


def test_a_failed_delivery_is_retried_with_the_same_id(hooks: Deliveries) -> None:
    hooks.receiver.answer(Answer(500), Answer(503), Answer(200))
    delivery = hooks.record()
    first = hooks.send(delivery.id)
    assert first is not None and first.status is DeliveryStatus.PENDING
    assert first.last_status_code == 500 and first.next_attempt_at is not None
    deadline = time.monotonic() + 10
    while len(hooks.receiver.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
        for due in hooks.store.claim_due(10, 30):  # what the sweep does
            hooks.send(due)
    ids = [r.headers["webhook-id"] for r in hooks.receiver.requests]
    assert ids == [delivery.id] * 3
    stamps = [int(r.headers["webhook-timestamp"]) for r in hooks.receiver.requests]
    assert stamps == sorted(stamps)  # each attempt signed when it is sent
    listed = hooks.api.http.get(hooks.api.url("/v1/jobs/job_1/webhooks"), headers=hooks.auth)
    # job_1 does not exist for alice: another owner's (or no) job reads 404.
    assert listed.status_code == 404
    (found,) = hooks.store.list_for_job("job_1")
    assert (found.status, found.attempts, found.last_status_code, found.last_error) == (
        DeliveryStatus.DELIVERED,
        3,
        200,
        None,
    )


def test_a_delivery_is_given_up_after_its_window(hooks: Deliveries) -> None:
    hooks.receiver.answer(Answer(500))
    settings = hooks.api.settings.replace(webhook_retry_window_seconds=0.0)
    delivery = hooks.record()
    after = deliver(hooks.store, settings, delivery.id)
    assert after is not None and after.status is DeliveryStatus.FAILED
    assert after.last_error == "HTTP 500" and hooks.store.claim_due(10, 30) == []


def test_redirects_are_not_followed(hooks: Deliveries) -> None:
    hooks.receiver.answer(Answer(307, {"Location": hooks.receiver.url + "/elsewhere"}))
    after = hooks.send(hooks.record(hooks.receiver.url + "/hook").id)
    assert [r.path for r in hooks.receiver.requests] == ["/hook"]
    assert after is not None and after.status is DeliveryStatus.PENDING
    assert after.last_status_code == 307 and "redirect" in (after.last_error or "")


def test_the_answer_read_is_bounded(hooks: Deliveries) -> None:
    hooks.receiver.answer(Answer(200, body=b"x" * 4096, endless=True))
    started = time.monotonic()
    after = hooks.send(hooks.record().id)
    assert time.monotonic() - started < 2.5  # read 1000 bytes and hung up; did not stream
    assert after is not None and after.status is DeliveryStatus.DELIVERED


def test_a_refused_address_is_given_up_at_once(hooks: Deliveries) -> None:
    """A URL that passed at submit but is refused at delivery (here written directly, as
    a name that later resolves to a metadata address would be) is not retried."""
    after = hooks.send(hooks.record(METADATA_URL).id)
    assert after is not None and after.status is DeliveryStatus.FAILED
    assert after.attempts == 1 and "metadata" in (after.last_error or "")
    assert hooks.receiver.requests == []


def test_private_addresses_are_refused_at_delivery_unless_allowed(hooks: Deliveries) -> None:
    strict = hooks.api.settings.replace(webhook_allow_private=False)
    after = deliver(hooks.store, strict, hooks.record().id)
    assert after is not None and after.status is DeliveryStatus.FAILED
    assert "loopback" in (after.last_error or "") and hooks.receiver.requests == []


def test_rotating_the_secret_changes_the_signatures(hooks: Deliveries) -> None:
    old = hooks.secret()
    assert old.startswith("whsec_") and hooks.secret() == old
    rotated = hooks.api.http.post(
        hooks.api.url("/v1/webhooks/secret/rotate"), headers=hooks.auth
    ).json()["key"]
    assert rotated != old and hooks.secret() == rotated
    trail = hooks.api.http.get(hooks.api.url("/v1/audit"), headers=hooks.auth).json()["data"]
    assert [e["action"] for e in trail] == ["webhook-secret.rotate"]
    assert rotated not in str(trail)  # the audit names the rotation, never the secret
    hooks.send(hooks.record().id)
    (request,) = hooks.receiver.requests
    Webhook(rotated).verify(request.body, request.headers)
    with pytest.raises(Exception, match=r"(?i)signature"):
        Webhook(old).verify(request.body, request.headers)


def test_a_job_echoes_its_webhook_and_lists_its_deliveries(hooks: Deliveries) -> None:
    answer = hooks.submit(webhook="https://example.com/hook", webhook_events_filter=["completed"])
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert (job["webhook"], job["webhook_events_filter"]) == (
        "https://example.com/hook",
        ["completed"],
    )
    plain = hooks.submit(webhook="https://example.com/hook").json()
    assert plain["webhook_events_filter"] == ["start", "output", "logs", "completed"]
    assert hooks.submit().json()["webhook"] is None
    hooks.record(job_id=job["id"])
    listed = hooks.api.http.get(hooks.api.url(f"/v1/jobs/{job['id']}/webhooks"), headers=hooks.auth)
    (only,) = listed.json()["data"]
    assert (only["event"], only["status"], only["attempts"]) == ("completed", "pending", 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"webhook": "ftp://example.com/"}, "webhook"),
        ({"webhook": "https://u:p@example.com/"}, "webhook"),
        ({"webhook": "http://169.254.169.254/"}, "webhook"),
        ({"webhook": "http://2130706433/"}, "webhook"),
        ({"webhook": "http://[::ffff:10.0.0.1]/"}, "webhook"),
        ({"webhook": "https://example.com/" + "a" * 2100}, "webhook"),
        (
            {"webhook": "https://example.com/", "webhook_events_filter": ["begin"]},
            "webhook_events_filter.0",
        ),
        ({"webhook": "https://example.com/", "webhook_events_filter": []}, "webhook_events_filter"),
        (
            {"webhook": "https://example.com/", "webhook_events_filter": ["logs", "logs"]},
            "webhook_events_filter",
        ),
    ],
)
def test_bad_webhooks_are_refused_at_submit(
    inprocess_api: InProcessApi, body: dict[str, Any], field: str
) -> None:
    auth = {"Authorization": f"Bearer {inprocess_api.raw_key()}"}
    answer = inprocess_api.http.post(
        inprocess_api.url("/v1/jobs"),
        json={"type": "train", "kind": "dcgan", "params": {}, **body},
        headers=auth,
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert field in [e["field"] for e in answer.json()["errors"]]


def test_a_loopback_webhook_is_refused_at_submit(inprocess_api: InProcessApi) -> None:
    auth = {"Authorization": f"Bearer {inprocess_api.raw_key()}"}
    body = {"type": "train", "kind": "dcgan", "params": {}, "webhook": "http://127.0.0.1:9/"}
    answer = inprocess_api.http.post(inprocess_api.url("/v1/jobs"), json=body, headers=auth)
    assert answer.status_code == 422 and "loopback" in answer.json()["detail"]


def test_the_secret_needs_the_submit_scope(inprocess_api: InProcessApi) -> None:
    reader = ApiKeyStore(inprocess_api.redis).create("alice", "reader", scopes=["read"])
    auth = {"Authorization": f"Bearer {reader}"}
    for method, path in (("GET", "/v1/webhooks/secret"), ("POST", "/v1/webhooks/secret/rotate")):
        answer = inprocess_api.http.request(method, inprocess_api.url(path), headers=auth)
        assert answer.status_code == 403 and answer.json()["scope"] == "submit"


def test_the_sender_connects_to_the_address_it_vetted(hooks: Deliveries) -> None:
    """One lookup: the name is resolved once, vetted, and that address is dialled (no
    second lookup for DNS rebinding to change); the request still names the host."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    port = hooks.receiver.url.rsplit(":", 1)[1]
    limits = HttpLimits(allow_private=True, max_response_bytes=1000)
    result = post(f"http://hooks.example.test:{port}/in", b"{}", {}, limits, resolve)
    assert result.outcome.delivered and asked == ["hooks.example.test"]
    (request,) = hooks.receiver.requests
    assert request.headers["host"] == f"hooks.example.test:{port}"


def test_at_most_the_bound_of_an_answer_is_read(hooks: Deliveries) -> None:
    hooks.receiver.answer(Answer(200, body=b"y" * 10_000, endless=True))
    limits = HttpLimits(allow_private=True, max_response_bytes=1000, total_timeout=3.0)
    result = post(hooks.receiver.url, b"{}", {}, limits)
    assert result.outcome.delivered and result.bytes_read == 1000


def test_a_due_delivery_whose_record_is_gone_leaves_the_due_set(hooks: Deliveries) -> None:
    delivery = hooks.record()
    hooks.api.redis.delete(f"atelier:webhook:{delivery.id}")  # expired or trimmed
    assert hooks.send(delivery.id) is None
    assert hooks.api.redis.zscore("atelier:webhooks:due", delivery.id) is None


def test_the_client_and_cli_set_webhooks_and_read_the_secret(
    hooks: Deliveries, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = hooks.api.client("alice")
    monkeypatch.setattr("atelier.cli.main._client", lambda: client)
    runner = CliRunner()
    args = ["submit", "train", "--webhook", "https://example.com/h", "--webhook-event", "completed"]
    submitted = runner.invoke(cli_main, args)
    assert submitted.exit_code == 0, submitted.output
    job = client.get(submitted.output.strip())
    assert (job["webhook"], job["webhook_events_filter"]) == (
        "https://example.com/h",
        ["completed"],
    )
    secret = runner.invoke(cli_main, ["webhooks", "secret"]).output.strip()
    assert secret == client.webhook_secret() == hooks.secret()
    rotated = runner.invoke(cli_main, ["webhooks", "secret", "--rotate"]).output.strip()
    assert rotated != secret and client.webhook_secret() == rotated
    hooks.record(job_id=job["id"])
    assert [d["status"] for d in client.webhooks(job["id"])] == ["pending"]
    listed = runner.invoke(cli_main, ["webhooks", "list", job["id"]]).output
    assert "completed" in listed and "pending" in listed and "attempts=0" in listed
    refused = runner.invoke(cli_main, ["submit", "train", "--webhook-event", "logs"])
    assert refused.exit_code != 0 and "--webhook-event needs --webhook" in refused.output
