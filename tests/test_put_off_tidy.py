"""Storage an attempt could not tidy is tidied later (``shared.storage_tidy``).

A clean-clone CI run of the three-host soak found a checkpoint of a job's first attempt
still stored after its second attempt succeeded: a failover had rewound the job's record
past that checkpoint, and the second attempt finished while no replica could confirm its
finish, so it kept every object and nothing tidied them afterwards. Now the attempt puts
the tidy off and the reapers settle it once a replica confirms the record.

Real runner, Redis and local storage; the replication is a stand-in ``Durability`` that
confirms nothing while ``away`` is set."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis
from redis.client import Pipeline

from atelier.shared.durability import Durability
from atelier.shared.errors import LeaseLost
from atelier.shared.jobs import CheckpointRef, JobStatus, JobType
from atelier.shared.models import ModelRecord, ModelStore
from atelier.shared.settings import Settings
from atelier.shared.storage import LocalObjectStore, ObjectLayout
from atelier.shared.storage_tidy import PutOffTidies, PutOffTidy, settle_put_off
from atelier.workers.context import JobContext
from atelier.workers.kinds.base import GenerateResult, ModelKind, TrainResult
from atelier.workers.reaper import reap_once
from atelier.workers.runner import JobRunner
from tests.conftest import UNIT_DB, register_image_kind

EARLIER = "1-0ld0a77e"
"""The fence of an attempt before the one the test runs (the soak's rewound one)."""


class Replication(Durability):
    """Confirms everything unless ``away``; ``away_at_finish`` sets it when the kind is
    done, so the claim goes through and the finish is not confirmed."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client, 0, 1.0)
        self.away = False
        self.away_at_finish = False

    def confirmed(self) -> bool:
        return not self.away

    def confirmed_read(self, read: Callable[[Pipeline], object]) -> list[Any] | None:
        return None if self.away else super().confirmed_read(read)


class StoringKind(ModelKind):
    """Stores a sample, two checkpoints and its weights, and points the record at the
    second checkpoint; then succeeds, or (``fenced``) finds another attempt holding it."""

    name = "storing"
    replication: ClassVar[Replication | None] = None
    fenced: ClassVar[bool] = False

    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        weights = ObjectLayout.model_weights(ctx.job.owner, ctx.model_id)
        ctx.objects.put_bytes(weights, b"weights", "application/zip")
        ctx.objects.put_bytes(ctx.sample_key(1, "png"), b"sample", "image/png")
        for step in (1, 2):
            ctx.objects.put_bytes(ctx.checkpoint_key(step), b"checkpoint", "application/zip")
        pointer = CheckpointRef(step=2, key=ctx.checkpoint_key(2))
        ctx.jobs.set_checkpoint(ctx.job.id, ctx.fence, pointer)
        if StoringKind.fenced:
            ctx.jobs.fenced_set(ctx.job.id, ctx.fence, "fence", "3-another")
            raise LeaseLost("lease lost at step 2")
        assert StoringKind.replication is not None
        StoringKind.replication.away = StoringKind.replication.away_at_finish
        return TrainResult(
            config={}, weights_key=weights, samples=[], metrics={}, dataset="digits", steps=2
        )

    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        raise NotImplementedError


class RefusingDeletes(LocalObjectStore):
    """Storage that is away for deletes while ``refusing``."""

    refusing = True

    def delete(self, key: str) -> None:
        if self.refusing:
            raise ConnectionError("storage is away")
        super().delete(key)


@pytest.fixture()
def store(tmp_path: Path) -> RefusingDeletes:
    store = RefusingDeletes(tmp_path)
    store.refusing = False
    return store


@pytest.fixture()
def runner(
    redis_base_url: str,
    redis_client: redis.Redis,
    store: RefusingDeletes,
    monkeypatch: pytest.MonkeyPatch,
) -> JobRunner:
    register_image_kind(monkeypatch, "storing", f"{__name__}:StoringKind")
    monkeypatch.setattr("atelier.workers.settling.SETTLE_SECONDS", 0.3)
    monkeypatch.setattr("atelier.shared.storage_tidy.FIRST_TRY_SECONDS", 0.0)
    monkeypatch.setattr("atelier.shared.storage_tidy.AGAIN_SECONDS", 0.0)
    monkeypatch.setattr(StoringKind, "fenced", False)
    # A long lease: under load a 5 s one lapsed mid-test and fenced the attempt off.
    settings = Settings(redis_url=f"{redis_base_url}/{UNIT_DB}", lease_seconds=60)
    runner = JobRunner(settings, objects=store)
    StoringKind.replication = runner.durability = Replication(redis_client)
    return runner


def stored(runner: JobRunner, job_id: str) -> list[str]:
    """The job's objects, each as its attempt's fence and the rest of its key."""
    prefix = ObjectLayout.job_prefix("alice", job_id)
    return sorted(key[len(prefix) + 1 :] for key in runner.objects.list_keys(prefix))


def left_by_an_earlier_attempt(runner: JobRunner, job_id: str) -> None:
    """What the soak found: a checkpoint and a sample of an attempt the record forgot."""
    for key in (
        ObjectLayout.checkpoint("alice", job_id, EARLIER, 50),
        ObjectLayout.sample("alice", job_id, EARLIER, 50),
    ):
        runner.objects.put_bytes(key, b"old", "application/octet-stream")


def reap(runner: JobRunner) -> int:
    """One reaper sweep that only settles put-off tidies; the number settled."""
    tidies = PutOffTidies(runner.jobs._redis)

    def tidying(batch: int) -> int:
        return settle_put_off(tidies, runner.durability, runner.objects, batch)

    return reap_once(runner.jobs, runner.settings, lambda *_: None, tidying=tidying).tidied


def test_an_unconfirmed_finish_puts_its_tidy_off_until_a_replica_confirms(
    runner: JobRunner, redis_client: redis.Redis
) -> None:
    replication = StoringKind.replication
    assert replication is not None
    replication.away_at_finish = True
    job = runner.jobs.create("alice", JobType.TRAIN, "storing", {})
    left_by_an_earlier_attempt(runner, job.id)
    assert runner.run(job.id) is JobStatus.SUCCEEDED
    record = runner.jobs.get(job.id)
    assert record is not None and record.fence is not None
    fence = record.fence
    tidies = PutOffTidies(redis_client)
    assert tidies.pending() == 1
    before = stored(runner, job.id)
    assert f"{EARLIER}/checkpoints/step-0000050.npz" in before

    assert reap(runner) == 0  # still no replica: nothing decided, nothing deleted
    assert tidies.pending() == 1 and stored(runner, job.id) == before

    replication.away = False
    assert reap(runner) == 1
    assert tidies.pending() == 0
    assert stored(runner, job.id) == [
        f"{EARLIER}/samples/step-0000050.png",
        f"{fence}/checkpoints/step-0000001.npz",
        f"{fence}/checkpoints/step-0000002.npz",
        f"{fence}/samples/step-0000001.png",
    ]
    model = ModelStore(redis_client).get(record.model_id or "")
    assert model is not None and runner.objects.exists(model.weights_key)


def test_storage_away_at_the_finish_puts_the_tidy_off(
    runner: JobRunner, redis_client: redis.Redis, store: RefusingDeletes
) -> None:
    job = runner.jobs.create("alice", JobType.TRAIN, "storing", {})
    left_by_an_earlier_attempt(runner, job.id)
    store.refusing = True
    assert runner.run(job.id) is JobStatus.SUCCEEDED
    assert f"{EARLIER}/checkpoints/step-0000050.npz" in stored(runner, job.id)
    assert PutOffTidies(redis_client).pending() == 1
    assert reap(runner) == 0  # still away: the tidy comes due again
    store.refusing = False
    assert reap(runner) == 1
    assert f"{EARLIER}/checkpoints/step-0000050.npz" not in stored(runner, job.id)


def test_a_fenced_off_attempt_s_put_off_tidy_drops_its_leftovers_and_weights(
    runner: JobRunner, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fenced off while no replica confirms the record: all kept and put off. Confirmed
    later, with the job running as another attempt: this attempt's objects the record
    does not point at go, and so do the weights of its model, never recorded."""
    monkeypatch.setattr(StoringKind, "fenced", True)
    job = runner.jobs.create("alice", JobType.TRAIN, "storing", {})

    def away_after_the_claim(job_id: str) -> tuple[bool, None]:
        return False, None

    monkeypatch.setattr(runner, "_durable_record", away_after_the_claim)
    assert runner.run(job.id) is None
    (tidy,) = PutOffTidies(redis_client).claim_due(10)
    assert tidy.model_id is not None
    weights = ObjectLayout.model_weights("alice", tidy.model_id)
    assert runner.objects.exists(weights) and len(stored(runner, job.id)) == 3

    assert reap(runner) == 1
    # The record (another attempt's now) still points at this attempt's step 2.
    assert stored(runner, job.id) == [f"{tidy.fence}/checkpoints/step-0000002.npz"]
    assert not runner.objects.exists(weights)


def test_a_tidy_waits_while_its_attempt_still_holds_a_running_job(
    runner: JobRunner, redis_client: redis.Redis
) -> None:
    job = runner.jobs.create("alice", JobType.TRAIN, "storing", {})
    claimed = runner.jobs.claim_next(JobType.TRAIN, "w", 60, runner.settings)
    assert claimed is not None and claimed.id == job.id and claimed.fence is not None
    tidies = PutOffTidies(redis_client)
    tidies.put_off(PutOffTidy(job.id, "alice", claimed.fence))
    assert reap(runner) == 0 and tidies.pending() == 1


@pytest.mark.parametrize("recorded", [True, False])
def test_a_deleted_job_s_tidy_keeps_only_a_recorded_model_s_weights(
    runner: JobRunner, redis_client: redis.Redis, recorded: bool
) -> None:
    weights = ObjectLayout.model_weights("alice", "model_x")
    runner.objects.put_bytes(weights, b"weights", "application/zip")
    if recorded:
        models = ModelStore(redis_client)
        model = ModelRecord(
            id="model_x", owner="alice", kind="storing", config={}, weights_key=weights,
            samples=[], metrics={}, source_job_id="job_gone", dataset="digits", steps=1,
            created_at=0.0,
        )
        pipe = redis_client.pipeline()
        models.save_in(pipe, model)
        pipe.execute()
    PutOffTidies(redis_client).put_off(PutOffTidy("job_gone", "alice", "1-x", "model_x"))
    assert reap(runner) == 1
    assert runner.objects.exists(weights) is recorded
