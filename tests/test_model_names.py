"""Models by name and version (issue 25, point 4): a training job's ``model_name`` makes
that name's next version, and ``name:N`` / ``name:latest`` work wherever a model id does
(generate's ``model_id``, GET and DELETE /v1/models/...). Versions never move: a deleted
one leaves its number empty.

Fast tier: the app in this process, a real Redis, no worker, no TensorFlow. The models are
recorded as a training job's success records them (``ModelStore.save_in``).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from atelier.shared.models import ModelRecord, ModelStore
from tests.conftest import InProcessApi
from tests.test_api_errors import Api, assert_nothing_enqueued, assert_problem, post_job
from tests.test_dashboard import _sign_in

DIGITS_GAN = {"image_size": 28, "channels": 1, "latent_dim": 8, "base_filters": 4}


@pytest.fixture()
def api(inprocess_api: InProcessApi) -> Api:
    key = inprocess_api.raw_key("erin")
    return inprocess_api, {"Authorization": f"Bearer {key}"}


def trained(app: InProcessApi, name: str | None, owner: str = "erin") -> str:
    model = ModelRecord(
        id=ModelStore.new_id(),
        owner=owner,
        kind="dcgan",
        config=DIGITS_GAN,
        weights_key=f"owners/{owner}/models/x/weights.npz",
        source_job_id="job_x",
        dataset="digits",
        steps=10,
        created_at=time.time(),
        name=name,
    )
    return ModelStore(app.redis).save(model).id


def get_model(api: Api, ref: str) -> Any:
    app, headers = api
    return app.http.get(app.url(f"/v1/models/{ref}"), headers=headers, timeout=10)


def generate(model_ref: str) -> dict[str, Any]:
    return {"json": {"type": "generate", "kind": "dcgan", "params": {"model_id": model_ref}}}


def test_versions_count_up_and_latest_follows(api: Api) -> None:
    app = api[0]
    first, second, third = (trained(app, "digits-gan") for _ in range(3))
    trained(app, None)  # an unnamed model takes no version
    trained(app, "digits-gan", owner="finn")  # someone else's name is theirs
    for ref, expected, version in [
        ("digits-gan:1", first, 1),
        ("digits-gan:2", second, 2),
        ("digits-gan:latest", third, 3),
        (third, third, 3),
    ]:
        answer = get_model(api, ref)
        assert answer.status_code == 200, (ref, answer.text)
        body = answer.json()
        assert (body["id"], body["name"], body["version"]) == (expected, "digits-gan", version)
    listed = app.http.get(app.url("/v1/models"), headers=api[1], timeout=10).json()["data"]
    assert sorted((m["name"] or "", m["version"] or 0) for m in listed) == [
        ("", 0),
        ("digits-gan", 1),
        ("digits-gan", 2),
        ("digits-gan", 3),
    ]
    for missing in ("digits-gan:4", "other:latest", "other:1"):
        assert_problem(get_model(api, missing), 404, "not-found")


def test_a_deleted_version_keeps_the_numbers(api: Api) -> None:
    app, headers = api
    first, second, third = (trained(app, "gan") for _ in range(3))
    deleted = app.http.delete(app.url("/v1/models/gan:latest"), headers=headers, timeout=10)
    assert deleted.status_code == 204, deleted.text
    assert get_model(api, "gan:latest").json()["id"] == second
    assert_problem(get_model(api, "gan:3"), 404, "not-found")
    assert app.http.delete(app.url("/v1/models/gan:1"), headers=headers, timeout=10).ok
    assert get_model(api, "gan:2").json()["version"] == 2
    fourth = trained(app, "gan")
    body = get_model(api, "gan:latest").json()
    assert (body["id"], body["version"]) == (fourth, 4)
    assert first != fourth and third != fourth
    for gone in (second, fourth):
        assert app.http.delete(app.url(f"/v1/models/{gone}"), headers=headers, timeout=10).ok
    assert_problem(get_model(api, "gan:latest"), 404, "not-found")


def test_generate_takes_a_name_and_keeps_the_version_by_id(api: Api) -> None:
    app = api[0]
    trained(app, "gan")
    newest = trained(app, "gan")
    trained(app, "gan", owner="finn")
    answer = post_job(api, **generate("gan:latest"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["params"]["model_id"] == newest
    # A later version does not change what the queued job generates from.
    trained(app, "gan")
    job = app.http.get(app.url(f"/v1/jobs/{answer.json()['id']}"), headers=api[1], timeout=10)
    assert job.json()["params"]["model_id"] == newest


@pytest.mark.parametrize(
    "ref", ["gan:0", "gan:latest:1", "gan:", ":latest", "gan:01", "gan:LATEST", "g an:1", "."]
)
def test_a_malformed_model_reference_is_refused(api: Api, ref: str) -> None:
    trained(api[0], "gan")
    body = assert_problem(post_job(api, **generate(ref)), 422, "validation-failed")
    assert any(e["field"] == "params.model_id" for e in body["errors"]), body
    assert_nothing_enqueued(api[0])


def test_someone_elses_name_is_no_model_of_yours(api: Api) -> None:
    trained(api[0], "theirs", owner="finn")
    body = assert_problem(post_job(api, **generate("theirs:latest")), 422, "unknown-model")
    assert "theirs:latest" in body["detail"]
    assert_problem(get_model(api, "theirs:1"), 404, "not-found")
    assert_nothing_enqueued(api[0])


@pytest.mark.parametrize(
    "name", ["", ".hidden", "a:b", "a/b", "x" * 65, "space d", "ünï", "-dash"]
)
def test_a_bad_model_name_is_refused_at_submit(api: Api, name: str) -> None:
    params = {"dataset": "digits", "steps": 10, "model_name": name}
    answer = post_job(api, json={"type": "train", "kind": "dcgan", "params": params})
    body = assert_problem(answer, 422, "validation-failed")
    assert any(e["field"] == "params.model_name" for e in body["errors"]), body
    assert_nothing_enqueued(api[0])


def test_a_model_name_is_kept_in_the_training_params(api: Api) -> None:
    params = {"dataset": "digits", "steps": 10, "model_name": "digits_v2.small-1"}
    answer = post_job(api, json={"type": "train", "kind": "dcgan", "params": params})
    assert answer.status_code == 202, answer.text
    assert answer.json()["params"]["model_name"] == "digits_v2.small-1"


def test_the_dashboard_shows_names_and_opens_latest(inprocess_api: InProcessApi) -> None:
    trained(inprocess_api, "gan", owner="alice")
    newest = trained(inprocess_api, "gan", owner="alice")
    browser = inprocess_api.app.test_client()
    assert _sign_in(browser, inprocess_api.raw_key()).status_code == 302  # type: ignore[attr-defined]
    listing = browser.get("/models").get_data(as_text=True)
    assert ">gan v1</a>" in listing and ">gan v2</a>" in listing
    page = browser.get("/models/gan:latest")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert f"<code>{newest}</code>" in text and "<code>gan:2</code>" in text
    assert browser.get("/models/gan:3").status_code == 404
