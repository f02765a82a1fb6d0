"""The dashboard's train and generate forms are built in the page from the params schemas
``GET /v1/kinds`` serves (``api/dashboard/static/params.js``): here, that every kind's
params say what a form needs (a type, bounds, a default, a description; which params name
a dataset or a model), that the defaults a form sends untouched are accepted, and that a
refusal names the field the form shows it beside.

Fast tier: the app in this process, a real Redis, no worker. The forms themselves run in
Debian's chromium in tests/test_dashboard_browser.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import Field

from atelier.shared.kinds import KINDS
from atelier.shared.kinds.base import MODEL_REF_PATTERN, NAMES_KEYWORD, TrainParams
from tests.conftest import InProcessApi
from tests.test_dashboard import _sign_in
from tests.test_generation_params import saved_model

TYPES = {"integer", "number", "string", "boolean", "array"}
SCHEMAS = ("train_params_schema", "generate_params_schema")
TINY = {"steps": 30, "batch_size": 16, "latent_dim": 8, "base_filters": 4, "sample_every": 10}


@pytest.fixture()
def served(inprocess_api: InProcessApi) -> dict[str, dict[str, Any]]:
    return {kind["name"]: kind for kind in inprocess_api.client().kinds()}


def _inner(prop: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of ``X | None`` (``anyOf``), else the param's schema itself."""
    branches = [b for b in prop.get("anyOf", [prop]) if b.get("type") != "null"]
    assert len(branches) == 1, prop
    return dict(branches[0])


def _bounded(schema: dict[str, Any]) -> bool:
    """A number with a lower and an upper bound, a string with a limit or a closed set,
    an array with a most number of items (each bounded), or a boolean."""
    kind = schema.get("type")
    if kind in ("integer", "number"):
        low = "minimum" in schema or "exclusiveMinimum" in schema
        return low and ("maximum" in schema or "exclusiveMaximum" in schema)
    if kind == "string":
        return any(k in schema for k in ("maxLength", "pattern", "enum", NAMES_KEYWORD))
    if kind == "array":
        return "maxItems" in schema and _bounded(schema.get("items", {}))
    return kind == "boolean"


def _problems(kind: str, which: str, schema: dict[str, Any]) -> list[str]:
    required = set(schema.get("required", []))
    problems = []
    for name, prop in schema["properties"].items():
        inner = {**_inner(prop), NAMES_KEYWORD: prop.get(NAMES_KEYWORD)}
        where = f"{kind} {which} {name}"
        if inner.get("type") not in TYPES:
            problems.append(f"{where}: type {inner.get('type')!r}")
        if not _bounded({k: v for k, v in inner.items() if v is not None}):
            problems.append(f"{where}: unbounded")
        if "default" not in prop and name not in required:
            problems.append(f"{where}: no default")
        if not prop.get("description", "").strip():
            problems.append(f"{where}: no description")
        if "enum" in inner and prop.get("default") not in [*inner["enum"], None]:
            problems.append(f"{where}: default {prop.get('default')!r} not a choice")
    return problems


def test_every_param_is_typed_bounded_defaulted_and_described(
    served: dict[str, dict[str, Any]],
) -> None:
    assert set(served) == set(KINDS) and len(served) >= 3
    problems = [
        problem
        for kind, spec in served.items()
        for which in SCHEMAS
        for problem in _problems(kind, which, spec[which])
    ]
    assert problems == []
    steps = served["dcgan"]["train_params_schema"]["properties"]["steps"]
    assert (steps["type"], steps["minimum"], steps["maximum"]) == ("integer", 1, 1_000_000)
    loss = served["dcgan"]["train_params_schema"]["properties"]["loss"]
    assert (loss["enum"], loss["default"]) == (["bce", "hinge"], "bce")


