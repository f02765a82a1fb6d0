"""Cancel: a queued job never starts; a running job stops at a step boundary."""

from __future__ import annotations

import time

import pytest

from atelier.client import ApiError
from atelier.shared.queue import queue_length
from tests.conftest import TINY_TRAIN, RunningStack, wait_for

pytestmark = pytest.mark.slow

ENDLESS = {**TINY_TRAIN, "steps": 1_000_000, "sample_every": 100_000, "checkpoint_every": 100_000}


def test_cancel_queued_and_running_jobs(local_stack: RunningStack) -> None:
    client = local_stack.client("dave")
    queue = local_stack.settings.train_queue
    model_id = client.wait(client.submit("train", "dcgan", TINY_TRAIN)["id"])["model_id"]
    running = client.submit("train", "dcgan", ENDLESS)
    wait_for(lambda: client.get(running["id"])["progress"]["step"] > 0, 120, "training to start")

    waiting = client.submit("train", "dcgan", TINY_TRAIN)
    # The busy worker has not hoarded the second job: it is still in the queue.
    assert queue_length(local_stack.redis, queue) == 1
    assert client.get(waiting["id"])["status"] == "queued"

    # Generation never waits behind training: it has its own queue and worker. It finishes
    # while the endless training still runs (a bound in seconds failed on a busy machine
    # without saying anything about the queues).
    generated = client.wait(
        client.submit("generate", "dcgan", {"model_id": model_id, "n": 4})["id"],
        poll_seconds=0.1,
        timeout=120,
    )
    assert generated["status"] == "succeeded"
    assert client.get(running["id"])["status"] == "running"

    canceled = client.cancel(waiting["id"])
    assert canceled["status"] == "canceled" and canceled["finished_at"]

    asked = time.monotonic()
    flagged = client.cancel(running["id"])
    assert flagged["status"] == "running" and flagged["cancel_requested"]
    stopped = client.wait(running["id"], poll_seconds=0.1, timeout=30)
    took = time.monotonic() - asked
    assert stopped["status"] == "canceled"
    assert took < 5, f"running job took {took:.1f}s to stop"
    assert 0 < stopped["progress"]["step"] < ENDLESS["steps"]

    # The worker takes the canceled job's message and drops it without running it.
    wait_for(lambda: queue_length(local_stack.redis, queue) == 0, 30, "queue to drain")
    time.sleep(1.0)
    never_ran = client.get(waiting["id"])
    assert never_ran["status"] == "canceled"
    assert never_ran["started_at"] is None and never_ran["attempt"] == 0

    with pytest.raises(ApiError) as finished:
        client.cancel(running["id"])
    assert finished.value.status == 409
    assert finished.value.problem["type"] == "urn:atelier:problem:conflict"
