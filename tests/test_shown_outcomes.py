"""An outcome is shown only once the replicas hold it (``api.durability``): a primary cut
off from its replica takes a worker's finish, and the failover that follows throws it
away. The cluster soak saw a client shown "succeeded" with a model that then never
existed; here one Redis with no replica plays the cut-off primary."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from atelier.shared.jobs import JobStatus, JobStore, JobType
from atelier.shared.models import ModelRecord, ModelStore
from tests.conftest import InProcessApi, inprocess_api_for, inprocess_settings


@pytest.fixture()
def unreplicated(redis_base_url: str, tmp_path: Path) -> Iterator[InProcessApi]:
    """An API that wants one replica to confirm, on a Redis that has none."""
    yield from inprocess_api_for(
        inprocess_settings(
            redis_base_url, tmp_path, redis_min_replicas=1, redis_replica_wait_seconds=0.05
        )
    )


def _session(api: InProcessApi) -> requests.Session:
    session = api.session()
    session.headers["Authorization"] = f"Bearer {api.raw_key()}"
    return session


def test_an_outcome_no_replica_holds_is_a_503_and_a_running_job_is_shown(
    unreplicated: InProcessApi,
) -> None:
    store = JobStore(unreplicated.redis)
    queued = store.create("alice", JobType.TRAIN, "dcgan", {})
    finished = store.create("alice", JobType.TRAIN, "dcgan", {})
    assert store.claim(finished.id, "w:1", 30) is not None
    store.finish(finished.id, JobStatus.SUCCEEDED, model_id="model_gone")
    ModelStore(unreplicated.redis).save(
        ModelRecord(
            id="model_gone",
            owner="alice",
            kind="dcgan",
            config={},
            weights_key="w",
            source_job_id=finished.id,
            dataset="digits",
            steps=1,
            created_at=0.0,
        )
    )
    session = _session(unreplicated)
    shown = session.get(unreplicated.url(f"/v1/jobs/{queued.id}"))
    assert shown.status_code == 200 and shown.json()["status"] == "queued"
    for path in (f"/v1/jobs/{finished.id}", "/v1/jobs", "/v1/models/model_gone"):
        refused = session.get(unreplicated.url(path))
        assert refused.status_code == 503, refused.text
        assert refused.json()["type"].endswith("not-replicated")
        assert refused.headers["Retry-After"] == "2"
        assert "succeeded" not in refused.text


def test_without_replicas_required_an_outcome_is_shown_at_once(
    redis_base_url: str, tmp_path: Path
) -> None:
    for api in inprocess_api_for(inprocess_settings(redis_base_url, tmp_path)):
        store = JobStore(api.redis)
        job = store.create("alice", JobType.GENERATE, "dcgan", {})
        store.request_cancel(job.id)
        assert _session(api).get(api.url(f"/v1/jobs/{job.id}")).json()["status"] == "canceled"
