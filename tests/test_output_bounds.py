"""What one job may make the system hold (issue 12, point 4): the record lists at most
``max_listed_samples`` samples while all stay in storage, listed by a paginated route; a
model lists as many, spread over its training; background uploads are a bounded queue.

Fast tier: the app in this process, a real Redis and the local object store, a real
``JobContext`` on a claimed job; no worker, no TensorFlow (but for the test of
``spread``, slow: its module imports Keras)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from atelier.shared.datasets import DatasetStore
from atelier.shared.job_logs import JobLogs
from atelier.shared.jobs import JobStore, JobType, OutputRef
from atelier.shared.storage import make_object_store
from atelier.workers.context import JobContext
from atelier.workers.uploads import Uploader
from tests.conftest import InProcessApi

CAP = 5
SAMPLES = 12


def running_context(app: InProcessApi, owner: str) -> JobContext:
    """A claimed training job's context, as a worker has it."""
    settings = app.settings.replace(max_listed_samples=CAP)
    store = JobStore(app.redis)
    job = store.create(owner, JobType.TRAIN, "dcgan", {"dataset": "digits", "steps": 12})
    claimed = store.claim(job.id, "test-worker", 30)
    assert claimed is not None
    objects = make_object_store(settings)
    return JobContext(
        claimed,
        settings,
        store,
        objects,
        JobLogs(app.redis, 100),
        None,
        datasets=DatasetStore(app.redis),
    )


def store_sample(ctx: JobContext, step: int) -> OutputRef:
    key = ctx.sample_key(step, "txt")
    size = ctx.objects.put_bytes(key, f"sample {step}".encode(), "text/plain")
    ref = OutputRef(
        name=f"samples/step-{step:07d}.txt", key=key, content_type="text/plain", size_bytes=size
    )
    ctx.add_output(ref)
    return ref


def test_the_record_lists_at_most_the_cap_and_the_route_lists_all(
    inprocess_api: InProcessApi,
) -> None:
    ctx = running_context(inprocess_api, "nina")
    for step in range(1, SAMPLES + 1):
        store_sample(ctx, step)
    record = ctx.jobs.get(ctx.job.id)
    assert record is not None
    assert [o.name for o in record.outputs] == [
        f"samples/step-{s:07d}.txt" for s in range(1, CAP + 1)
    ]
    assert len(ctx.unlisted_samples) == SAMPLES - CAP

    pages = list_all(inprocess_api, "nina", ctx.job.id, limit=5)
    assert [len(p["data"]) for p in pages] == [5, 5, 2]
    steps = [s["step"] for page in pages for s in page["data"]]
    assert steps == list(range(1, SAMPLES + 1))
    first = pages[0]["data"][0]
    assert first["size_bytes"] == len(b"sample 1") and first["content_type"] == "text/plain"
    assert pages[-1]["data"][-1]["size_bytes"] is None  # past the cap: known to storage only
    client = inprocess_api.http
    body = client.get(first["url"], headers=auth(inprocess_api, "nina"), timeout=10)
    assert body.content == b"sample 1"


def test_another_owner_cannot_list_the_samples(inprocess_api: InProcessApi) -> None:
    ctx = running_context(inprocess_api, "nina")
    store_sample(ctx, 1)
    url = inprocess_api.url(f"/v1/jobs/{ctx.job.id}/samples")
    response = inprocess_api.http.get(url, headers=auth(inprocess_api, "omar"), timeout=10)
    assert response.status_code == 404


def auth(app: InProcessApi, owner: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.raw_key(owner)}"}


def list_all(app: InProcessApi, owner: str, job_id: str, limit: int) -> list[dict[str, Any]]:
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = app.http.get(
            app.url(f"/v1/jobs/{job_id}/samples"),
            params=params,
            headers=auth(app, owner),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages


@pytest.mark.parametrize(
    ("n", "most", "expected"),
    [(3, 5, [0, 1, 2]), (10, 4, [0, 3, 6, 9]), (1000, 2, [0, 999]), (5, 1, [4])],
)
@pytest.mark.slow  # workers.training, where spread lives, imports Keras
def test_a_model_lists_samples_spread_over_training(n: int, most: int, expected: list[int]) -> None:
    from atelier.workers.training import spread

    assert spread(list(range(n)), most) == expected


class SlowStore:
    """An object store whose writes wait for the test's go-ahead."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.stored: list[str] = []

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        self.go.wait(10)
        self.stored.append(key)
        return len(data)


def test_uploads_are_a_bounded_queue_training_waits() -> None:
    """With 3 MiB allowed, a fourth 1 MiB upload waits until storage takes one."""
    store = SlowStore()
    pool = ThreadPoolExecutor(8)
    uploader = Uploader(store, 8, 5.0, pool=pool, queue_bytes=3 << 20)  # type: ignore[arg-type]
    chunk = b"x" * (1 << 20)
    for i in range(3):
        uploader.put_best_effort(f"c{i}", f"k{i}", chunk, "application/zip")
    assert uploader.pending_bytes == 3 << 20
    fourth = threading.Thread(target=uploader.put, args=("c3", "k3", chunk, "application/zip"))
    fourth.start()
    time.sleep(0.3)
    assert fourth.is_alive() and uploader.pending_bytes == 3 << 20  # training is held here
    store.go.set()
    fourth.join(5)
    assert not fourth.is_alive()
    assert len(uploader.wait()) == 4 and uploader.pending_bytes == 0
    # One object larger than the bound is sent alone rather than never.
    uploader.put("big", "kbig", chunk * 4, "application/zip")
    assert len(uploader.wait()) == 1 and uploader.pending_bytes == 0
    pool.shutdown()
