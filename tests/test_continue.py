"""Continuing a model (issue 25, point 3): a training job with ``init_model`` starts from a
model of its kind, takes what it leaves out from the model, and is refused at submit (422
naming the difference, nothing enqueued) when it cannot continue it. The new model records
its lineage, shown by ``GET /v1/models/{id}`` and the dashboard's model page.

Fast tier: the app in this process, a real Redis, no worker, no TensorFlow; the models are
recorded as a training job's success records them (``ModelStore.save_in``). One slow test
trains a tiny DCGAN on a stack, continues it and checks the child started from the
parent's weights, counts its steps on from the parent's and records its lineage.
"""

from __future__ import annotations

import io
import time
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from atelier.cli.main import main as cli_main
from atelier.shared.models import ModelRecord, ModelStore
from atelier.shared.storage import make_object_store
from tests.conftest import TINY_TRAIN, InProcessApi, RunningStack
from tests.test_api_errors import Api, assert_nothing_enqueued, assert_problem, post_job
from tests.test_dashboard import _sign_in

DIGITS_GAN = {"image_size": 28, "channels": 1, "latent_dim": 8, "base_filters": 4, "classes": 10}
GAN_PARAMS = {
    "dataset": "digits",
    "latent_dim": 8,
    "base_filters": 4,
    "conditional": True,
    "spectral_norm": False,
    "minibatch_std": False,
    "pack": 1,
    "generator_lr": 0.0002,
    "loss": "hinge",
    "augment": [],
    "steps": 40,
    "seed": 3,
}
TEXT_MODEL = {
    "sequence_length": 64,
    "num_layers": 1,
    "num_heads": 2,
    "hidden_dim": 32,
    "dropout": 0.0,
    "vocabulary_size": 256,
}
TUNE_MODEL = {**TEXT_MODEL, "vocabulary": ["<pad>", "<tune>", "</tune>", "A"], "headers": []}


@pytest.fixture()
def api(inprocess_api: InProcessApi) -> Api:
    key = inprocess_api.raw_key("erin")
    return inprocess_api, {"Authorization": f"Bearer {key}"}


def record(
    app: InProcessApi,
    kind: str = "dcgan",
    config: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    owner: str = "erin",
    **fields: Any,
) -> ModelRecord:
    """A model as a training job's success records it."""
    model = ModelRecord(
        id=ModelStore.new_id(),
        owner=owner,
        kind=kind,
        config=DIGITS_GAN if config is None else config,
        weights_key=f"owners/{owner}/models/x/weights.npz",
        source_job_id=f"job_{time.monotonic_ns()}",
        dataset=fields.pop("dataset", "digits"),
        steps=fields.pop("steps", 40),
        created_at=time.time(),
        params=GAN_PARAMS if params is None and kind == "dcgan" else params or {},
        **fields,
    )
    return ModelStore(app.redis).save(model)


def train(kind: str, **params: Any) -> dict[str, Any]:
    return {"json": {"type": "train", "kind": kind, "params": params}}


def refused(api: Api, body: dict[str, Any], field: str, slug: str = "validation-failed") -> str:
    """The submit's 422: its ``errors`` name ``field``; nothing was enqueued or recorded."""
    problem = assert_problem(post_job(api, **body), 422, slug)
    assert field in [e["field"] for e in problem["errors"]], problem
    assert_nothing_enqueued(api[0])
    return str(problem["detail"])


def test_a_model_that_is_not_the_callers_is_refused(api: Api) -> None:
    app = api[0]
    theirs = record(app, owner="finn")
    gone = record(app)
    ModelStore(app.redis).delete(gone)
    for ref in ("model_" + "0" * 32, theirs.id, gone.id, "nameless:latest", "nameless:2"):
        detail = refused(api, train("dcgan", init_model=ref), "params.init_model", "unknown-model")
        assert ref in detail


def test_a_malformed_reference_is_refused_by_the_schema(api: Api) -> None:
    for ref in ("", "a b", "name:0", "name:first", 7):
        refused(api, train("dcgan", init_model=ref), "params.init_model")


def test_a_model_of_another_kind_is_refused(api: Api) -> None:
    text = record(api[0], "textgen", TEXT_MODEL, dataset="fables")
    detail = refused(api, train("dcgan", init_model=text.id), "params.init_model", "unknown-model")
    assert "'textgen' model" in detail
    gan = record(api[0])
    detail = refused(api, train("textgen", init_model=gan.id), "params.init_model", "unknown-model")
    assert "'dcgan' model" in detail


