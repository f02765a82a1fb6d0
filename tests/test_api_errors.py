"""Every class of bad input gets a problem+json 4xx, and nothing reaches the queue.

Fast tier: the app in this process (``inprocess_api``), a real Redis, no worker."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests

from atelier.shared.queue import queue_length
from tests.conftest import InProcessApi

Api = tuple[InProcessApi, dict[str, str]]


@pytest.fixture()
def api(inprocess_api: InProcessApi) -> Api:
    key = inprocess_api.raw_key("erin")
    return inprocess_api, {"Authorization": f"Bearer {key}"}


def assert_nothing_enqueued(api: InProcessApi) -> None:
    settings = api.settings
    assert queue_length(api.redis, settings.train_queue) == 0
    assert queue_length(api.redis, settings.generate_queue) == 0
    assert api.redis.zcard("atelier:owner:erin:jobs") == 0


def assert_problem(response: requests.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:atelier:problem:{slug}"
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def post_job(api: Api, **kwargs: Any) -> requests.Response:
    app, headers = api
    headers = {**headers, **kwargs.pop("headers", {})}
    return app.http.post(app.url("/v1/jobs"), headers=headers, timeout=10, **kwargs)


BAD_BODIES = [
    ({"type": "train", "kind": "stylegan"}, 422, "unknown-kind", "stylegan"),
    (
        {"type": "train", "kind": "dcgan", "params": {"steps": 0}},
        422,
        "validation-failed",
        "params.steps: Input should be greater than or equal to 1 (allowed: 1 <= steps <= 1000000)",
    ),
    (
        {"type": "train", "kind": "dcgan", "params": {"batch_size": 4096}},
        422,
        "validation-failed",
        "params.batch_size",
    ),
    (
        {"type": "train", "kind": "dcgan", "params": {"stepz": 5}},
        422,
        "validation-failed",
        "params.stepz: Extra inputs are not permitted",
    ),
    (
        {"type": "train", "kind": "dcgan", "params": {"dataset": "cifar"}},
        422,
        "unknown-dataset",
        "'cifar'",
    ),
    (
        {"type": "generate", "kind": "dcgan", "params": {"model_id": "model_nope"}},
        422,
        "unknown-model",
        "model_nope",
    ),
    (
        {"type": "generate", "kind": "dcgan", "params": {}},
        422,
        "validation-failed",
        "params.model_id: Field required",
    ),
    ({"type": "sing", "kind": "dcgan"}, 422, "validation-failed", "type"),
]


@pytest.mark.parametrize(("body", "status", "slug", "mentions"), BAD_BODIES)
def test_bad_job_bodies(
    api: Api, body: dict[str, Any], status: int, slug: str, mentions: str
) -> None:
    problem = assert_problem(post_job(api, json=body), status, slug)
    assert mentions in problem["detail"]
    assert_nothing_enqueued(api[0])


# Each 422 names the field to fix in ``errors``, not only in the prose of ``detail``.
FIELD_ERRORS = [
    ({"type": "train", "kind": "stylegan"}, "kind"),
    ({"type": "train", "kind": "dcgan", "params": {"steps": 0}}, "params.steps"),
    ({"type": "train", "kind": "dcgan", "params": {"dataset": "cifar"}}, "params.dataset"),
    ({"type": "generate", "kind": "dcgan", "params": {"model_id": "m"}}, "params.model_id"),
    ({"type": "sing", "kind": "dcgan"}, "type"),
    ({"kind": "dcgan"}, "type"),
    ({"type": "train", "kind": "dcgan", "max_run_seconds": -1}, "max_run_seconds"),
    ({"type": "train", "kind": "dcgan", "start_before": "2020-01-01T00:00:00Z"}, "start_before"),
    ({"type": "train", "kind": "dcgan", "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("body", "field"), FIELD_ERRORS)
def test_each_422_names_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = post_job(api, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == [field], problem
    assert all(e["message"] for e in problem["errors"])
    assert_nothing_enqueued(api[0])


def test_malformed_json(api: Api) -> None:
    as_json = {"Content-Type": "application/json"}
    response = post_job(api, data='{"type": "train",', headers=as_json)
    assert "not valid JSON" in assert_problem(response, 400, "malformed-request")["detail"]
    response = post_job(api, data="[1, 2]", headers=as_json)
    assert "JSON object" in assert_problem(response, 400, "malformed-request")["detail"]
    response = post_job(
        api, data="type=train", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert "application/json" in assert_problem(response, 400, "malformed-request")["detail"]
    assert_nothing_enqueued(api[0])


@pytest.mark.parametrize("body", [b"\xff\xfe not utf-8", b'{"type": "train"', b"null", b'"x"'])
def test_any_malformed_body_is_a_400_on_every_post(api: Api, body: bytes) -> None:
    app, headers = api
    job_id = app.client("erin").submit("train", "dcgan", {})["id"]
    as_json = {**headers, "Content-Type": "application/json"}
    for path in ("/v1/jobs", f"/v1/jobs/{job_id}/cancel"):
        response = app.http.post(app.url(path), data=body, headers=as_json, timeout=10)
        assert_problem(response, 400, "malformed-request")
    assert app.client("erin").get(job_id)["status"] == "queued"  # the cancel never ran


def test_body_too_large(api: Api) -> None:
    huge = {"type": "train", "kind": "dcgan", "params": {"pad": "x" * (2 << 20)}}
    problem = assert_problem(post_job(api, json=huge), 413, "payload-too-large")
    assert "1048576-byte limit" in problem["detail"]
    assert_nothing_enqueued(api[0])


def test_missing_and_wrong_keys(inprocess_api: InProcessApi) -> None:
    url = inprocess_api.url("/v1/jobs")
    http = inprocess_api.http
    assert_problem(http.get(url, timeout=10), 401, "unauthorized")
    assert_problem(
        http.get(url, headers={"Authorization": "Bearer atk_wrong"}, timeout=10),
        401,
        "unauthorized",
    )
    assert_problem(
        http.get(url, headers={"Authorization": "Basic eDp5"}, timeout=10), 401, "unauthorized"
    )


def v1_routes(api: InProcessApi) -> list[tuple[str, str]]:
    """(method, path) of every authenticated route, placeholders filled with a made-up id."""
    routes = []
    for rule in api.app.url_map.iter_rules():
        if not rule.endpoint.startswith("v1."):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?[^<>]+>", "x_1", rule.rule)
        routes += [(m, path) for m in sorted(rule.methods or ()) if m not in {"HEAD", "OPTIONS"}]
    return routes


@pytest.mark.parametrize(
    "authorization", [None, "Bearer atk_wrong", "Bearer ", "Basic eDp5", "atk_no_scheme"]
)
def test_every_v1_route_wants_a_key(inprocess_api: InProcessApi, authorization: str | None) -> None:
    routes = v1_routes(inprocess_api)
    assert len(routes) >= 10, routes  # jobs, models, datasets, kinds, files
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in routes:
        response = inprocess_api.http.request(
            method, inprocess_api.url(path), headers=headers, timeout=10
        )
        problem = assert_problem(response, 401, "unauthorized")
        assert problem["instance"] == path
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="atelier"'


def test_probes_and_docs_need_no_key(inprocess_api: InProcessApi) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/v1/docs/redoc/"):
        assert inprocess_api.http.get(inprocess_api.url(path), timeout=10).status_code == 200


def test_unknown_route_and_method(api: Api) -> None:
    app, headers = api
    assert_problem(
        app.http.get(app.url("/v1/nothing"), headers=headers, timeout=10), 404, "not-found"
    )
    assert_problem(
        app.http.delete(app.url("/v1/jobs"), headers=headers, timeout=10),
        405,
        "method-not-allowed",
    )


def test_server_keeps_serving_after_bad_input(api: Api) -> None:
    for body, *_ in BAD_BODIES:
        post_job(api, json=body)
    app, headers = api
    assert app.http.get(app.url("/v1/jobs"), headers=headers, timeout=10).status_code == 200
    assert app.http.get(app.url("/readyz"), timeout=10).json()["status"] == "ready"
