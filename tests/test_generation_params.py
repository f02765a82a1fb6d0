"""Generation params are checked against the named model at submit (issue 16, points 2-3):
what a model can serve is accepted, whatever the length asked for (the window slides); a
model record generation could not use is refused with 422, never accepted and then failed.

Fast tier: the app in this process, a real Redis, no worker, no TensorFlow.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from atelier.shared.models import ModelRecord, ModelStore
from tests.conftest import InProcessApi
from tests.test_api_errors import Api, assert_nothing_enqueued, assert_problem, post_job

BYTE_MODEL = {"sequence_length": 192, "num_layers": 2, "num_heads": 4, "hidden_dim": 128}
"""A textgen model as every record before subword vocabularies holds it: no tokenizer."""


@pytest.fixture()
def api(inprocess_api: InProcessApi) -> Api:
    key = inprocess_api.raw_key("erin")
    return inprocess_api, {"Authorization": f"Bearer {key}"}


def saved_model(app: InProcessApi, kind: str, config: dict[str, Any], dataset: str) -> str:
    """A model record of ``kind`` owned by erin (no weights: only submit reads it)."""
    model = ModelRecord(
        id=ModelStore.new_id(),
        owner="erin",
        kind=kind,
        config=config,
        weights_key=f"owners/erin/models/{kind}/weights.zip",
        source_job_id="job_x",
        dataset=dataset,
        steps=10,
        created_at=time.time(),
    )
    return ModelStore(app.redis).save(model).id


def textgen_model(app: InProcessApi, config: dict[str, Any]) -> str:
    return saved_model(app, "textgen", config, "fables")


def generate(model_id: str, **params: Any) -> dict[str, Any]:
    return {
        "json": {"type": "generate", "kind": "textgen", "params": {"model_id": model_id, **params}}
    }


def test_generation_past_the_context_is_accepted(api: Api) -> None:
    """The issue's case: 300 new bytes from a 192-byte context was accepted, then failed at
    run time; now it runs, as do 2,000 bytes and a prompt longer than the context."""
    model = textgen_model(api[0], BYTE_MODEL)
    prompt = "Once upon a time, a"
    for params in ({"prompt": prompt, "max_new_tokens": 300}, {"max_new_tokens": 2000}):
        assert post_job(api, **generate(model, **params)).status_code == 202
    long_prompt = {"prompt": "x" * 1000, "max_new_tokens": 50}
    assert post_job(api, **generate(model, **long_prompt)).status_code == 202


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"sequence_length": 192}, "num_layers, num_heads, hidden_dim"),
        ({**BYTE_MODEL, "vocabulary_size": 2048}, "no tokenizer"),
    ],
    ids=["incomplete", "vocabulary-without-tokenizer"],
)
def test_a_model_generation_cannot_use_is_refused(
    api: Api, config: dict[str, Any], says: str
) -> None:
    model = textgen_model(api[0], config)
    body = assert_problem(post_job(api, **generate(model)), 422, "unknown-model")
    assert says in body["detail"] and body["errors"][0]["field"] == "params.model_id"
    assert_nothing_enqueued(api[0])


def dcgan_model(app: InProcessApi, classes: int) -> str:
    config = {"image_size": 28, "channels": 1, "latent_dim": 64, "base_filters": 32}
    return saved_model(
        app, "dcgan", {**config, "classes": classes} if classes else config, "digits"
    )


def draw(model_id: str, labels: Any) -> dict[str, Any]:
    params = {"model_id": model_id, "labels": labels}
    return {"json": {"type": "generate", "kind": "dcgan", "params": params}}


def test_a_conditional_model_draws_the_classes_it_knows(api: Api) -> None:
    model = dcgan_model(api[0], classes=10)
    for labels in ([7], [0, 9], None):
        assert post_job(api, **draw(model, labels)).status_code == 202


@pytest.mark.parametrize(
    ("classes", "labels", "says"),
    [
        (10, [3, 10, 12], "[10, 12] are not classes of this model (0 to 9)"),
        (0, [1], "learned no classes"),
        (10, [], "at least 1 item"),
        (10, [-1], "greater than or equal to 0"),
        (10, ["seven"], "valid integer"),
    ],
    ids=["unknown-class", "unconditional-model", "empty", "negative", "not-a-number"],
)
def test_labels_a_model_cannot_draw_are_refused(
    api: Api, classes: int, labels: Any, says: str
) -> None:
    model = dcgan_model(api[0], classes)
    response = post_job(api, **draw(model, labels))
    body = assert_problem(response, 422, "validation-failed")
    assert says in body["detail"], body
    assert body["errors"][0]["field"].startswith("params.labels"), body
    assert_nothing_enqueued(api[0])