@pytest.mark.parametrize(
    ("kind", "config", "params", "given"),
    [
        ("dcgan", DIGITS_GAN, None, {"latent_dim": 16}),
        ("dcgan", DIGITS_GAN, None, {"base_filters": 8, "pack": 2}),
        ("dcgan", DIGITS_GAN, None, {"spectral_norm": True}),
        ("dcgan", DIGITS_GAN, None, {"conditional": False}),
        ("dcgan", {**DIGITS_GAN, "classes": 0}, {}, {"conditional": True}),
        ("textgen", TEXT_MODEL, {}, {"num_layers": 2}),
        ("textgen", TEXT_MODEL, {}, {"vocabulary_size": 1024}),
        ("textgen", TEXT_MODEL, {**TEXT_MODEL, "vocabulary_size": 512}, {"vocabulary_size": 256}),
        ("melody", TUNE_MODEL, {}, {"hidden_dim": 64, "sequence_length": 128}),
    ],
)
def test_a_network_shape_other_than_the_models_is_refused(
    api: Api, kind: str, config: dict[str, Any], params: dict[str, Any] | None, given: Any
) -> None:
    """Each differing param is named, with the model's value."""
    parent = record(api[0], kind, config, params, dataset={"dcgan": "digits"}.get(kind, "x"))
    problem = assert_problem(
        post_job(api, **train(kind, init_model=parent.id, **given)), 422, "validation-failed"
    )
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert set(fields) == {f"params.{name}" for name in given}, problem
    for name in given:
        assert f"the model has {name}=" in fields[f"params.{name}"]
    assert_nothing_enqueued(api[0])


def test_a_dataset_of_another_shape_is_refused(api: Api) -> None:
    """The model's image size and channels; a conditional model's number of classes."""
    colour = record(api[0], config={**DIGITS_GAN, "image_size": 32, "channels": 3})
    detail = refused(api, train("dcgan", init_model=colour.id), "params.dataset")
    assert "28 px with 1 channel(s)" in detail and "32 px with 3" in detail
    digits = record(api[0])
    detail = refused(api, train("dcgan", init_model=digits.id, dataset="shapes"), "params.dataset")
    assert "it has 3 classes; the model learned 10" in detail


def test_what_the_job_leaves_out_is_the_models(api: Api) -> None:
    """Shape, dataset and recipe from the model; each run's own params at their defaults;
    the job keeps the model it was given by name, by id."""
    app = api[0]
    parent = record(app, name="gan")
    answer = post_job(
        api, **train("dcgan", init_model="gan:latest", steps=20, discriminator_lr=0.01)
    )
    assert answer.status_code == 202, answer.text
    params = answer.json()["params"]
    assert params["init_model"] == parent.id
    for name in ("dataset", "latent_dim", "base_filters", "conditional", "generator_lr", "loss"):
        assert params[name] == GAN_PARAMS[name], name
    assert (params["steps"], params["discriminator_lr"], params["seed"]) == (20, 0.01, 0)
    # The shape given as the model has it is accepted, and another dataset of its shape.
    again = train("dcgan", init_model=parent.id, latent_dim=8, conditional=True, dataset="digits")
    assert post_job(api, **again).status_code == 202


def test_a_record_without_params_gives_its_config_and_dataset(api: Api) -> None:
    """Models from before records kept their params: the shape their config implies."""
    text = record(api[0], "textgen", {**TEXT_MODEL, "vocabulary_size": 1000}, {}, dataset="fables")
    answer = post_job(api, **train("textgen", init_model=text.id, steps=5))
    assert answer.status_code == 202, answer.text
    params = answer.json()["params"]
    assert {k: params[k] for k in TEXT_MODEL if k != "dropout"} == {
        **{k: v for k, v in TEXT_MODEL.items() if k != "dropout"},
        "vocabulary_size": 1000,
    }
    assert params["dataset"] == "fables" and params["learning_rate"] == 3e-3


def test_the_model_shows_its_parent_and_lineage(api: Api) -> None:
    app, headers = api
    grandparent = record(app, name="gan")
    parent = record(app, steps=80, lineage=grandparent.child_lineage())
    child = record(app, steps=120, lineage=parent.child_lineage())
    body = app.http.get(app.url(f"/v1/models/{child.id}"), headers=headers, timeout=10).json()
    assert body["parent"] == {
        "model_id": parent.id,
        "job_id": parent.source_job_id,
        "steps": 80,
        "name": None,
    }
    assert [(a["model_id"], a["steps"], a["name"]) for a in body["lineage"]] == [
        (parent.id, 80, None),
        (grandparent.id, 40, "gan"),
    ]
    assert body["params"]["loss"] == "hinge"
    # Deleting an ancestor leaves the lineage as recorded.
    ModelStore(app.redis).delete(grandparent)
    again = app.http.get(app.url(f"/v1/models/{child.id}"), headers=headers, timeout=10).json()
    assert again["lineage"] == body["lineage"]
    first = app.http.get(app.url(f"/v1/models/{parent.id}"), headers=headers, timeout=10).json()
    assert first["parent"]["model_id"] == grandparent.id
    alone = record(app)
    body = app.http.get(app.url(f"/v1/models/{alone.id}"), headers=headers, timeout=10).json()
    assert (body["parent"], body["lineage"]) == (None, [])