def test_params_that_name_a_dataset_or_a_model_say_so(served: dict[str, dict[str, Any]]) -> None:
    for kind, spec in served.items():
        train = spec["train_params_schema"]["properties"]
        generate = spec["generate_params_schema"]["properties"]
        assert train["dataset"][NAMES_KEYWORD] == "dataset", kind
        assert generate["model_id"][NAMES_KEYWORD] == "model", kind
        others = [n for n, p in generate.items() if NAMES_KEYWORD in p and n != "model_id"]
        assert others == [], kind

        # init_model came after the forms: marked by what it takes, a model reference.
        assert train["init_model"][NAMES_KEYWORD] == "model", kind
        assert NAMES_KEYWORD not in train["steps"]

    class Later(TrainParams):  # a param added to a kind later, which takes a model
        base_model: str | None = Field(None, pattern=MODEL_REF_PATTERN, description="A model.")

    assert Later.model_json_schema()["properties"]["base_model"][NAMES_KEYWORD] == "model"


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {n: p["default"] for n, p in schema["properties"].items() if "default" in p}


def test_the_defaults_a_form_sends_untouched_are_accepted(
    inprocess_api: InProcessApi, served: dict[str, dict[str, Any]]
) -> None:
    """Every param as the form fills it in (a list for an array), for every kind: a
    training is queued, generation params validate."""
    client = inprocess_api.client()
    for kind, spec in served.items():
        job = client.submit("train", kind, _defaults(spec["train_params_schema"]))
        assert job["status"] == "queued" and job["kind"] == kind
        values = {**_defaults(spec["generate_params_schema"]), "model_id": "model_x"}
        KINDS[kind].generate_params.model_validate_json(json.dumps(values), strict=True)
    augmented = {**TINY, "augment": ["translation", "cutout"]}
    assert client.submit("train", "dcgan", augmented)["params"]["augment"] == [
        "translation",
        "cutout",
    ]


def test_a_refusal_names_the_field_a_form_shows_it_beside(inprocess_api: InProcessApi) -> None:
    """What the form cannot judge (a dataset or a model that is not there, labels a model
    did not learn) comes back as `errors[].field` = `params.<name>` (and `.index`)."""
    key = inprocess_api.raw_key("erin")
    headers = {"Authorization": f"Bearer {key}"}

    def refused(job_type: str, kind: str, params: dict[str, Any]) -> list[dict[str, str]]:
        body = {"type": job_type, "kind": kind, "params": params}
        answer = inprocess_api.http.post(inprocess_api.url("/v1/jobs"), json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.headers["Content-Type"] == "application/problem+json"
        found: list[dict[str, str]] = answer.json()["errors"]
        return found

    assert refused("train", "dcgan", {**TINY, "dataset": "no-such"}) == [
        {"field": "params.dataset", "message": "no such dataset"}
    ]
    assert refused("train", "dcgan", {**TINY, "steps": 0})[0]["field"] == "params.steps"
    unlabelled = saved_model(inprocess_api, "dcgan", {"classes": 0}, "digits")
    labels = refused("generate", "dcgan", {"model_id": unlabelled, "labels": [3]})
    assert [e["field"] for e in labels] == ["params.labels"]
    negative = refused("generate", "dcgan", {"model_id": unlabelled, "labels": [-1]})
    assert [e["field"] for e in negative] == ["params.labels.0"]
    nowhere = refused("generate", "dcgan", {"model_id": "model_none"})
    assert [e["field"] for e in nowhere] == ["params.model_id"]


def test_the_pages_build_their_forms_from_the_schemas(inprocess_api: InProcessApi) -> None:
    """No raw JSON box and no defaults written into the page: the form comes from the
    served schema, so a param added to a kind shows up with no change to the dashboard."""
    browser = inprocess_api.app.test_client()
    assert _sign_in(browser, inprocess_api.raw_key("erin")).status_code == 302  # type: ignore[attr-defined]
    jobs = browser.get("/").get_data(as_text=True)
    assert 'id="train-fields"' in jobs and "/assets/params.js" in jobs
    assert "<textarea" not in jobs and "Parameters (JSON)" not in jobs
    model_id = saved_model(inprocess_api, "dcgan", {"classes": 10}, "digits")
    page = browser.get(f"/models/{model_id}").get_data(as_text=True)
    assert f'data-kind="dcgan" data-model-id="{model_id}"' in page
    assert 'id="gen-fields"' in page and "<textarea" not in page
    script = browser.get("/assets/params.js")
    assert script.status_code == 200 and b"x-atelier-names" in script.get_data()
    script.close()
