"""A status poll's CPU in one process: the API's WSGI app called in one thread (no
gunicorn, no HTTP), against the polling benchmark's minimal route, thread CPU per request
(``time.thread_time``), median of blocks. What the poll itself costs, apart from what both
sides pay under gunicorn (bench/results/spread-2026-12-06.md):

    python -m bench.polling_inproc [--blocks 5] [--per-block 1000]
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import redis

from atelier.shared.auth import ApiKeyStore
from atelier.shared.jobs import Job, JobStatus, JobStore, JobType, OutputRef
from bench.capacity import settings_for
from bench.common import redis_server

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def environ(path: str, key: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "localhost", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "HTTP_HOST": "localhost:8000", "HTTP_AUTHORIZATION": f"Bearer {key}",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_ACCEPT": "*/*",
    }  # fmt: skip


def call(app: App, env: dict[str, Any]) -> tuple[str, bytes]:
    status: list[str] = []
    fresh = dict(env, **{"wsgi.input": io.BytesIO(b"")})
    body = b"".join(app(fresh, lambda answered, headers: status.append(answered)))
    return status[0], body


def cpu_per_request(app: App, env: dict[str, Any], blocks: int, per_block: int) -> list[float]:
    """µs of this thread's CPU per request, one figure a block."""
    for _ in range(300):
        call(app, env)
    found = []
    for _ in range(blocks):
        started = time.thread_time()
        for _ in range(per_block):
            call(app, env)
        found.append((time.thread_time() - started) / per_block * 1e6)
    return found


def jobs_to_poll(client: redis.Redis, settings: Any) -> dict[str, Job]:
    """A queued training job and a finished one with outputs, model and metrics."""
    jobs = JobStore(client)
    queued = jobs.create("alice", JobType.TRAIN, "dcgan", {"dataset": "digits", "steps": 100})
    done = jobs.create("alice", JobType.TRAIN, "dcgan", {"dataset": "digits", "steps": 100})
    claimed = jobs.claim_next(JobType.TRAIN, "bench", 30, settings)
    if claimed is None or claimed.id != done.id:
        claimed = jobs.claim_next(JobType.TRAIN, "bench", 30, settings)
    assert claimed is not None and claimed.id == done.id
    outputs = [
        OutputRef(name=f"s{i}.png", key=f"owners/alice/jobs/{done.id}/s{i}.png",
                  content_type="image/png", size_bytes=1000)
        for i in range(2)
    ]  # fmt: skip
    metrics = {"g_loss": 1.2, "d_loss": 0.7, "val_loss": 0.3}
    finished = jobs.finish(
        done.id, JobStatus.SUCCEEDED, fence=claimed.fence, outputs=outputs,
        model_id="model_x", metrics=metrics,
    )  # fmt: skip
    assert finished is not None
    return {"queued": queued, "finished": finished}


def main() -> None:
    from atelier.api.app import create_app

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--per-block", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as raw, redis_server(Path(raw)) as url:
        settings = settings_for(url, Path(raw))
        client = redis.Redis.from_url(url)
        key = ApiKeyStore(client).create("alice")
        app: App = create_app(settings)
        documents = Path(raw) / "status"
        documents.mkdir()
        polled = jobs_to_poll(client, settings)
        for job in polled.values():
            status, body = call(app, environ(f"/v1/jobs/{job.id}", key))
            assert status.startswith("200"), status
            (documents / f"{job.id}.json").write_bytes(body)
        os.environ["BENCH_STATUS_DIR"] = str(documents)
        minimal: App = importlib.import_module("bench.minimal_app").app
        for label, job in polled.items():
            env = environ(f"/v1/jobs/{job.id}", key)
            ours = cpu_per_request(app, env, args.blocks, args.per_block)
            theirs = cpu_per_request(minimal, env, args.blocks, args.per_block)
            print(
                f"{label} job: {statistics.median(ours):.0f} µs a poll against "
                f"{statistics.median(theirs):.0f} µs for the minimal route "
                f"(blocks {[round(b) for b in ours]} / {[round(b) for b in theirs]})"
            )


if __name__ == "__main__":
    main()
