"""The real API under gunicorn (two worker processes): a HEAD on an event stream takes no
slot, a stream ends when its key is revoked or its session ends, and /metrics can have a
listener of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
import requests

from atelier.api.dashboard.sessions import COOKIE_NAME, SessionStore
from atelier.cli.processes import free_port
from atelier.cli.stack import EmbeddedStack
from atelier.shared.auth import ID_CHARS, ApiKeyStore, hash_key
from atelier.shared.settings import Settings
from tests.conftest import flush_db

pytestmark = pytest.mark.slow  # starts gunicorn

HEARTBEAT = 1.0
PER_OWNER = 2


@pytest.fixture(scope="module")
def api(redis_base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    url = f"{redis_base_url}/7"
    flush_db(url)
    base = Settings.from_env(
        {},
        data_dir=tmp_path_factory.mktemp("streams") / "data",
        event_heartbeat_seconds=HEARTBEAT,
        api_long_requests_per_owner=PER_OWNER,
        auth_cache_seconds=0.5,
    )
    stack = EmbeddedStack(base, port=free_port(), external_redis_url=url, worker_roles=())
    settings = stack.start()
    try:
        yield settings
    finally:
        stack.stop()


def _keys(settings: Settings) -> ApiKeyStore:
    return ApiKeyStore(redis.Redis.from_url(settings.redis_url))


def test_heads_on_a_stream_leave_every_slot_free(api: Settings) -> None:
    """Before the fix each HEAD kept a slot: after 2 x PER_OWNER of them the owner's
    streams were 429 in both processes until restart."""
    key = _keys(api).create("hana")
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(10 * PER_OWNER):
        head = requests.head(f"{api.api_url}/v1/events", headers=headers, timeout=10)
        assert head.status_code == 200
        assert head.headers["Content-Type"].startswith("text/event-stream")
    for _ in range(3):  # whichever process answers
        with requests.get(
            f"{api.api_url}/v1/events", headers=headers, stream=True, timeout=10
        ) as stream:
            assert stream.status_code == 200, stream.text
        # A closed stream's slot is given back when the server next writes to it.
        time.sleep(2 * HEARTBEAT)


def _ended_within(response: requests.Response, seconds: float) -> float:
    """Read the stream to its end on a thread; the seconds it took, or inf."""
    ended = threading.Event()

    def drain() -> None:
        try:
            for _ in response.iter_lines():
                pass
        except (requests.RequestException, OSError, AttributeError):
            pass  # closed by the test (urllib3 then has no socket to read: AttributeError)
        ended.set()

    started = time.monotonic()
    threading.Thread(target=drain, daemon=True).start()
    return time.monotonic() - started if ended.wait(seconds) else float("inf")


def test_a_revoked_keys_stream_ends_within_a_heartbeat(api: Settings) -> None:
    store = _keys(api)
    key = store.create("ivo")
    stream = requests.get(
        f"{api.api_url}/v1/events",
        headers={"Authorization": f"Bearer {key}"},
        stream=True,
        timeout=30,
    )
    assert stream.status_code == 200
    time.sleep(HEARTBEAT * 1.5)
    assert store.revoke("ivo", hash_key(key)[:ID_CHARS]) is not None
    took = _ended_within(stream, 4 * HEARTBEAT + 1)
    assert took <= 4 * HEARTBEAT + 1, "the stream outlived its key"


def test_a_signed_out_sessions_stream_ends_and_a_live_one_does_not(api: Settings) -> None:
    key = _keys(api).create("jun")
    sessions = SessionStore(redis.Redis.from_url(api.redis_url), 600)
    ended_id, _ = sessions.create(key)
    kept_id, _ = sessions.create(key)
    url = f"{api.api_url}/v1/events"
    ending = requests.get(url, cookies={COOKIE_NAME: ended_id}, stream=True, timeout=30)
    kept = requests.get(url, cookies={COOKIE_NAME: kept_id}, stream=True, timeout=30)
    assert ending.status_code == kept.status_code == 200
    sessions.delete(ended_id)
    assert _ended_within(ending, 4 * HEARTBEAT + 1) <= 4 * HEARTBEAT + 1
    assert _ended_within(kept, 3 * HEARTBEAT) == float("inf"), "a live session's stream ended"
    kept.close()


def test_metrics_on_a_listener_of_their_own(
    redis_base_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """ATELIER_API_METRICS_BIND under gunicorn: /metrics only there, and only /metrics."""
    metrics_port = free_port()
    url = f"{redis_base_url}/8"
    base = Settings.from_env(
        {},
        data_dir=tmp_path_factory.mktemp("metrics") / "data",
        api_metrics_bind=f"127.0.0.1:{metrics_port}",
    )
    stack = EmbeddedStack(base, port=free_port(), external_redis_url=url, worker_roles=())
    settings = stack.start()
    try:
        scrape = f"http://127.0.0.1:{metrics_port}"
        assert requests.get(f"{settings.api_url}/metrics", timeout=10).status_code == 404
        assert requests.get(f"{settings.api_url}/healthz", timeout=10).status_code == 200
        answer = requests.get(f"{scrape}/metrics", timeout=10)
        assert answer.status_code == 200 and "atelier_http_requests_total" in answer.text
        for path in ("/healthz", "/v1/jobs", "/sign-in"):
            assert requests.get(scrape + path, timeout=10).status_code == 404, path
    finally:
        stack.stop()
