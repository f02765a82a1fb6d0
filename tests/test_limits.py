"""Rate limits and quotas (shared.rate_limits, shared.quotas, api.rate_limits).

Fast tier: the app in this process against the real redis-server, with small limits of
its own; two apps on one Redis stand for two API processes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from atelier.api.app import create_app
from atelier.cli.usage import usage_table
from atelier.client import spent_budget_wait
from atelier.shared.queue import queue_length
from tests.conftest import InProcessApi, flush_db
from tests.flask_transport import session_for

TRAIN = {"type": "train", "kind": "dcgan", "params": {"steps": 10}}


def auth(api: InProcessApi, owner: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {api.raw_key(owner)}"}


def submit(api: InProcessApi, headers: dict[str, str]) -> requests.Response:
    return api.http.post(api.url("/v1/jobs"), json=TRAIN, headers=headers, timeout=10)


def upload(api: InProcessApi, headers: dict[str, str], text: str) -> requests.Response:
    files = {"file": ("corpus.txt", text.encode())}
    return api.http.post(api.url("/v1/datasets"), files=files, headers=headers, timeout=10)


def assert_problem(response: requests.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:atelier:problem:{slug}"
    return body


def queued_messages(api: InProcessApi) -> int:
    return queue_length(api.redis, api.settings.train_queue)


# --- rate limits ----------------------------------------------------------------------------
def test_a_burst_of_submits_over_the_budget_gets_429_and_retry_after_works(make_api: Any) -> None:
    api = make_api(submits_per_minute=60, submits_burst=3)
    headers = auth(api)
    answers = [submit(api, headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert [a.headers["RateLimit"] for a in answers] == [
        '"submits";r=2;t=1',
        '"submits";r=1;t=1',
        '"submits";r=0;t=1',
    ]
    assert answers[0].headers["RateLimit-Policy"] == '"submits";q=3;w=3'

    refused = submit(api, headers)
    body = assert_problem(refused, 429, "rate-limited")
    assert refused.headers["Retry-After"] == "1" and body["retry_after"] == 1
    assert refused.headers["RateLimit"] == '"submits";r=0;t=1'
    assert refused.headers["RateLimit-Policy"] == '"submits";q=3;w=3'
    assert body["policy"] == "submits"
    assert queued_messages(api) == 3 and api.redis.zcard("atelier:owner:alice:jobs") == 3

    time.sleep(float(refused.headers["Retry-After"]))
    assert submit(api, headers).status_code == 202


def test_budgets_are_separate_and_probes_are_never_limited(make_api: Any) -> None:
    api = make_api(reads_per_minute=60, reads_burst=2, uploads_per_minute=60, uploads_burst=1)
    headers = auth(api)
    assert upload(api, headers, "a corpus").status_code == 201
    assert_problem(upload(api, headers, "another"), 429, "rate-limited")
    reads = [api.http.get(api.url("/v1/jobs"), headers=headers, timeout=10) for _ in range(3)]
    assert [r.status_code for r in reads] == [200, 200, 429]
    assert reads[0].headers["RateLimit-Policy"] == '"reads";q=2;w=2'
    assert submit(api, headers).status_code == 202  # submits: roomy, its own budget
    for path in ("/healthz", "/metrics"):
        for _ in range(5):
            answer = api.http.get(api.url(path), headers=headers, timeout=10)
            assert answer.status_code == 200, path
            assert "RateLimit" not in answer.headers, path
    # The documents and readiness are open: the client address's budget, not the owner's.
    for path in ("/readyz", "/v1/openapi.json", "/v1/docs/swagger/"):
        answer = api.http.get(api.url(path), headers=headers, timeout=10)
        assert answer.status_code == 200, path
        assert answer.headers["RateLimit-Policy"].startswith('"anonymous";'), path


def test_two_api_processes_share_one_budget(make_api: Any) -> None:
    one = make_api(submits_per_minute=6, submits_burst=4)
    two = session_for(create_app(one.settings), one.settings.api_url)
    headers = auth(one)
    codes = []
    for session in (one.http, two, one.http, two, one.http, two):
        codes.append(session.post(one.url("/v1/jobs"), json=TRAIN, headers=headers).status_code)
    assert codes == [202, 202, 202, 202, 429, 429]


def test_concurrent_requests_cannot_overspend(make_api: Any) -> None:
    api = make_api(submits_per_minute=1, submits_burst=5)
    headers = auth(api)
    sessions = [api.session() for _ in range(20)]
    with ThreadPoolExecutor(20) as pool:
        codes = list(
            pool.map(lambda s: s.post(api.url("/v1/jobs"), json=TRAIN, headers=headers), sessions)
        )
    assert sorted(c.status_code for c in codes) == [202] * 5 + [429] * 15


def test_per_owner_overrides(make_api: Any) -> None:
    overrides = '{"vip": {"submits_burst": 4, "max_queued_jobs": 10}}'
    api = make_api(submits_per_minute=1, submits_burst=1, owner_limits=overrides)
    alice, vip = auth(api, "alice"), auth(api, "vip")
    assert [submit(api, alice).status_code for _ in range(2)] == [202, 429]
    assert [submit(api, vip).status_code for _ in range(5)] == [202] * 4 + [429]
    usage = api.http.get(api.url("/v1/usage"), headers=vip, timeout=10).json()
    assert {q["name"]: q["limit"] for q in usage["quotas"]}["queued_jobs"] == 10


def test_the_client_waits_out_a_429(make_api: Any) -> None:
    api = make_api(submits_per_minute=60, submits_burst=1)
    client = api.client()
    client.submit("train", "dcgan", {"steps": 10})
    started = time.monotonic()
    client.submit("train", "dcgan", {"steps": 10})
    assert 0.5 < time.monotonic() - started < 5
    assert spent_budget_wait('"reads";r=3;t=1, "submits";r=0;t=2') == "2"
    assert spent_budget_wait('"submits";r=1;t=2') is None


# --- quotas ---------------------------------------------------------------------------------
def test_queued_jobs_quota_refuses_and_enqueues_nothing(make_api: Any) -> None:
    api = make_api(max_queued_jobs=2)
    headers = auth(api)
    first, second = (submit(api, headers).json()["id"] for _ in range(2))
    body = assert_problem(submit(api, headers), 403, "quota-exceeded")
    assert (body["quota"], body["usage"], body["limit"]) == ("queued_jobs", 2, 2)
    assert queued_messages(api) == 2 and api.redis.zcard("atelier:owner:alice:jobs") == 2
    assert submit(api, auth(api, "bob")).status_code == 202  # per owner
    api.http.post(api.url(f"/v1/jobs/{first}/cancel"), headers=headers, timeout=10)
    assert submit(api, headers).status_code == 202
    assert second


def test_queued_jobs_quota_holds_under_concurrent_submits(make_api: Any) -> None:
    api = make_api(max_queued_jobs=5)
    headers = auth(api)
    sessions = [api.session() for _ in range(16)]
    with ThreadPoolExecutor(16) as pool:
        codes = list(
            pool.map(lambda s: s.post(api.url("/v1/jobs"), json=TRAIN, headers=headers), sessions)
        )
    assert sorted(c.status_code for c in codes) == [202] * 5 + [403] * 11
    assert queued_messages(api) == 5


def test_datasets_and_stored_bytes_quotas(make_api: Any) -> None:
    api = make_api(max_datasets=2, max_stored_bytes=1000)
    headers = auth(api)
    kept = upload(api, headers, "x" * 600).json()["name"]
    body = assert_problem(upload(api, headers, "y" * 500), 403, "quota-exceeded")
    assert (body["quota"], body["usage"], body["limit"]) == ("stored_bytes", 600, 1000)
    stored = list((api.settings.local_storage_dir / "owners" / "alice").rglob("*.txt"))
    assert len(stored) == 1  # the refused upload stored nothing
    assert upload(api, headers, "z" * 400).status_code == 201
    # Full: submits are refused too (a job's outputs would go over), and a third dataset.
    body = assert_problem(submit(api, headers), 403, "quota-exceeded")
    assert (body["quota"], body["usage"]) == ("stored_bytes", 1000)
    assert queued_messages(api) == 0
    api.http.delete(api.url(f"/v1/datasets/{kept}"), headers=headers, timeout=10)
    # 400 of 1000 stored: a submit reserves its estimated output (megabytes) and is refused
    # still (tests/test_quota_reservation.py gives jobs room); a small upload fits again.
    body = assert_problem(submit(api, headers), 403, "quota-exceeded")
    assert (body["quota"], body["usage"]) == ("stored_bytes", 400)
    assert upload(api, headers, "w" * 10).status_code == 201
    body = assert_problem(upload(api, headers, "v"), 403, "quota-exceeded")
    assert (body["quota"], body["usage"], body["limit"]) == ("datasets", 2, 2)


# --- what the owner is shown ----------------------------------------------------------------
def test_usage_matches_what_was_done(make_api: Any) -> None:
    # One token a minute: the three submits' tokens cannot be refilled while the test runs
    # (at 120 a minute, half a second of a slow machine gave one back: 8 left, not 7).
    api = make_api(submits_per_minute=1, submits_burst=10, max_queued_jobs=50)
    client = api.client("carol")
    for _ in range(3):
        client.submit("train", "dcgan", {"steps": 10})
    headers = auth(api, "carol")
    upload(api, headers, "hello " * 100)
    usage = client.usage()
    quotas = {q["name"]: (q["usage"], q["limit"], q["unit"]) for q in usage["quotas"]}
    assert quotas["queued_jobs"] == (3, 50, "jobs")
    assert quotas["datasets"][:2] == (1, api.settings.max_datasets)
    assert quotas["stored_bytes"][0] == 600  # the corpus; a text dataset has no preview
    budgets = {b["name"]: b for b in usage["rate_limits"]}
    assert budgets["submits"]["per_minute"] == 1 and budgets["submits"]["remaining"] == 7
    assert usage["owner"] == "carol" and usage["max_running_jobs"] >= 1
    table = usage_table(usage)
    assert "queued_jobs" in table and "submits" in table and "600 B" in table


def test_openapi_describes_the_limits(make_api: Any) -> None:
    api = make_api()
    doc = api.http.get(api.url("/v1/openapi.json"), timeout=10).json()
    submit_op = doc["paths"]["/v1/jobs"]["post"]["responses"]
    assert {"RateLimit", "Retry-After"} <= set(submit_op["429"]["headers"])
    assert "RateLimit-Policy" in submit_op["202"]["headers"]
    assert "403" in submit_op and "403" in doc["paths"]["/v1/datasets"]["post"]["responses"]
    assert "429" in doc["paths"]["/v1/usage"]["get"]["responses"]
    assert "429" not in doc["paths"].get("/healthz", {}).get("get", {}).get("responses", {})


def test_the_metered_store_counts_each_object_once(
    redis_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What the workers store and delete counts like the API's uploads: a repeated put
    counts the change in size, a repeated delete once, keys outside owners/ not at all,
    and a Redis outage never fails the write itself."""
    from atelier.shared.settings import Settings
    from atelier.shared.storage import make_object_store

    store = make_object_store(Settings(local_storage_dir=tmp_path), meter_with=redis_client)
    stored = "atelier:owner:dana:stored-bytes"
    store.put_bytes("owners/dana/jobs/job_1/a1/checkpoints/step-0000010.npz", b"x" * 100, "x")
    store.put_bytes("owners/dana/jobs/job_1/a1/checkpoints/step-0000010.npz", b"x" * 40, "x")
    store.put_bytes("owners/dana/models/m/weights.npz", b"w" * 60, "x")
    store.put_bytes("elsewhere/file", b"z" * 500, "x")
    assert int(redis_client.get(stored)) == 100
    for _ in range(2):
        store.delete("owners/dana/jobs/job_1/a1/checkpoints/step-0000010.npz")
    assert int(redis_client.get(stored)) == 60
    store.delete("owners/dana/never/stored")  # nothing to free: counted as 0, no error
    assert int(redis_client.get(stored)) == 60
    assert not [r for r in caplog.records if "not counted" in r.getMessage()], caplog.text
    gone = make_object_store(
        Settings(local_storage_dir=tmp_path),
        meter_with=redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2),
    )
    assert gone.put_bytes("owners/dana/x", b"abc", "x") == 3
    assert (tmp_path / "owners" / "dana" / "x").read_bytes() == b"abc"


