"""Event streams: 200 open server-sent event streams on the 2-core machine.

Measured side by side in one run, against one `atelier up` API (2 gunicorn processes):

- progress-to-client latency: 200 jobs of 10 owners, each written a progress event once a second by
  this process playing their worker (``JobStore.set_progress``, the worker's own call),
  each followed by its own ``GET /v1/jobs/{id}/events`` in a client process
  (``bench.sse_clients``); the baseline is a raw ``XREAD BLOCK`` reader of the same events
  straight from Redis (what no HTTP layer could beat);
- status polling while those 200 streams are open and busy, against the same polling with
  no stream open (the serving model must not starve ordinary requests);
- status polling on today's API against the same API started with the thread layout it had
  before event streams (``ATELIER_API_LONG_REQUESTS=0``: 4 threads a process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import Any, cast

from atelier.cli.processes import ManagedProcess, api_argv, child_env, free_port, wait_until
from atelier.shared.auth import ApiKeyStore
from atelier.shared.jobs import JobStore, JobType, Progress
from atelier.shared.redis_client import connect, redis_for
from atelier.shared.redis_keys import KEYS
from bench.common import Result, admin_url, percentile, stack
from bench.polling import _answers, _load

STREAMS = 200
OWNERS = 10
RAW_READER_STREAMS = 10


class ProgressWriter(threading.Thread):
    """Writes each job's progress once a second, spread evenly over the second."""

    def __init__(self, store: JobStore, job_ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.store, self.job_ids = store, job_ids
        self.fences = {job_id: store.fence(job_id) or "" for job_id in job_ids}
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        step = 0
        gap = 1.0 / len(self.job_ids)
        while not self.stop.is_set():
            step += 1
            for job_id in self.job_ids:
                progress = Progress(step=step, total=10**6, updated_at=time.time())
                self.store.set_progress(job_id, self.fences[job_id], progress)
                self.written += 1
                if self.stop.wait(gap):
                    return


def _raw_latencies(redis_url: str, job_ids: list[str], seconds: float) -> list[float]:
    """Arrival minus ``updated_at`` of the same progress events, read from Redis directly."""
    client = connect(redis_url)
    cursors = {KEYS.job_events(job_id): "$" for job_id in job_ids}
    found: list[float] = []
    until = time.time() + seconds
    while time.time() < until:
        answer = cast(list[Any], client.xread(cursors, block=500))  # type: ignore[arg-type]
        arrived = time.time()
        for stream, entries in answer or []:
            for entry_id, fields in entries:
                cursors[stream.decode()] = entry_id.decode()
                if fields[b"type"] == b"progress":
                    found.append(arrived - json.loads(fields[b"data"])["updated_at"])
    return found


def _running_jobs(store: JobStore, keys: ApiKeyStore) -> dict[str, str]:
    """``STREAMS`` jobs of ``OWNERS`` owners (job id -> its owner's key), claimed by this
    process, which then plays their worker. Several owners, as a studio's dashboards would
    be: one owner holds at most ``api_long_requests_per_owner`` streams per API process."""
    owner_keys = [keys.create(f"watcher-{n}", name="bench") for n in range(OWNERS)]
    jobs = {}
    for n in range(STREAMS):
        job = store.create(f"watcher-{n % OWNERS}", JobType.TRAIN, "dcgan", {})
        store.claim(job.id, "bench-worker", 3600)
        jobs[job.id] = owner_keys[n % OWNERS]
    return jobs


def event_streams(size: str) -> list[Result]:
    seconds = 16.0 if size == "quick" else 40.0
    with stack(()) as (running, _client):
        settings = running.settings
        assert settings is not None
        client = redis_for(settings)
        store = JobStore(client)
        streams = _running_jobs(store, ApiKeyStore(client))
        job_ids = list(streams)
        poll_url = f"{settings.api_url}/v1/jobs/{job_ids[0]}"
        auth = [f"Authorization: Bearer {streams[job_ids[0]]}"]
        _load(poll_url, auth, 1.0)  # warm up
        quiet_polls = _load(poll_url, auth, seconds / 4)
        writer = ProgressWriter(store, job_ids)
        writer.start()
        clients = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.sse_clients",
                settings.api_url,
                *(f"{key}:{job_id}" for job_id, key in streams.items()),
                "--seconds",
                str(seconds),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        raw: list[float] = []
        reader = threading.Thread(
            target=lambda: raw.extend(
                _raw_latencies(admin_url(running), job_ids[:RAW_READER_STREAMS], seconds - 2)
            )
        )
        reader.start()
        time.sleep(seconds / 4)  # every stream open and receiving
        busy_polls = _load(poll_url, auth, seconds / 4)
        out, _ = clients.communicate(timeout=seconds + 60)
        reader.join()
        writer.stop.set()
        writer.join()
        streamed = json.loads(out)
        layouts = _old_and_new_layout(running, poll_url, auth, seconds / 4)
    return [
        _latency_result(streamed, raw, writer.written, seconds),
        _polling_result(busy_polls, quiet_polls),
        layouts,
    ]


def _latency_result(
    streamed: dict[str, Any], raw: list[float], written: int, seconds: float
) -> Result:
    latencies = [max(0.0, x) for x in streamed["latencies"]]
    p95 = percentile(latencies, 0.95) * 1000
    raw_p95 = percentile(raw, 0.95) * 1000
    return Result(
        f"progress-to-client latency p95, {STREAMS} open event streams",
        p95,
        raw_p95,
        f"raw XREAD BLOCK from Redis, {RAW_READER_STREAMS} of the streams",
        "ms",
        p95 / raw_p95,
        "p95 < 1000 ms",
        p95 < 1000 and streamed["errors"] == 0 and streamed["connected"] == STREAMS,
        f"{streamed['connected']} streams answered 200, {streamed['errors']} closed or refused; "
        f"{len(latencies)} progress events received of {written} written in {seconds:.0f} s; "
        f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 "
        f"{percentile(latencies, 0.99) * 1000:.1f} ms",
    )


def _polling_result(busy: dict[str, float], quiet: dict[str, float]) -> Result:
    ratio = busy["requests_per_second"] / quiet["requests_per_second"]
    return Result(
        f"status polling with {STREAMS} busy event streams open",
        busy["requests_per_second"],
        quiet["requests_per_second"],
        "the same polling, no stream open",
        "req/s",
        ratio,
        ">= 0.9",
        ratio >= 0.9 and busy["errors"] == 0,
        f"p99 {busy['p99_ms']:.1f} ms against {quiet['p99_ms']:.1f} ms; the streams receive "
        f"{STREAMS} progress events a second meanwhile",
    )


def _old_and_new_layout(running: Any, url: str, auth: list[str], seconds: float) -> Result:
    """Polling the stack's API against a second API on the same Redis with 4 threads a
    process, as before long requests had threads of their own; interleaved runs."""
    port = free_port()
    old = ManagedProcess(
        "api-4-threads",
        api_argv(f"127.0.0.1:{port}", running.api_workers),
        child_env(running.settings, {"ATELIER_API_LONG_REQUESTS": "0"}),
        running.data_dir / "logs" / "api-4-threads.log",
    )
    old_url = url.replace(running.settings.api_url, f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 60, "the second API")
        _load(old_url, auth, 1.0)
        new_runs, old_runs = [], []
        for _ in range(2):
            new_runs.append(_load(url, auth, seconds))
            old_runs.append(_load(old_url, auth, seconds))
    finally:
        old.stop()
    new = max(new_runs, key=lambda r: r["requests_per_second"])
    before = max(old_runs, key=lambda r: r["requests_per_second"])
    ratio = new["requests_per_second"] / before["requests_per_second"]
    return Result(
        "status polling, API with long-request threads",
        new["requests_per_second"],
        before["requests_per_second"],
        "the same API with 4 threads a process (the layout before event streams)",
        "req/s",
        ratio,
        ">= 0.9",
        ratio >= 0.9,
        f"p99 {new['p99_ms']:.1f} ms against {before['p99_ms']:.1f} ms; best of 2 interleaved "
        f"runs of {seconds:.0f} s",
    )
