"""Fair scheduling: one owner queues a backlog of generation jobs, another then submits one.
On one generation worker, the newcomer's job should start after at most one more of the
backlog's (round-robin across owners), not after all of them (FIFO). The baseline is the
wait FIFO would have given it: the backlog still queued when it arrived, times the mean
run of a backlog job, both measured in the same run."""

from __future__ import annotations

from atelier.client import Client
from atelier.shared.auth import ApiKeyStore
from atelier.shared.jobs import JobStore
from atelier.shared.redis_client import redis_for
from bench.common import Result, stack, train_dcgan


def fairness(size: str) -> list[Result]:
    backlog = 100 if size == "quick" else 300
    with stack(("train", "generate")) as (running, _client):
        assert running.settings is not None
        settings = running.settings
        r = redis_for(settings)
        busy, new = (Client(settings.api_url, ApiKeyStore(r).create(o)) for o in ("busy", "new"))
        models = [train_dcgan(busy), train_dcgan(new)]
        queued = [
            busy.submit("generate", "dcgan", {"model_id": models[0], "n": 1})["id"]
            for _ in range(backlog)
        ]
        late = new.submit("generate", "dcgan", {"model_id": models[1], "n": 1})["id"]
        new.wait(late, timeout=600)
        for job_id in queued:
            busy.wait(job_id, timeout=600)
        store = JobStore(r)
        mine = store.get(late)
        jobs = store.get_many(queued)
    assert mine is not None and mine.started_at is not None
    ahead = [j for j in jobs if j.started_at is not None and j.started_at > mine.created_at]
    cut_in = [j for j in ahead if j.started_at is not None and j.started_at < mine.started_at]
    runs = [j.finished_at - j.started_at for j in jobs if j.finished_at and j.started_at]
    mean_run = sum(runs) / len(runs)
    waited = mine.started_at - mine.created_at
    fifo = len(ahead) * mean_run
    return [
        Result(
            name=f"newcomer's wait behind a {backlog}-job backlog of another owner",
            value=waited,
            baseline=fifo,
            baseline_name=f"FIFO: {len(ahead)} queued jobs x {mean_run * 1000:.0f} ms",
            unit="s",
            ratio=waited / fifo if fifo else 0.0,
            goal="<= 1 backlog job first",
            met=len(cut_in) <= 1,
            notes=f"{len(cut_in)} of the backlog's jobs started between its submit and start",
        )
    ]
