"""Push, end to end: a real training job followed over its event stream through gunicorn
and a real Celery worker, its metric history, and a `Prefer: wait` generation that comes
back finished in one request."""

from __future__ import annotations

import time

import pytest

from atelier.client import Event
from tests.conftest import TINY_TRAIN, RunningStack

pytestmark = pytest.mark.slow


def test_a_training_job_is_seen_live_over_its_event_stream(local_stack: RunningStack) -> None:
    client = local_stack.client("pusher")
    params = {**TINY_TRAIN, "steps": 60, "sample_every": 20, "dataset": "digits"}
    job = client.submit("train", "dcgan", params)
    seen: list[tuple[float, Event]] = []
    for event in client.events(job["id"]):  # ends after the job's `end` event
        seen.append((time.time(), event))
    kinds = [event["event"] for _, event in seen]
    statuses = [e["data"]["status"] for _, e in seen if e["event"] == "status"]
    assert statuses == ["queued", "running", "succeeded"], statuses
    assert kinds[-1] == "end"
    progress = [e["data"] for _, e in seen if e["event"] == "progress"]
    assert len(progress) >= 2
    assert [p["step"] for p in progress] == sorted(p["step"] for p in progress)
    assert progress[-1]["step"] == 60
    samples = [e["data"] for _, e in seen if e["event"] == "output"]
    assert any(s["content_type"] == "image/png" for s in samples)
    assert all(s["url"] for s in samples)
    assert any(e["event"] == "log" for _, e in seen)
    # Delivered as they happened: each progress event reached us well within a second.
    lags = [arrived - e["data"]["updated_at"] for arrived, e in seen if e["event"] == "progress"]
    assert max(lags) < 1.0, lags
    # The same stream, resumed after its third event, gives exactly the rest.
    resumed = list(client.events(job["id"], last_event_id=seen[2][1]["id"]))
    assert [e["id"] for e in resumed] == [e["id"] for _, e in seen[3:]]

    curves = client.metrics(job["id"])["series"]
    steps = [point["step"] for point in curves["train"]]
    assert steps and steps == sorted(steps) and steps[-1] == 60
    losses = {name for name in progress[-1]["metrics"] if not name.startswith("val_")}
    assert losses and set(curves["train"][-1]["metrics"]) == losses, curves["train"][-1]


def test_prefer_wait_returns_a_warm_16_image_generation_in_one_request(
    local_stack: RunningStack,
) -> None:
    client = local_stack.client("waiter")
    trained = client.submit("train", "dcgan", {**TINY_TRAIN, "dataset": "digits"}, wait=60)
    assert trained["status"] == "succeeded", trained
    params = {"model_id": trained["model_id"], "n": 16, "seed": 1}
    client.submit("generate", "dcgan", params, wait=60)  # loads the model: warm from here
    started = time.monotonic()
    answer = client.http.post(
        f"{client.api_url}/v1/jobs",
        json={"type": "generate", "kind": "dcgan", "params": {**params, "seed": 2}},
        headers={"Prefer": "wait=30"},
        timeout=60,
    )
    took = time.monotonic() - started
    body = answer.json()
    assert answer.status_code == 201, body
    assert answer.headers["Preference-Applied"] == "wait=30"
    assert body["status"] == "succeeded"
    assert len([o for o in body["outputs"] if o["name"].endswith(".png")]) >= 16
    assert took < 10, took
