"""A third kind added by the recipe in docs/kinds.md trains and generates through the real worker
and the shared training loop: samples, checkpoints, weights and a model record."""

from __future__ import annotations

import pytest

from atelier import ApiError
from tests.conftest import RunningStack

pytestmark = pytest.mark.slow


def test_a_plugin_kind_trains_and_generates(local_stack: RunningStack) -> None:
    client = local_stack.client("toy-owner")
    assert "toy" in [k["name"] for k in client.kinds()]
    with pytest.raises(ApiError) as refused:
        client.submit("train", "toy", {"stepz": 3})
    assert refused.value.status == 422  # the plug-in's params validate in the API

    params = {"steps": 6, "sample_every": 2, "checkpoint_every": 3}
    trained = client.wait(client.submit("train", "toy", params)["id"], timeout=120)
    assert trained["status"] == "succeeded", trained["error"]
    assert trained["checkpoint_step"] == 3
    samples = [o for o in trained["outputs"] if o["name"].startswith("samples/")]
    assert [o["name"] for o in samples] == [f"samples/step-000000{s}.txt" for s in (2, 4, 6)]
    assert trained["model_id"] is not None
    model = client.model(trained["model_id"])
    assert model["kind"] == "toy" and model["steps"] == 6
    learned = model["metrics"]["mean"]
    assert samples[-1]["text"] == f"{learned:.6f}"

    generated = client.wait(
        client.submit("generate", "toy", {"model_id": model["id"], "n": 2})["id"], timeout=60
    )
    assert generated["status"] == "succeeded", generated["error"]
    (output,) = generated["outputs"]
    values = client.fetch(output["url"]).decode().split()
    assert values == [f"{learned:.6f}"] * 2  # generation restored the trained weights
