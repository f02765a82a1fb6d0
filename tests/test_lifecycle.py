"""Deleting finished jobs and models, retention, and downloads that never load an object
into the API (issue 13, point 2). Fast tier: the app in-process on a real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from atelier.client import ApiError
from atelier.shared.job_logs import JobLogs
from atelier.shared.jobs import JobStatus, JobStore, JobType, OutputRef
from atelier.shared.lifecycle import DAY_SECONDS, sweep_retention
from atelier.shared.models import ModelRecord, ModelStore
from atelier.shared.settings import Settings
from atelier.shared.storage import ObjectLayout, make_object_store
from tests.conftest import InProcessApi, inprocess_api_for, inprocess_settings, s3_settings


def finished_training(api: InProcessApi, owner: str, finished_ago: float = 0) -> tuple[str, str]:
    """A training job that succeeded ``finished_ago`` seconds ago, as a worker leaves it:
    a sample, a checkpoint, a log line and a model with weights. (job id, model id)"""
    store, objects = JobStore(api.redis), make_object_store(api.settings)
    job = store.create(owner, JobType.TRAIN, "dcgan", {"dataset": "digits"})
    claimed = store.claim(job.id, "w", 30)
    assert claimed is not None and claimed.fence is not None
    fence = claimed.fence
    sample = ObjectLayout.sample(owner, job.id, fence, 10)
    for key in (sample, ObjectLayout.checkpoint(owner, job.id, fence, 10)):
        objects.put_bytes(key, b"x", "application/octet-stream")
    ref = OutputRef(
        name="samples/step-0000010.png", key=sample, content_type="image/png", size_bytes=1
    )
    assert store.add_outputs(job.id, fence, [ref])
    JobLogs(api.redis, 100).append(job.id, fence, "trained")
    model = ModelRecord(
        id=ModelStore.new_id(),
        owner=owner,
        kind="dcgan",
        config={},
        weights_key=ObjectLayout.model_weights(owner, "m"),
        samples=[ref],
        source_job_id=job.id,
        dataset="digits",
        steps=10,
        created_at=time.time(),
    )
    objects.put_bytes(model.weights_key, b"w", "application/zip")
    ModelStore(api.redis).save(model)
    assert store.finish(job.id, JobStatus.SUCCEEDED, model_id=model.id, fence=fence) is not None
    api.redis.zadd("atelier:finished", {job.id: time.time() - finished_ago})
    return job.id, model.id


def test_a_finished_job_is_deleted_with_its_objects_and_log(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client("dora")
    job_id, model_id = finished_training(inprocess_api, "dora")
    with pytest.raises(ApiError) as other:
        inprocess_api.client("eve").request("DELETE", f"/v1/jobs/{job_id}")
    assert other.value.status == 404
    client.request("DELETE", f"/v1/jobs/{job_id}")
    with pytest.raises(ApiError) as gone:
        client.get(job_id)
    assert gone.value.status == 404
    objects = make_object_store(inprocess_api.settings)
    left = objects.list_keys(ObjectLayout.job_prefix("dora", job_id))
    model = client.model(model_id)  # the model stays, and so does the grid it shows
    assert [key.split("/")[-2:] for key in left] == [["samples", "step-0000010.png"]]
    assert model["sample_grid_url"] is not None
    assert JobLogs(inprocess_api.redis, 100).read(job_id) == []


def test_an_unfinished_job_cannot_be_deleted(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client("dora")
    job = client.submit("train", "dcgan", {"steps": 10})
    with pytest.raises(ApiError) as refused:
        client.request("DELETE", f"/v1/jobs/{job['id']}")
    assert refused.value.status == 409 and refused.value.problem["status_now"] == "queued"
    client.cancel(job["id"])
    client.request("DELETE", f"/v1/jobs/{job['id']}")
    assert client.jobs()["data"] == []


def test_a_model_is_deleted_with_its_weights(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client("dora")
    job_id, model_id = finished_training(inprocess_api, "dora")
    with pytest.raises(ApiError) as other:
        inprocess_api.client("eve").request("DELETE", f"/v1/models/{model_id}")
    assert other.value.status == 404
    client.request("DELETE", f"/v1/models/{model_id}")
    with pytest.raises(ApiError) as gone:
        client.model(model_id)
    assert gone.value.status == 404
    objects = make_object_store(inprocess_api.settings)
    assert objects.list_keys("owners/dora/models/") == []
    client.request("DELETE", f"/v1/jobs/{job_id}")  # then its job: nothing is left
    assert objects.list_keys("owners/dora/") == []


def test_retention_deletes_old_finished_jobs_in_batches(inprocess_api: InProcessApi) -> None:
    old = [finished_training(inprocess_api, "dora", 3 * DAY_SECONDS)[0] for _ in range(3)]
    recent, _ = finished_training(inprocess_api, "dora", 0.5 * DAY_SECONDS)
    store, models = JobStore(inprocess_api.redis), ModelStore(inprocess_api.redis)
    objects = make_object_store(inprocess_api.settings)
    assert sweep_retention(store, models, objects, 0, 10) == 0  # 0 keeps everything
    assert sweep_retention(store, models, objects, 1, 2) == 2  # a bounded batch
    assert sweep_retention(store, models, objects, 1, 2) == 1
    assert sweep_retention(store, models, objects, 1, 2) == 0
    assert [j.id for j in store.get_many([*old, recent])] == [recent]


@pytest.fixture()
def s3_api(redis_base_url: str, tmp_path: Path, s3_endpoint: str) -> Iterator[InProcessApi]:
    settings = inprocess_settings(redis_base_url, tmp_path, **s3_settings(s3_endpoint, "files"))
    yield from inprocess_api_for(settings)


def test_files_on_s3_redirect_to_a_presigned_url(s3_api: InProcessApi) -> None:
    key = "owners/dora/jobs/job_1/a1/outputs/x.txt"
    make_object_store(s3_api.settings).put_bytes(key, b"hello", "text/plain")
    headers = {"Authorization": f"Bearer {s3_api.raw_key('dora')}"}
    answer = s3_api.http.get(s3_api.url(f"/v1/files/{key}"), headers=headers, allow_redirects=False)
    assert answer.status_code == 302 and "X-Amz-Signature" in answer.headers["Location"]
    assert requests.get(answer.headers["Location"], timeout=10).content == b"hello"
    missing = s3_api.http.get(s3_api.url("/v1/files/owners/dora/nope"), headers=headers)
    assert missing.status_code == 404
    # SeaweedFS answers a HEAD of a folder 200 (AWS: 404); a folder is still no file.
    for folder in ("owners/dora/jobs/", "owners/dora/jobs/job_1/a1/outputs/"):
        answer = s3_api.http.get(s3_api.url(f"/v1/files/{folder}"), headers=headers)
        assert answer.status_code == 404, folder


def test_presigned_lifetime_is_capped() -> None:
    assert Settings(s3_presign_expires_seconds=7 * DAY_SECONDS).s3_presign_expires_seconds
    with pytest.raises(ValueError, match="7 days"):
        Settings(s3_presign_expires_seconds=7 * DAY_SECONDS + 1)
