"""Status polls (issue 26, point 1): ``GET /v1/jobs/{id}`` reads its job in the read
budget's own script (one round trip), the budget stays exact across processes, a kept
body (``api.bodies.JobBodies``) is never shown once the job changed, and a revoked key
stops working within the key cache's bound.

Fast tier: the app in this process against the real redis-server; two apps on one Redis
stand for two API processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
import requests

from atelier.api.app import create_app
from atelier.api.bodies import JobBodies, Links
from atelier.api.services import BODY_MAX_AGE_SECONDS, _body_max_age
from atelier.shared.auth import ID_CHARS, ApiKeyStore, hash_key
from atelier.shared.jobs import JobStatus, JobStore, JobType, OutputRef, Progress
from atelier.shared.storage import LocalObjectStore
from tests.conftest import InProcessApi
from tests.flask_transport import session_for


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _sent_commands(admin: redis.Redis, action: Callable[[], object]) -> list[str]:
    """The commands clients sent Redis during ``action`` (MONITOR; not those a script ran,
    nor the test's own)."""
    marker = "end-of-action"
    with admin.monitor() as monitor:  # type: ignore[no-untyped-call]
        action()
        admin.echo(marker)  # ends the watch
        seen = []
        while (line := monitor.next_command())["command"] != f"ECHO {marker}":
            seen.append(line)
    ours = line["client_port"]
    return [
        str(line["command"]).split()[0].upper()
        for line in seen
        if line["client_type"] != "lua" and line["client_port"] != ours
    ]


def test_a_poll_is_one_round_trip_to_redis(make_api: Any) -> None:
    api = make_api(reads_per_minute=600, reads_burst=100)
    key = api.raw_key()
    job = JobStore(api.redis).create("alice", JobType.TRAIN, "dcgan", {})
    url = api.url(f"/v1/jobs/{job.id}")
    assert api.http.get(url, headers=_headers(key)).status_code == 200  # caches the key
    answers: list[requests.Response] = []
    sent = _sent_commands(
        api.admin, lambda: answers.append(api.http.get(url, headers=_headers(key)))
    )
    assert answers[0].status_code == 200 and answers[0].json()["id"] == job.id
    assert sent == ["EVALSHA"]
    assert answers[0].headers["RateLimit"] == '"reads";r=98;t=1'


def test_polls_and_other_reads_spend_one_exact_budget_across_processes(make_api: Any) -> None:
    one = make_api(reads_per_minute=6, reads_burst=4)
    two = session_for(create_app(one.settings), one.settings.api_url)
    headers = _headers(one.raw_key())
    job = JobStore(one.redis).create("alice", JobType.TRAIN, "dcgan", {})
    poll, listing = one.url(f"/v1/jobs/{job.id}"), one.url("/v1/jobs")
    order = [(one.http, poll), (two, listing), (two, poll), (one.http, listing)]
    order += [(two, poll), (one.http, poll), (two, listing)]
    codes = [session.get(url, headers=headers).status_code for session, url in order]
    assert codes == [200] * 4 + [429] * 3
    missing = one.http.get(one.url("/v1/jobs/job_nope"), headers=headers)
    assert missing.status_code == 429  # denied before anything is read: not a 404


def test_a_poll_shows_every_change_to_its_job_at_once(make_api: Any) -> None:
    api = make_api()
    headers = _headers(api.raw_key())
    store = JobStore(api.redis)
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    url = api.url(f"/v1/jobs/{job.id}")

    def poll() -> dict[str, Any]:
        answer = api.http.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    assert poll()["status"] == "queued" and poll()["name"] is None
    assert api.http.patch(url, json={"name": "first"}, headers=headers).status_code == 200
    assert poll()["name"] == "first"
    claimed = store.claim(job.id, "w1", 30)
    assert claimed is not None and claimed.fence is not None
    assert poll()["status"] == "running"
    store.set_progress(job.id, claimed.fence, Progress(step=3, total=10))
    assert poll()["progress"]["step"] == 3
    out = OutputRef(name="a.png", key="owners/alice/a.png", content_type="image/png", size_bytes=1)
    store.finish(job.id, JobStatus.SUCCEEDED, outputs=[out], fence=claimed.fence)
    done = poll()
    assert done["status"] == "succeeded" and [o["name"] for o in done["outputs"]] == ["a.png"]
    assert done["outputs"][0]["url"] == "http://atelier.test/v1/files/owners/alice/a.png"
    # Another host name for the API: the URLs follow it, not the kept body.
    other_host = api.app.test_client().get(
        f"/v1/jobs/{job.id}", headers={**headers, "Host": "other.test"}
    )
    assert other_host.json is not None
    assert other_host.json["outputs"][0]["url"].startswith("http://other.test/v1/files/")
    # Another owner never sees a kept body; a deleted job is gone at once.
    assert api.http.get(url, headers=_headers(api.raw_key("bob"))).status_code == 404
    assert api.http.delete(url, headers=headers).status_code == 204
    assert api.http.get(url, headers=headers).status_code == 404


def test_kept_bodies_are_exact_expire_and_are_bounded(make_api: Any, tmp_path: Any) -> None:
    api = make_api()
    store = JobStore(api.redis)
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    links = Links(LocalObjectStore(tmp_path), "http://x/v1/files/")
    bodies = JobBodies(max_age=0.3)
    first = bodies.show(job.id, store.get_hash(job.id), links)
    assert bodies.show(job.id, store.get_hash(job.id), links) is first  # reused
    assert (
        bodies.show(job.id, store.get_hash(job.id), Links(links.objects, "http://y/")) is not first
    )
    kept = bodies.show(job.id, store.get_hash(job.id), links)
    time.sleep(0.35)
    assert bodies.show(job.id, store.get_hash(job.id), links) is not kept  # expired
    tiny = JobBodies(max_age=60, max_bytes=64)  # the record alone is larger
    assert tiny.show(job.id, store.get_hash(job.id), links) is not tiny.show(
        job.id, store.get_hash(job.id), links
    )


def test_kept_bodies_live_a_tenth_of_a_presigned_url_at_most(make_api: Any) -> None:
    api: InProcessApi = make_api()
    assert _body_max_age(api.settings) == BODY_MAX_AGE_SECONDS
    s3 = api.settings.model_copy(update={"storage": "s3", "s3_presign_expires_seconds": 20})
    assert _body_max_age(s3) == 2.0


def test_a_revoked_key_stops_working_everywhere_within_the_cache_bound(make_api: Any) -> None:
    one = make_api(auth_cache_seconds=0.5)
    two = session_for(create_app(one.settings), one.settings.api_url)
    key = ApiKeyStore(one.redis).create("alice", "poller", scopes=["read"])
    admin = ApiKeyStore(one.redis).create("alice", "boss", scopes=["admin"])
    job = JobStore(one.redis).create("alice", JobType.TRAIN, "dcgan", {})
    poll = one.url(f"/v1/jobs/{job.id}")
    assert one.http.get(poll, headers=_headers(key)).status_code == 200  # process one keeps it
    key_id = hash_key(key)[:ID_CHARS]
    assert two.delete(one.url(f"/v1/keys/{key_id}"), headers=_headers(admin)).status_code == 204
    assert two.get(poll, headers=_headers(key)).status_code == 401  # the revoking process: at once
    revoked_at = time.monotonic()
    while one.http.get(poll, headers=_headers(key)).status_code == 200:
        assert time.monotonic() - revoked_at < 0.5 + 0.2, "still accepted past the cache bound"
        time.sleep(0.05)
    assert one.http.get(poll, headers=_headers(key)).status_code == 401
