"""Another owner's jobs, models and files are invisible: 404, never 403."""

from __future__ import annotations

import pytest
import requests

from atelier.client import ApiError, Client
from tests.conftest import TINY_TRAIN, RunningStack

pytestmark = pytest.mark.slow


def expect_status(status: int, call: object, *args: object) -> dict[str, object]:
    with pytest.raises(ApiError) as error:
        call(*args)  # type: ignore[operator]
    assert error.value.status == status, error.value.problem
    return error.value.problem


def test_owners_cannot_see_each_other(local_stack: RunningStack) -> None:
    alice = local_stack.client("alice")
    bob_key = local_stack.raw_key("bob")
    bob = Client(local_stack.settings.api_url, bob_key)

    job = alice.wait(alice.submit("train", "dcgan", TINY_TRAIN)["id"], timeout=300)
    assert job["status"] == "succeeded"
    model_id = job["model_id"]
    sample_url = job["outputs"][0]["url"]

    assert expect_status(404, bob.job, job["id"])["detail"] == f"No job '{job['id']}'."
    expect_status(404, bob.cancel, job["id"])
    expect_status(404, bob.model, model_id)
    problem = expect_status(422, bob.submit, "generate", "dcgan", {"model_id": model_id, "n": 1})
    assert problem["type"] == "urn:atelier:problem:unknown-model"
    assert job["id"] not in [j["id"] for j in bob.jobs()["data"]]
    assert model_id not in [m["id"] for m in bob.models()]
    stolen = requests.get(sample_url, headers={"Authorization": f"Bearer {bob_key}"}, timeout=10)
    assert stolen.status_code == 404
    # A key that starts with bob's prefix but climbs into alice's objects is refused too.
    sneaky = sample_url.replace("/v1/files/owners/alice/", "/v1/files/owners/bob/%2E%2E/alice/")
    climbed = requests.get(sneaky, headers={"Authorization": f"Bearer {bob_key}"}, timeout=10)
    assert climbed.status_code == 404
    assert b"PNG" not in climbed.content

    # Alice herself sees all of it.
    assert alice.get(job["id"])["id"] == job["id"]
    assert alice.model(model_id)["id"] == model_id
    assert job["id"] in [j["id"] for j in alice.jobs()["data"]]
    assert alice.fetch(sample_url)[:8] == b"\x89PNG\r\n\x1a\n"