def test_dashboard_model_page_shows_the_lineage(inprocess_api: InProcessApi) -> None:
    parent = record(inprocess_api, owner="alice", name="gan")
    child = record(inprocess_api, owner="alice", steps=100, lineage=parent.child_lineage())
    browser = inprocess_api.app.test_client()
    assert _sign_in(browser, inprocess_api.raw_key()).status_code == 302  # type: ignore[attr-defined]
    text = browser.get(f"/models/{child.id}").get_data(as_text=True)
    assert 'id="model-lineage"' in text
    assert "this model: steps 41 to 100" in text
    assert f"<code>{parent.id}</code></a> (gan), 40 steps" in text
    assert f"compare?ids={parent.source_job_id},{child.source_job_id}" in text.replace("%2C", ",")
    alone = browser.get(f"/models/{parent.id}").get_data(as_text=True)
    assert 'id="model-lineage"' not in alone


def test_client_and_cli_continue_a_model(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = inprocess_api.client()
    parent = record(inprocess_api, owner="alice", name="gan")
    job = client.continue_training("gan:latest", {"steps": 10})
    assert (job["kind"], job["params"]["init_model"], job["params"]["steps"]) == (
        "dcgan",
        parent.id,
        10,
    )
    monkeypatch.setattr("atelier.cli.main._client", lambda: client)
    done = CliRunner().invoke(
        cli_main, ["submit", "train", "--init-model", "gan:1", "-p", "steps=5"]
    )
    assert done.exit_code == 0, done.output
    assert client.get(done.output.strip())["params"]["init_model"] == parent.id
    misuse = CliRunner().invoke(cli_main, ["submit", "generate", "--init-model", "gan:1"])
    assert misuse.exit_code == 2 and "needs a train job" in misuse.output


# --- slow: a real continuation on a stack ------------------------------------------------------


def weights_of(stack: RunningStack, model_id: str) -> dict[str, np.ndarray]:
    """A model's weights file, as stored."""
    record = ModelStore(stack.redis).get(model_id)
    assert record is not None
    data = make_object_store(stack.settings).get_bytes(record.weights_key)
    with np.load(io.BytesIO(data)) as arrays:
        return {name: arrays[name] for name in arrays.files}


@pytest.mark.slow
def test_a_continued_dcgan_starts_from_its_parent(local_stack: RunningStack) -> None:
    """A tiny parent, then a child on it: the child's first losses are near the parent's
    last, its steps count on from the parent's, its D and G are the parent's trained on,
    and its record has the lineage."""
    client = local_stack.client("ivy")
    base = {**TINY_TRAIN, "steps": 40, "sample_every": 20, "checkpoint_every": 20}
    parent_job = client.wait(
        client.submit("train", "dcgan", {**base, "model_name": "tiny"})["id"], timeout=180
    )
    assert parent_job["status"] == "succeeded", parent_job["error"]
    child_job = client.wait(
        # Another seed: a child that did not load its parent would start far from it.
        client.continue_training("tiny:latest", {"steps": 20, "seed": 1})["id"],
        timeout=180,
    )
    assert child_job["status"] == "succeeded", child_job["error"]
    assert parent_job["model_id"] and child_job["model_id"]
    parent = client.model(parent_job["model_id"])
    child = client.model(child_job["model_id"])
    assert child["steps"] == 60 and child_job["progress"]["step"] == 60
    assert child["parent"] == {
        "model_id": parent["id"],
        "job_id": parent_job["id"],
        "steps": 40,
        "name": "tiny",
    }
    assert child["params"]["init_model"] == parent["id"]
    curves = client.request("GET", f"/v1/jobs/{child_job['id']}/metrics")
    steps = [point["step"] for point in curves["series"]["train"]]
    assert steps[0] == 41 and steps[-1] == 60, steps
    logs = "\n".join(client.request("GET", f"/v1/jobs/{child_job['id']}/logs")["lines"])
    assert f"continuing {parent['id']} from step 40: G and D" in logs
    # The child's networks are the parent's trained on: close to them, not a fresh draw.
    before, after = weights_of(local_stack, parent["id"]), weights_of(local_stack, child["id"])
    assert set(before) == set(after) and {"g/0", "d/0", "g_train/0"} <= set(before)
    for group in ("g_train", "d", "g"):
        names = [k for k in before if k.startswith(f"{group}/")]
        moved = sum(float(np.abs(after[k] - before[k]).sum()) for k in names)
        size = sum(float(np.abs(before[k]).sum()) for k in names)
        # 20 steps move a trained network a little; a fresh draw is ~1.3 of it away.
        assert moved / size < 0.5, (group, moved / size)
