"""Every class of bad input gets a problem+json 4xx, and nothing reaches the queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from atelier.shared.queue import queue_length
from tests.conftest import RunningStack

pytestmark = pytest.mark.slow


@pytest.fixture()
def api(local_stack: RunningStack) -> Iterator[tuple[RunningStack, dict[str, str]]]:
    key = local_stack.raw_key("erin")
    yield local_stack, {"Authorization": f"Bearer {key}"}


def assert_nothing_enqueued(stack: RunningStack) -> None:
    settings = stack.settings
    assert queue_length(stack.redis, settings.train_queue) == 0
    assert queue_length(stack.redis, settings.generate_queue) == 0
    assert stack.redis.zcard("atelier:owner:erin:jobs") == 0


def assert_problem(response: requests.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:atelier:problem:{slug}"
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def post_job(api: tuple[RunningStack, dict[str, str]], **kwargs: Any) -> requests.Response:
    stack, headers = api
    headers = {**headers, **kwargs.pop("headers", {})}
    return requests.post(stack.url("/v1/jobs"), headers=headers, timeout=10, **kwargs)


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
    api: tuple[RunningStack, dict[str, str]],
    body: dict[str, Any],
    status: int,
    slug: str,
    mentions: str,
) -> None:
    problem = assert_problem(post_job(api, json=body), status, slug)
    assert mentions in problem["detail"]
    assert_nothing_enqueued(api[0])


def test_malformed_json(api: tuple[RunningStack, dict[str, str]]) -> None:
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


def test_body_too_large(api: tuple[RunningStack, dict[str, str]]) -> None:
    huge = {"type": "train", "kind": "dcgan", "params": {"pad": "x" * (2 << 20)}}
    problem = assert_problem(post_job(api, json=huge), 413, "payload-too-large")
    assert "1048576-byte limit" in problem["detail"]
    assert_nothing_enqueued(api[0])


def test_missing_and_wrong_keys(local_stack: RunningStack) -> None:
    url = local_stack.url("/v1/jobs")
    assert_problem(requests.get(url, timeout=10), 401, "unauthorized")
    assert_problem(
        requests.get(url, headers={"Authorization": "Bearer atk_wrong"}, timeout=10),
        401,
        "unauthorized",
    )
    assert_problem(
        requests.get(url, headers={"Authorization": "Basic eDp5"}, timeout=10), 401, "unauthorized"
    )


def test_unknown_route_and_method(api: tuple[RunningStack, dict[str, str]]) -> None:
    stack, headers = api
    assert_problem(
        requests.get(stack.url("/v1/nothing"), headers=headers, timeout=10), 404, "not-found"
    )
    assert_problem(
        requests.delete(stack.url("/v1/jobs"), headers=headers, timeout=10),
        405,
        "method-not-allowed",
    )


def test_server_keeps_serving_after_bad_input(api: tuple[RunningStack, dict[str, str]]) -> None:
    for body, *_ in BAD_BODIES:
        post_job(api, json=body)
    stack, headers = api
    assert requests.get(stack.url("/v1/jobs"), headers=headers, timeout=10).status_code == 200
    assert requests.get(stack.url("/readyz"), timeout=10).json()["status"] == "ready"
