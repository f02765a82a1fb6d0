"""Push, end to end: a real training job followed over its event stream through gunicorn
and a real Celery worker, its metric history, and a `Prefer: wait` generation that comes
back finished in one request."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from atelier.cli.processes import ManagedProcess, api_argv, child_env, free_port, wait_until
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
    # "queued" comes first from the record when the stream opens before a worker claims it.
    assert statuses in (["queued", "running", "succeeded"], ["running", "succeeded"]), statuses
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


def test_stopping_an_api_ends_its_open_streams_at_once(
    local_stack: RunningStack, tmp_path: Path
) -> None:
    """A restart must not wait out gunicorn's graceful timeout (10 s) for streams that never
    end by themselves: SIGTERM closes them, and the client's reconnect resumes elsewhere."""
    port = free_port()
    api = ManagedProcess(
        "api-to-stop",
        api_argv(f"127.0.0.1:{port}", 1),
        child_env(local_stack.settings),
        tmp_path / "api.log",
    )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 60, "the API")
        key = local_stack.raw_key("stopper")
        streams = [
            requests.get(
                f"http://127.0.0.1:{port}/v1/events",
                headers={"Authorization": f"Bearer {key}"},
                stream=True,
                timeout=30,
            )
            for _ in range(3)
        ]
        assert all(s.status_code == 200 for s in streams)
        started = time.monotonic()
        api.stop(timeout=30)
        took = time.monotonic() - started
        assert took < 5, f"the API took {took:.1f} s to stop with streams open"
        for stream in streams:
            assert b"connected" in b"".join(stream.iter_content(None))  # ended, not cut
    finally:
        api.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False
