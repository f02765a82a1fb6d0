"""Retry policy by exception type, through the real runner and reaper on a real Redis
(the model kind is a stand-in that raises on purpose: the only fake here)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import redis

from atelier.shared.errors import PermanentJobError, TransientJobError
from atelier.shared.jobs import JobStatus, JobStore, JobType
from atelier.shared.models import ModelRecord
from atelier.shared.settings import Settings
from atelier.shared.storage import LocalObjectStore
from atelier.workers.context import JobContext
from atelier.workers.kinds.base import GenerateResult, ModelKind, TrainResult
from atelier.workers.reaper import reap_once
from atelier.workers.runner import JobRunner
from tests.conftest import UNIT_DB, register_image_kind


class FlakyKind(ModelKind):
    name = "flaky"
    failures: ClassVar[list[Exception]] = []

    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        if FlakyKind.failures:
            raise FlakyKind.failures.pop(0)
        return TrainResult(
            config={}, weights_key="w", samples=[], metrics={"loss": 1.0}, dataset="digits", steps=1
        )

    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        raise NotImplementedError


@pytest.fixture()
def runner(
    redis_base_url: str, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> JobRunner:
    register_image_kind(monkeypatch, "flaky", f"{__name__}:FlakyKind")
    settings = Settings(
        redis_url=f"{redis_base_url}/{UNIT_DB}",
        max_attempts=3,
        retry_backoff_seconds=0.2,
        lease_seconds=5,
    )
    return JobRunner(settings, objects=LocalObjectStore(tmp_path))


def run_until_settled(runner: JobRunner, job_id: str) -> list[JobStatus | None]:
    """Run the job, and each retry the reaper sends, until it ends."""
    sent: list[str] = []
    outcomes = [runner.run(job_id)]
    while outcomes[-1] is JobStatus.QUEUED:
        deadline = time.monotonic() + 5
        while not sent and time.monotonic() < deadline:
            reap_once(runner.jobs, runner.settings, lambda jid, _type: sent.append(jid))
            time.sleep(0.05)
        assert sent == [job_id]
        sent.clear()
        outcomes.append(runner.run(job_id))
    return outcomes


def test_transient_errors_retry_with_backoff_then_succeed(runner: JobRunner) -> None:
    FlakyKind.failures[:] = [TransientJobError("storage away"), redis.ConnectionError("blip")]
    job = runner.jobs.create("alice", JobType.TRAIN, "flaky", {})
    started = time.monotonic()
    outcomes = run_until_settled(runner, job.id)
    assert outcomes == [JobStatus.QUEUED, JobStatus.QUEUED, JobStatus.SUCCEEDED]
    assert time.monotonic() - started >= 0.2 + 0.4  # backoff 0.2 s, then 0.4 s
    done = runner.jobs.get(job.id)
    assert done is not None and (done.attempt, done.failures) == (3, 2)


def test_transient_errors_stop_at_max_attempts(runner: JobRunner) -> None:
    FlakyKind.failures[:] = [TransientJobError(f"outage {i}") for i in range(5)]
    job = runner.jobs.create("alice", JobType.TRAIN, "flaky", {})
    assert run_until_settled(runner, job.id)[-1] is JobStatus.FAILED
    done = runner.jobs.get(job.id)
    assert done is not None and done.attempt == 3 and done.error is not None
    assert done.error.type == "TransientJobError"
    assert done.error.message == "gave up after 3 failed attempts: outage 2"


def test_permanent_errors_fail_at_once(runner: JobRunner, redis_client: redis.Redis) -> None:
    FlakyKind.failures[:] = [PermanentJobError("the dataset is empty")]
    job = runner.jobs.create("alice", JobType.TRAIN, "flaky", {})
    assert run_until_settled(runner, job.id) == [JobStatus.FAILED]
    done = runner.jobs.get(job.id)
    assert done is not None and done.attempt == 1 and done.error is not None
    assert (done.error.type, done.error.message) == ("PermanentJobError", "the dataset is empty")
    assert JobStore(redis_client).expired_leases() == []  # nothing left holding a lease
