"""Another owner's jobs, models, datasets and files are invisible: 404, never 403.

Fast tier: no worker, so alice's job stays queued, and her trained model is a record and
a sample grid written where a training job would write them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from atelier.client import ApiError, Client
from atelier.shared.jobs import OutputRef
from atelier.shared.models import ModelRecord, ModelStore
from atelier.shared.storage import ObjectLayout, make_object_store
from tests.conftest import TINY_TEXT, TINY_TRAIN, InProcessApi
from tests.payloads import png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def expect_status(status: int, call: Callable[..., Any], *args: object) -> dict[str, Any]:
    with pytest.raises(ApiError) as error:
        call(*args)
    assert error.value.status == status, error.value.problem
    return error.value.problem


def trained_model(api: InProcessApi, owner: str, job_id: str) -> str:
    """What a finished training job leaves: a model record and its sample grid."""
    grid_key = ObjectLayout.sample(owner, job_id, "1-0", 30)
    size = make_object_store(api.settings).put_bytes(grid_key, png((8, 8)), "image/png")
    model = ModelRecord(
        id=ModelStore.new_id(),
        owner=owner,
        kind="dcgan",
        config={"image_size": 28, "channels": 1},
        weights_key=ObjectLayout.model_weights(owner, "m"),
        samples=[
            OutputRef(
                name="samples/step-0000030.png",
                key=grid_key,
                content_type="image/png",
                size_bytes=size,
            )
        ],
        source_job_id=job_id,
        dataset="digits",
        steps=30,
        created_at=time.time(),
    )
    return ModelStore(api.redis).save(model).id


def test_owners_cannot_see_each_other(inprocess_api: InProcessApi) -> None:
    alice = inprocess_api.client("alice")
    bob_key = inprocess_api.raw_key("bob")
    bob = Client(inprocess_api.settings.api_url, bob_key, session=inprocess_api.session())

    job = alice.submit("train", "dcgan", TINY_TRAIN)
    assert job["status"] == "queued"
    model_id = trained_model(inprocess_api, "alice", job["id"])
    sample_url = alice.model(model_id)["sample_grid_url"]
    assert sample_url is not None

    assert expect_status(404, bob.get, job["id"])["detail"] == f"No job '{job['id']}'."
    expect_status(404, bob.cancel, job["id"])
    expect_status(404, bob.logs, job["id"])
    expect_status(404, bob.model, model_id)
    problem = expect_status(422, bob.submit, "generate", "dcgan", {"model_id": model_id, "n": 1})
    assert problem["type"] == "urn:atelier:problem:unknown-model"
    assert job["id"] not in [j["id"] for j in bob.jobs()["data"]]
    assert model_id not in [m["id"] for m in bob.models()]
    bearer = {"Authorization": f"Bearer {bob_key}"}
    stolen = inprocess_api.http.get(sample_url, headers=bearer, timeout=10)
    assert stolen.status_code == 404
    # A key that starts with bob's prefix but climbs into alice's objects is refused too.
    sneaky = sample_url.replace("/v1/files/owners/alice/", "/v1/files/owners/bob/%2E%2E/alice/")
    assert sneaky != sample_url
    climbed = inprocess_api.http.get(sneaky, headers=bearer, timeout=10)
    assert climbed.status_code == 404
    assert b"PNG" not in climbed.content

    # Alice herself sees all of it.
    assert alice.get(job["id"])["id"] == job["id"]
    assert alice.model(model_id)["id"] == model_id
    assert job["id"] in [j["id"] for j in alice.jobs()["data"]]
    assert alice.fetch(sample_url)[:8] == PNG_MAGIC
    assert alice.get(job["id"])["status"] == "queued"  # bob's cancel did nothing


def test_datasets_belong_to_their_owner(inprocess_api: InProcessApi, tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("private words. " * 100)
    yves = inprocess_api.client("yves")
    uploaded = yves.upload_dataset(corpus)
    name = uploaded["name"]
    other = inprocess_api.client("zoe")
    with pytest.raises(ApiError) as hidden:
        other.dataset(name)
    assert hidden.value.status == 404
    assert name not in [d["name"] for d in other.datasets()]
    with pytest.raises(ApiError):
        other.submit("train", "textgen", {**TINY_TEXT, "dataset": name})
    expect_status(404, other.delete_dataset, name)
    assert yves.dataset(name)["name"] == name  # zoe's delete did nothing
