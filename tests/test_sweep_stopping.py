"""Early stopping of a sweep's losing trials (issue 25, point 6, optional): the median rule
on curves written as a worker writes them, through the reaper's check; a trial is stopped
only past ``min_fraction`` of its steps and with ``min_trials`` others to compare, larger-
is-better metrics are compared the other way, and one reaper checks at a time.

Fast tier: the app in this process, a real Redis, no worker; the test plays the worker's
part through the job store."""

from __future__ import annotations

import time

from atelier.shared.job_compare import Run
from atelier.shared.jobs import Job, JobStatus, JobStore, JobType, Progress
from atelier.shared.settings import Settings
from atelier.shared.sweep_stopping import EarlyStopping, TrialStopper, losers
from atelier.workers.reaper import reap_once
from tests.conftest import TINY_TRAIN, InProcessApi

RULE = {"metric": "val_loss", "min_fraction": 0.5, "min_trials": 2}


def report(store: JobStore, job_id: str, fence: str, losses: dict[int, float]) -> None:
    """Progress as a worker reports it: ``val_loss`` at each step, of 100 steps."""
    for step, loss in losses.items():
        progress = Progress(
            step=step, total=100, metrics={"val_loss": loss}, updated_at=time.time()
        )
        assert store.set_progress(job_id, fence, progress)


def test_the_reaper_stops_a_clearly_losing_trial(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    sweep = client.sweep(
        "train", "dcgan", TINY_TRAIN, grid={"latent_dim": [8, 9, 10, 11, 12]}, early_stopping=RULE
    )
    assert sweep["early_stopping"] == RULE
    ids = [t["job_id"] for t in sweep["trials"]]
    store = JobStore(inprocess_api.redis)
    fences = {}
    for job_id in ids:
        claimed = store.claim(job_id, "test-worker", 60)
        assert claimed is not None and claimed.fence is not None
        fences[job_id] = claimed.fence
    steps = range(20, 101, 20)
    for job_id, loss in zip(ids[:2], (0.2, 0.3), strict=True):  # two finished trials
        report(store, job_id, fences[job_id], dict.fromkeys(steps, loss))
        assert store.finish(job_id, JobStatus.SUCCEEDED, fence=fences[job_id]) is not None
    report(store, ids[2], fences[ids[2]], {20: 1.2, 40: 1.0, 60: 0.9})  # losing, at 60 %
    report(store, ids[3], fences[ids[3]], {20: 0.4, 40: 0.2, 60: 0.1})  # winning
    report(store, ids[4], fences[ids[4]], {20: 3.0, 40: 2.0})  # losing, but at 40 % only

    stopper = TrialStopper(inprocess_api.redis, store)
    settings = Settings()
    done = reap_once(store, settings, lambda job_id, job_type: None, stopping=stopper.check)
    assert done.stopped == 1
    assert client.get(ids[2])["cancel_requested"] is True
    assert [client.get(i)["cancel_requested"] for i in (ids[3], ids[4])] == [False, False]
    trials = {t["job_id"]: t for t in client.get_sweep(sweep["id"])["trials"]}
    why = trials[ids[2]]["stopped_early"]
    assert why is not None and why.startswith("median rule: best val_loss 0.9 by step 60")
    assert "median of 3 other trials by then 0.2" in why
    assert trials[ids[3]]["stopped_early"] is None

    report(store, ids[4], fences[ids[4]], {60: 1.5})  # now past half its steps
    assert stopper.check(10) == 0  # another check ran less than CHECK_SECONDS ago
    inprocess_api.admin.delete("atelier:sweeps:stopping-turn")
    assert stopper.check(10) == 1 and client.get(ids[4])["cancel_requested"] is True

    for job_id in ids[2:]:
        assert store.finish(job_id, JobStatus.CANCELED, fence=fences[job_id]) is not None
    inprocess_api.admin.delete("atelier:sweeps:stopping-turn")
    assert stopper.check(10) == 0
    assert inprocess_api.admin.smembers("atelier:sweeps:stopping") == set()  # no live trials


def _run(job_id: str, step: int, accuracy: list[tuple[int, float]], running: bool) -> Run:
    status = JobStatus.RUNNING if running else JobStatus.SUCCEEDED
    job = Job(
        id=job_id,
        owner="ana",
        type=JobType.TRAIN,
        kind="dcgan",
        params={},
        created_at=0.0,
        status=status,
        progress=Progress(step=step, total=100),
    )
    points = [{"step": s, "time": 0.0, "metrics": {"accuracy": a}} for s, a in accuracy]
    return Run(job, {"train": points, "validation": []})


def test_a_larger_is_better_metric_stops_the_lowest() -> None:
    runs = [
        _run("a", 100, [(50, 0.8), (100, 0.9)], running=False),
        _run("b", 100, [(50, 0.7), (100, 0.8)], running=False),
        _run("low", 50, [(25, 0.1), (50, 0.2)], running=True),
        _run("high", 50, [(25, 0.6), (50, 0.95)], running=True),
    ]
    rule = EarlyStopping(metric="-accuracy", min_fraction=0.5, min_trials=2)
    assert [job_id for job_id, _ in losers(runs, rule)] == ["low"]
    assert losers(runs, rule.model_copy(update={"min_trials": 4})) == []
    assert losers(runs, rule.model_copy(update={"min_fraction": 0.6})) == []
