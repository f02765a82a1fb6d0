"""The client for multi-day jobs (atelier.following, atelier.downloads): ``wait()`` follows
the job's events (or long-polls, without ``on_update``) through API restarts, downloads
resume, and the client finds its API and key in the environment."""

from __future__ import annotations

import http.server
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import redis
import requests

from atelier.client import Client, epoch_seconds
from atelier.client_types import Event, Job
from atelier.following import (
    FIRST_BACKOFF_SECONDS,
    MAX_BACKOFF_SECONDS,
    Backoff,
    apply_event,
    follow,
)
from atelier.shared.jobs import JobStatus, JobStore, Progress
from tests.conftest import TINY_TRAIN, wait_for
from tests.test_supervision import kill_and_wait_restart, own_stack, ready, supervised


def test_wait_rides_out_two_api_restarts_on_a_running_job(tmp_path: Path) -> None:
    """A job runs (claimed as a worker would) while ``wait()`` follows it; the API is
    killed with -9 and restarted twice, progress is written between; ``wait()`` returns
    the finished job and saw the progress written while the API was away."""
    stack = own_stack(tmp_path / "data", event_heartbeat_seconds=1.0)
    assert stack.settings is not None
    try:
        client = Client(stack.settings.api_url, stack.api_key, timeout=10)
        job_id = client.submit("train", "dcgan", TINY_TRAIN)["id"]  # no worker runs it
        requests_made: list[str] = []
        client.http.hooks["response"].append(lambda r, **_: requests_made.append(r.url))
        jobs = JobStore(redis.Redis.from_url(stack.settings.redis_url))
        claimed = jobs.claim(job_id, "worker-test", 600)
        assert claimed is not None and claimed.fence is not None
        updates: list[Job] = []
        ended: dict[str, Any] = {}

        def follow() -> None:
            ended["job"] = client.wait(job_id, on_update=updates.append, timeout=120)

        follower = threading.Thread(target=follow, daemon=True)
        began = time.monotonic()
        follower.start()
        wait_for(lambda: any(u["status"] == "running" for u in updates), 20, "running seen")
        with supervised(stack) as watch:
            for step in (3, 6):
                kill_and_wait_restart(stack, "api")
                # Written while the API may still be starting: the stream resumes after it.
                assert jobs.set_progress(job_id, claimed.fence, Progress(step=step, total=10))
                wait_for(lambda: ready(stack), 30, "the API ready again")
        assert watch.errors == []
        wait_for(lambda: any(u["progress"]["step"] == 6 for u in updates), 30, "step 6 seen")
        assert jobs.finish(job_id, JobStatus.SUCCEEDED, fence=claimed.fence) is not None
        follower.join(60)
        took = time.monotonic() - began
        assert ended["job"]["status"] == "succeeded" and ended["job"]["finished_at"]
        # It followed the stream: a reconnect per restart, fewer requests than the old
        # poll every half second made in the same time.
        assert len(requests_made) <= 8 and len(requests_made) < took / 0.5, requests_made
        print(f"wait: {took:.1f} s through two API restarts, {len(requests_made)} requests")
        steps = [u["progress"]["step"] for u in updates]
        assert 3 in steps and steps.index(3) < steps.index(6)  # both, in order, none lost
    finally:
        stack.stop()


def test_wait_without_updates_long_polls_through_two_api_restarts(tmp_path: Path) -> None:
    """Without ``on_update``, ``wait()`` long-polls (``Prefer: wait``): the API is killed
    with -9 and restarted twice while the job runs; ``wait()`` returns the finished job,
    in the request that saw it finish, having asked a handful of times, not once a poll."""
    stack = own_stack(tmp_path / "data")
    assert stack.settings is not None
    api_url = stack.settings.api_url
    try:
        client = Client(api_url, stack.api_key, timeout=10)
        job_id = client.submit("train", "dcgan", TINY_TRAIN)["id"]  # no worker runs it
        asked: list[str | None] = []  # each request's Prefer header, as it is sent
        send = client.http.send

        def sending(request: requests.PreparedRequest, **options: Any) -> requests.Response:
            asked.append(request.headers.get("Prefer"))
            return send(request, **options)

        client.http.send = sending  # type: ignore[method-assign]
        jobs = JobStore(redis.Redis.from_url(stack.settings.redis_url))
        claimed = jobs.claim(job_id, "worker-test", 600)
        assert claimed is not None and claimed.fence is not None
        ended: dict[str, Any] = {}
        follower = threading.Thread(
            target=lambda: ended.update(job=client.wait(job_id, timeout=120)), daemon=True
        )
        follower.start()

        def waiting() -> bool:  # a long poll is open on the API
            metrics = requests.get(f"{api_url}/metrics", timeout=5).text
            return "atelier_api_long_requests 1.0" in metrics

        wait_for(waiting, 20, "a first long poll")
        with supervised(stack) as watch:
            for _ in range(2):
                kill_and_wait_restart(stack, "api")
                wait_for(lambda: ready(stack), 30, "the API ready again")
                wait_for(waiting, 30, "the long poll asked again")
        assert watch.errors == []
        assert follower.is_alive()  # still waiting: the job runs
        finished_at = time.monotonic()
        assert jobs.finish(job_id, JobStatus.SUCCEEDED, fence=claimed.fence) is not None
        follower.join(60)
        assert ended["job"]["status"] == "succeeded" and ended["job"]["finished_at"]
        # Answered by the wait that was open when it finished (a poll would take up to its
        # interval; a backoff after a restart at most its cap).
        assert time.monotonic() - finished_at < 5
        # Long polls only: each asked to wait, and few (a first one, one or two per restart).
        assert all(prefer and prefer.startswith("wait=") for prefer in asked), asked
        assert len(asked) <= 8, asked
        print(f"wait through two API restarts: {len(asked)} requests")
    finally:
        stack.stop()


