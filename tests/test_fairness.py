"""Fair scheduling through the real stack: an owner who queues hundreds of jobs does not
make a newcomer wait behind them (issue 12's measure, on one generation worker)."""

from __future__ import annotations

import contextlib

import pytest

from atelier.client import ApiError
from atelier.shared.jobs import JobStore
from tests.conftest import TINY_TRAIN, RunningStack

pytestmark = pytest.mark.slow


def test_a_newcomer_starts_after_at_most_one_more_job_of_a_busy_owner(
    local_stack: RunningStack,
) -> None:
    busy, newcomer = local_stack.client("fair-busy"), local_stack.client("fair-new")
    trained = [c.submit("train", "dcgan", {**TINY_TRAIN, "steps": 10}) for c in (busy, newcomer)]
    models = []
    for client, submitted in zip((busy, newcomer), trained, strict=True):
        done = client.wait(submitted["id"], timeout=300)
        assert done["status"] == "succeeded" and done["model_id"] is not None
        models.append(done["model_id"])

    queued = [
        busy.submit("generate", "dcgan", {"model_id": models[0], "n": 1})["id"] for _ in range(300)
    ]
    late = newcomer.submit("generate", "dcgan", {"model_id": models[1], "n": 1})
    store = JobStore(local_stack.redis)
    try:
        assert newcomer.wait(late["id"], timeout=120)["status"] == "succeeded"
        mine = store.get(late["id"])
        assert mine is not None and mine.started_at is not None
        cut_in = [
            job.id
            for job in store.get_many(queued)
            if job.started_at is not None and mine.created_at < job.started_at < mine.started_at
        ]
        assert len(cut_in) <= 1, f"{len(cut_in)} of the busy owner's jobs started first"
        # Judged at the newcomer's start, not when its wait returned: a slow poll on a busy
        # machine saw the backlog drained by then (a run with two suites at once failed so).
        behind = [
            job
            for job in store.get_many(queued)
            if job.started_at is None or job.started_at > mine.started_at
        ]
        assert behind, "the busy owner's backlog was gone before the newcomer started"
    finally:
        for record in store.get_many(queued):
            if not record.status.is_terminal():
                with contextlib.suppress(ApiError):  # 409 if it finished meanwhile
                    busy.cancel(record.id)
