"""A finish the replicas did not confirm is settled before the attempt tidies up
(``JobRunner._settle``): the cluster soak saw a training job finish on a primary cut off
from its replica; the demotion threw the finish away and the job ran again, while the
first attempt's model weights and checkpoints stayed in storage and its success was
counted. Real runner, Redis and local storage; the replication is the stand-in: a
``Durability`` that fails to confirm the finish, then plays the failover by putting the
job hash back as the claim left it (what the promoted replica held)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
import redis
from redis.client import Pipeline

from atelier.shared.durability import Durability
from atelier.shared.errors import LeaseLost
from atelier.shared.jobs import CheckpointRef, JobStatus, JobType
from atelier.shared.models import ModelRecord, ModelStore
from atelier.shared.settings import Settings
from atelier.shared.storage import LocalObjectStore, ObjectLayout
from atelier.workers.context import JobContext
from atelier.workers.kinds.base import GenerateResult, ModelKind, TrainResult
from atelier.workers.runner import JobRunner
from tests.conftest import UNIT_DB, register_image_kind


class Replication(Durability):
    """Confirms every write until armed (``lose_after``, which remembers the database as
    it is then): the next confirm (the finish's) fails; the one after, with ``failover``,
    first puts the database back as it was when armed, as a promoted replica that never
    got the finish would hold it. Reads are confirmed as writes are."""

    def __init__(self, client: redis.Redis, admin: redis.Redis, failover: bool) -> None:
        super().__init__(client, 0, 1.0)
        self.client = admin  # KEYS, DUMP, FLUSHDB, RESTORE: the test's, not Atelier's
        self.failover = failover
        self.kept: dict[bytes, bytes] | None = None
        self.finish_seen = False

    def lose_after(self) -> None:
        keys = cast(list[bytes], self.client.keys())
        self.kept = {key: cast(bytes, self.client.dump(key)) for key in keys}

    def confirmed(self) -> bool:
        if self.kept is None:
            return True
        if not self.finish_seen:
            self.finish_seen = True
            return False
        if self.failover:
            self.client.flushdb()
            for key, dumped in self.kept.items():
                self.client.restore(key, 0, dumped)
        self.kept = None
        return True

    def confirmed_read(self, read: Callable[[Pipeline], object]) -> list[Any] | None:
        return super().confirmed_read(read) if self.confirmed() else None


class FinishingKind(ModelKind):
    """Stores its weights and a checkpoint, arms the replication stand-in, succeeds."""

    name = "finishing"
    replication: ClassVar[Replication | None] = None

    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        weights = ObjectLayout.model_weights(ctx.job.owner, ctx.model_id)
        ctx.objects.put_bytes(weights, b"weights", "application/zip")
        ctx.objects.put_bytes(ctx.checkpoint_key(1), b"checkpoint", "application/zip")
        assert FinishingKind.replication is not None
        FinishingKind.replication.lose_after()
        return TrainResult(
            config={}, weights_key=weights, samples=[], metrics={}, dataset="digits", steps=1
        )

    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        raise NotImplementedError


@pytest.fixture()
def runner(
    redis_base_url: str, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> JobRunner:
    register_image_kind(monkeypatch, "finishing", f"{__name__}:FinishingKind")
    settings = Settings(redis_url=f"{redis_base_url}/{UNIT_DB}", lease_seconds=5)
    return JobRunner(settings, objects=LocalObjectStore(tmp_path))


@pytest.mark.parametrize("failover", [True, False])
def test_an_unconfirmed_finish_is_settled_before_tidying(
    runner: JobRunner, redis_client: redis.Redis, redis_admin: redis.Redis, failover: bool
) -> None:
    replication = Replication(redis_client, redis_admin, failover)
    FinishingKind.replication = runner.durability = replication
    job = runner.jobs.create("alice", JobType.TRAIN, "finishing", {})
    outcome = runner.run(job.id)
    after = runner.jobs.get(job.id)
    assert after is not None
    stored = runner.objects.list_keys("owners/alice/")
    models = ModelStore(redis_client).list_for_owner("alice", limit=10)[0]
    if failover:
        # Taken back: the job runs again, and this attempt left nothing behind.
        assert outcome is None
        assert (after.status, after.attempt, after.model_id) == (JobStatus.QUEUED, 1, None)
        assert models == [] and stored == []
    else:
        # It stood: kept, counted, tidied like any confirmed finish.
        assert outcome is JobStatus.SUCCEEDED and after.status is JobStatus.SUCCEEDED
        assert [m.id for m in models] == [after.model_id]
        assert any(key.endswith("weights.npz") for key in stored)


class FencedOffKind(ModelKind):
    """Stores two checkpoints, points its record at the second, then finds another
    attempt holding the job (as the soak's did on a primary cut off from its replica,
    whose record pointed at a checkpoint the real one did not)."""

    name = "fenced-off"

    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        for step in (1, 2):
            ctx.objects.put_bytes(ctx.checkpoint_key(step), b"checkpoint", "application/zip")
        pointer = CheckpointRef(step=2, key=ctx.checkpoint_key(2))
        ctx.jobs.set_checkpoint(ctx.job.id, ctx.fence, pointer)
        ctx.jobs.fenced_set(ctx.job.id, ctx.fence, "fence", "1-another")
        raise LeaseLost("lease lost at step 2")

    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        raise NotImplementedError


class NothingConfirmed(Durability):
    """Writes are confirmed (the claim goes through); every read comes from a node no
    replica follows."""

    def confirmed(self) -> bool:
        return True

    def confirmed_read(self, read: Callable[[Pipeline], object]) -> list[Any] | None:
        return None


def test_a_fenced_off_attempt_deletes_nothing_on_a_record_no_replica_confirms(
    runner: JobRunner, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_image_kind(monkeypatch, "fenced-off", f"{__name__}:FencedOffKind")
    monkeypatch.setattr("atelier.workers.settling.SETTLE_SECONDS", 0.5)
    runner.durability = NothingConfirmed(redis_client, 1, 0.05)
    job = runner.jobs.create("alice", JobType.TRAIN, "fenced-off", {})
    assert runner.run(job.id) is None
    kept = runner.objects.list_keys(f"owners/alice/jobs/{job.id}/")
    assert [key.rsplit("/", 1)[1] for key in sorted(kept)] == [
        "step-0000001.npz",
        "step-0000002.npz",
    ]


def test_a_read_is_confirmed_on_its_own_connection(redis_client: redis.Redis) -> None:
    """On a Redis no replica follows, a read wanting one is not confirmed; wanting none,
    it is answered as it is."""

    def read(pipe: Pipeline) -> None:
        pipe.set("k", "v")
        pipe.get("k")

    assert Durability(redis_client, 1, 0.05).confirmed_read(read) is None
    assert Durability(redis_client, 0, 0.05).confirmed_read(read) == [True, b"v"]
