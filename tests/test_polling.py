"""Status polls (issue 26, point 1): most polls send Redis nothing (a kept body,
``api.job_cache``, and a leased read, ``shared.rate_leases``), the others one command; a
small read budget stays exact across processes; a change shows on the next poll of the
process that made it and once its wake-up arrives on the others; kept bodies live a tenth
of a presigned URL's life at most; a revoked key stops working within the key cache's bound.

Fast tier: the app in this process against the real redis-server; two apps on one Redis
stand for two API processes. ``tests/test_poll_cache.py`` tests the pieces."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
import requests

from atelier.api.app import create_app
from atelier.api.services import Services, poll_cache_seconds
from atelier.shared.auth import ID_CHARS, ApiKeyStore, hash_key
from atelier.shared.jobs import JobStatus, JobStore, JobType, LabelChange, OutputRef, Progress
from tests.conftest import InProcessApi, wait_for
from tests.flask_transport import session_for

FILES = "http://atelier.test/v1/files/"


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


def _live(api: InProcessApi) -> None:
    """The app's event subscription confirmed: from then on its polls may keep bodies."""
    services: Services = api.app.extensions["atelier"]
    wait_for(services.hub.live, 5, "the API's event subscription")


def test_most_polls_send_redis_nothing_and_the_others_one_command(make_api: Any) -> None:
    api = make_api(reads_per_minute=6, reads_burst=100)  # leases of 10; no refill here
    services: Services = api.app.extensions["atelier"]
    key = api.raw_key()
    store = JobStore(api.redis)
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    url = api.url(f"/v1/jobs/{job.id}")
    answers: list[requests.Response] = []

    def poll() -> None:
        answers.append(api.http.get(url, headers=_headers(key)))

    def changed(name: str) -> None:
        store.relabel(job.id, LabelChange(frozenset({"name"}), name, None, None))
        wait_for(lambda: services.job_bodies.kept(job.id, FILES) is None, 5, "the wake-up")

    wait_for(services.hub.live, 5, "the API's event subscription")
    poll()  # caches the key, takes a lease of 10 and reads the job, keeps its body
    assert _sent_commands(api.admin, poll) == []
    assert answers[-1].status_code == 200 and answers[-1].json()["id"] == job.id
    assert answers[-1].headers["RateLimit"].startswith('"reads";r=98;')
    changed("renamed")  # the lease still has reads: the job alone is read
    assert _sent_commands(api.admin, poll) == ["HGETALL"]
    assert answers[-1].json()["name"] == "renamed"
    for _ in range(7):  # the lease's last reads
        poll()
    changed("again")  # a new lease and the job in one script
    assert _sent_commands(api.admin, poll) == ["EVALSHA"]
    assert answers[-1].json()["name"] == "again"
    assert answers[-1].headers["RateLimit"].startswith('"reads";r=89;')  # 11 polls


def test_leased_reads_of_two_processes_stay_within_the_stated_bound(make_api: Any) -> None:
    """docs/api.md: never more than the budget; one process may be refused while another
    holds up to N - 1 of the owner's reads (N = 4 here: a tenth of the burst)."""
    one = make_api(reads_per_minute=6, reads_burst=40)  # a read every 10 s: no refill here
    two = session_for(create_app(one.settings), one.settings.api_url)
    headers = _headers(one.raw_key())
    job = JobStore(one.redis).create("alice", JobType.TRAIN, "dcgan", {})
    poll, listing = one.url(f"/v1/jobs/{job.id}"), one.url("/v1/jobs")
    assert two.get(poll, headers=headers).status_code == 200  # takes 4, holds 3
    served_one = 0
    while one.http.get(listing if served_one % 2 else poll, headers=headers).status_code == 200:
        served_one += 1
    served_two = 1
    while two.get(poll, headers=headers).status_code == 200:
        served_two += 1
    assert (served_one, served_two) == (36, 4)  # 40 together: the budget, not one more


def test_a_small_read_budget_is_exact_across_processes(make_api: Any) -> None:
    """A burst under 20 leases one read at a time: every read asks Redis."""
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


def test_a_poll_shows_a_change_once_its_wake_up_arrives(make_api: Any) -> None:
    """Kept for a minute here: only the wake-up can show another writer's change in time
    (a worker's claim, progress, finish); this process's own writes show on its next poll."""
    api = make_api(poll_cache_seconds=60)
    headers = _headers(api.raw_key())
    store = JobStore(api.redis)
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    url = api.url(f"/v1/jobs/{job.id}")

    def poll() -> dict[str, Any]:
        answer = api.http.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def shown(check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        wait_for(lambda: check(poll()), 5, what)
        return poll()

    wait_for(api.app.extensions["atelier"].hub.live, 5, "the API's event subscription")
    assert poll()["status"] == "queued" and poll()["name"] is None
    assert api.http.patch(url, json={"name": "first"}, headers=headers).status_code == 200
    assert poll()["name"] == "first"  # at once: this process made the change
    claimed = store.claim(job.id, "w1", 30)
    assert claimed is not None and claimed.fence is not None
    shown(lambda body: body["status"] == "running", "the claim")
    store.set_progress(job.id, claimed.fence, Progress(step=3, total=10))
    shown(lambda body: body["progress"]["step"] == 3, "the progress")
    out = OutputRef(name="a.png", key="owners/alice/a.png", content_type="image/png", size_bytes=1)
    store.finish(job.id, JobStatus.SUCCEEDED, outputs=[out], fence=claimed.fence)
    done = shown(lambda body: body["status"] == "succeeded", "the finish")
    assert [o["name"] for o in done["outputs"]] == ["a.png"]
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


def test_a_kept_body_is_never_older_than_the_cache_bound(make_api: Any) -> None:
    """Whatever happens to the wake-ups: here none comes (dropped by hand), and the change
    still shows once the kept body is ``poll_cache_seconds`` old."""
    api = make_api(poll_cache_seconds=0.5)
    services: Services = api.app.extensions["atelier"]
    headers = _headers(api.raw_key())
    store = JobStore(api.redis)
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    url = api.url(f"/v1/jobs/{job.id}")
    wait_for(services.hub.live, 5, "the API's event subscription")
    assert api.http.get(url, headers=headers).json()["status"] == "queued"
    services.hub.listen_for_changes(_Deaf())
    store.claim(job.id, "w1", 30)
    changed_at = time.monotonic()  # the kept body was made before: it is older than this
    while True:
        began = time.monotonic()  # a slow poll on a loaded machine is not a stale one
        if api.http.get(url, headers=headers).json()["status"] != "queued":
            break
        assert began - changed_at < 0.5 + 0.05, "shown past the cache bound"
        time.sleep(0.05)


class _Deaf:
    def changed(self, job_id: str) -> None:
        pass

    def flush(self) -> None:
        pass


def test_kept_bodies_live_a_tenth_of_a_presigned_url_at_most(make_api: Any) -> None:
    api: InProcessApi = make_api()
    assert poll_cache_seconds(api.settings) == api.settings.poll_cache_seconds == 1.0
    s3 = api.settings.model_copy(update={"storage": "s3", "s3_presign_expires_seconds": 5})
    assert poll_cache_seconds(s3) == 0.5


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
