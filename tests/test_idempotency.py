"""A submit that failed mid-way with Redis away (a failover) must not poison its
Idempotency-Key: the retry makes the job the failed submit reserved the key for, once."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis

from atelier.api.services import EXTENSION_NAME, Services
from atelier.shared.idempotency import ADOPT_SECONDS
from tests.conftest import InProcessApi

BODY = {"type": "train", "kind": "dcgan", "params": {"steps": 10}}


def _headers(api: InProcessApi, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.raw_key()}", "Idempotency-Key": key}


def _fail_the_first_submit(api: InProcessApi, monkeypatch: pytest.MonkeyPatch, key: str) -> str:
    """The first submit reserves the key, then the job's creation and the key's release
    both meet a Redis that went away: a 503, and the reservation left behind."""
    svc: Services = api.app.extensions[EXTENSION_NAME]

    def away(*_args: object, **_kwargs: object) -> None:
        raise redis.ConnectionError("Redis went away (failover)")

    with monkeypatch.context() as patch:
        patch.setattr(svc.jobs, "create", away)
        patch.setattr(svc.idempotency, "release", away)
        failed = api.http.post(api.url("/v1/jobs"), json=BODY, headers=_headers(api, key))
    assert failed.status_code == 503, failed.text
    assert failed.headers["Retry-After"] == "2"
    (reservation,) = api.admin.keys("atelier:idempotency:*")
    return str(json.loads(api.redis.get(reservation) or b"{}")["job_id"])


def test_a_retry_makes_the_job_a_failed_submit_reserved(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = uuid.uuid4().hex
    reserved = _fail_the_first_submit(inprocess_api, monkeypatch, key)
    assert not inprocess_api.redis.exists(f"atelier:job:{reserved}")
    url, headers = inprocess_api.url("/v1/jobs"), _headers(inprocess_api, key)
    retried = inprocess_api.http.post(url, json=BODY, headers=headers)
    assert retried.status_code == 202, retried.text
    assert retried.json()["id"] == reserved
    replayed = inprocess_api.http.post(url, json=BODY, headers=headers)
    assert replayed.status_code == 202 and replayed.json()["id"] == reserved
    assert replayed.headers["Idempotent-Replayed"] == "true"
    listed = inprocess_api.client().jobs(limit=100)["data"]
    assert [j["id"] for j in listed] == [reserved]


def test_a_key_whose_job_is_long_gone_is_a_409(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``ADOPT_SECONDS`` a missing job was deleted, not never made: not made again."""
    key = uuid.uuid4().hex
    _fail_the_first_submit(inprocess_api, monkeypatch, key)
    (reservation,) = inprocess_api.admin.keys("atelier:idempotency:*")
    record = json.loads(inprocess_api.redis.get(reservation) or b"{}")
    record["reserved_at"] = time.time() - ADOPT_SECONDS - 1
    inprocess_api.redis.set(reservation, json.dumps(record), keepttl=True)
    url, headers = inprocess_api.url("/v1/jobs"), _headers(inprocess_api, key)
    gone = inprocess_api.http.post(url, json=BODY, headers=headers)
    assert gone.status_code == 409, gone.text
    assert "no longer exists" in gone.json()["detail"]
    assert inprocess_api.client().jobs(limit=100)["data"] == []