@pytest.mark.slow  # starts gunicorn (no worker, no TensorFlow)
def test_the_api_under_gunicorn_enforces_the_budget_over_http(
    redis_base_url: str, tmp_path: Path
) -> None:
    """The real API under gunicorn (two worker processes, whichever answers) with a budget of
    4 submits: the fifth is refused over HTTP with its headers, and the client waits it out
    by itself."""
    from atelier.cli.processes import free_port
    from atelier.cli.stack import EmbeddedStack
    from atelier.client import Client
    from atelier.shared.auth import ApiKeyStore
    from atelier.shared.settings import Settings

    url = f"{redis_base_url}/6"
    flush_db(url)
    base = Settings.from_env({}, data_dir=tmp_path / "data", submits_per_minute=30, submits_burst=4)
    stack = EmbeddedStack(base, port=free_port(), external_redis_url=url, worker_roles=())
    settings = stack.start()
    try:
        key = ApiKeyStore(redis.Redis.from_url(url)).create("carol")
        headers = {"Authorization": f"Bearer {key}"}
        answers = [
            requests.post(settings.api_url + "/v1/jobs", json=TRAIN, headers=headers, timeout=10)
            for _ in range(5)
        ]
        assert [a.status_code for a in answers] == [202, 202, 202, 202, 429]
        refused = answers[-1]
        assert refused.headers["Content-Type"] == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit-Policy"].startswith('"submits";q=4;')
        assert '"submits";r=0;' in refused.headers["RateLimit"]
        started = time.monotonic()
        job = Client(settings.api_url, key).submit("train", "dcgan", {"steps": 10})
        assert job["status"] == "queued" and time.monotonic() - started >= 1.0
    finally:
        stack.stop()