def test_a_long_poll_answered_at_once_backs_off_and_times_out() -> None:
    """An API that does not honour ``Prefer: wait`` (it answers at once, unfinished) is not
    asked in a tight loop: the long polls back off, and the caller's timeout holds."""

    class Impatient:
        def __init__(self) -> None:
            self.asked: list[float | None] = []

        def get(self, job_id: str, *, wait: float | None = None) -> dict[str, str]:
            self.asked.append(wait)
            return {"id": job_id, "status": "running"}

    api = Impatient()
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        follow(cast(Client, api), "job_x", None, timeout=3.0)
    took = time.monotonic() - began
    assert took < 4.5  # a backoff that would pass the deadline raises at once
    assert 3 <= len(api.asked) <= 12, api.asked  # not thousands
    assert all(wait is not None and wait <= 3 for wait in api.asked)


def test_an_event_updates_the_job_it_applies_to() -> None:
    job = cast(
        Job,
        {"id": "j", "status": "queued", "progress": {"step": 0, "total": 0}, "outputs": []},
    )
    running = apply_event(job, _event("status", status="running", attempt=1))
    assert running["status"] == "running" and running["attempt"] == 1
    assert job["status"] == "queued"  # a new dict each time
    moved = apply_event(running, _event("progress", step=4, total=10, metrics={"loss": 0.5}))
    assert moved["progress"]["step"] == 4 and moved["progress"]["metrics"] == {"loss": 0.5}
    # The event's epoch seconds become the job body's ISO time (what on_update callers read).
    stamped = apply_event(moved, _event("progress", step=5, updated_at=1796512812.25))
    assert isinstance(stamped["progress"]["updated_at"], str)
    assert epoch_seconds(stamped["progress"]["updated_at"]) == 1796512812.25
    shown = apply_event(moved, _event("output", name="a.png", url="u", size_bytes=3))
    assert shown["outputs"] == [{"name": "a.png", "url": "u", "size_bytes": 3}]
    over = apply_event(shown, _event("end", status="failed", error={"type": "X", "message": "m"}))
    assert over["status"] == "failed" and over["error"] == {"type": "X", "message": "m"}
    assert apply_event(over, _event("log", line="hi")) == over


def _event(kind: str, **data: Any) -> Event:
    return {"id": "1-0", "event": kind, "data": {"job": "j", **data}}


def test_backoff_is_jittered_and_capped() -> None:
    backoff = Backoff(random.Random(1))
    waits = [backoff.next_wait() for _ in range(12)]
    assert all(FIRST_BACKOFF_SECONDS / 2 <= w <= MAX_BACKOFF_SECONDS for w in waits)
    assert len({round(w, 6) for w in waits}) == len(waits)  # not one fixed schedule
    assert max(waits[8:]) > 4 * max(waits[:2])  # it grows
    backoff.reset()
    assert backoff.next_wait() <= FIRST_BACKOFF_SECONDS


def test_the_client_reads_its_api_and_key_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ATELIER_API_URL", "http://api.example:9000/")
    monkeypatch.setenv("ATELIER_API_KEY", "atk_from_env")
    client = Client()
    assert client.api_url == "http://api.example:9000"
    assert client.http.headers["Authorization"] == "Bearer atk_from_env"
    assert Client("http://other", "atk_given").api_url == "http://other"
    monkeypatch.delenv("ATELIER_API_KEY")
    with pytest.raises(ValueError, match="ATELIER_API_KEY"):
        Client()


# --- downloads ---------------------------------------------------------------------------
BODY = bytes(range(256)) * 4096  # 1 MiB


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves BODY with Range; the first answer is cut off halfway (the connection dies)."""

    served: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        wanted = self.headers.get("Range", "")
        self.served.append(wanted)
        start = int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else 0
        rest = BODY[start:]
        self.send_response(206 if wanted else 200)
        self.send_header("Content-Length", str(len(rest)))
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        self.end_headers()
        if len(self.served) == 1:
            self.wfile.write(rest[: len(rest) // 2])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(rest)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[str]:
    _Flaky.served = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_download_cut_off_halfway_resumes_with_a_range(flaky_server: str, tmp_path: Path) -> None:
    client = Client("http://api.invalid", "atk_x", max_retry_wait=0.05)
    job = {
        "outputs": [{"name": "sub/grid.bin", "url": f"{flaky_server}/g", "size_bytes": len(BODY)}]
    }
    started = time.monotonic()
    [path] = client.download(job, tmp_path)
    assert path == (tmp_path / "sub" / "grid.bin").resolve()
    assert path.read_bytes() == BODY
    first, resumed = _Flaky.served
    assert first == "" and resumed.startswith("bytes=")
    assert 0 < int(resumed.removeprefix("bytes=").rstrip("-")) <= len(BODY) // 2
    assert not list(tmp_path.rglob("*.part"))
    assert time.monotonic() - started < 10


def test_an_output_name_cannot_leave_the_directory(tmp_path: Path) -> None:
    client = Client("http://api.invalid", "atk_x")
    job = {"outputs": [{"name": "../escape.txt", "url": "http://x.invalid/a", "size_bytes": 1}]}
    with pytest.raises(ValueError, match="outside"):
        client.download(job, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()
