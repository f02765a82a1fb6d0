"""A model cannot be deleted while a queued or running job needs it (issue 25): a generation
job on it, or a training job continuing it (``init_model``). The delete answers 409 naming
them until they finish, then succeeds. A submit racing the delete ends with either a job
and a model (the delete's 409) or neither (the submit's 422), never a job whose model is
gone: the interleavings are forced, and a free race is run many times.

Fast tier: the app in this process, a real Redis, no worker; the test plays the worker's
part through the job store."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from atelier.shared.jobs import JobStatus, JobStore, JobType
from atelier.shared.lifecycle import delete_model
from atelier.shared.model_users import NAMED_USERS, ModelUsers
from atelier.shared.models import ModelRecord, ModelStore
from atelier.shared.storage import make_object_store
from tests.conftest import InProcessApi
from tests.test_continue import record

OWNER = "erin"


def headers(app: InProcessApi) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.raw_key(OWNER)}"}


def generate(app: InProcessApi, model_id: str) -> requests.Response:
    body = {"type": "generate", "kind": "dcgan", "params": {"model_id": model_id, "n": 4}}
    return app.http.post(app.url("/v1/jobs"), json=body, headers=headers(app))


def delete(app: InProcessApi, model_id: str) -> requests.Response:
    return app.http.delete(app.url(f"/v1/models/{model_id}"), headers=headers(app))


def users(app: InProcessApi, model_id: str) -> list[str]:
    return ModelUsers(app.redis).of(model_id)


def test_a_model_is_kept_while_unfinished_jobs_need_it(inprocess_api: InProcessApi) -> None:
    app = inprocess_api
    model = record(app)
    generation = generate(app, model.id)
    assert generation.status_code == 202, generation.text
    body = {"type": "train", "kind": "dcgan", "params": {"init_model": model.id, "steps": 10}}
    training = app.http.post(app.url("/v1/jobs"), json=body, headers=headers(app))
    assert training.status_code == 202, training.text
    gen_id, train_id = generation.json()["id"], training.json()["id"]
    assert users(app, model.id) == sorted([gen_id, train_id])

    refused = delete(app, model.id)
    assert refused.status_code == 409, refused.text
    assert refused.headers["Content-Type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "urn:atelier:problem:conflict"
    assert sorted(problem["jobs"]) == sorted([gen_id, train_id]) and problem["job_count"] == 2
    assert f"{gen_id} (generate, queued)" in problem["detail"]
    assert app.client(OWNER).model(model.id)["id"] == model.id

    store = JobStore(app.redis)
    running = store.claim(train_id, "test-worker", 60)
    assert running is not None and running.fence is not None
    app.client(OWNER).cancel(gen_id)
    still = delete(app, model.id)
    assert still.status_code == 409 and still.json()["jobs"] == [train_id]
    assert f"{train_id} (train, running)" in still.json()["detail"]
    assert store.finish(train_id, JobStatus.SUCCEEDED, fence=running.fence) is not None

    assert users(app, model.id) == []
    gone = delete(app, model.id)
    assert gone.status_code == 204, gone.text
    assert app.http.get(app.url(f"/v1/models/{model.id}"), headers=headers(app)).status_code == 404


def test_the_refusal_names_a_bounded_number_of_jobs(inprocess_api: InProcessApi) -> None:
    app = inprocess_api
    model = record(app)
    made = [generate(app, model.id).json()["id"] for _ in range(NAMED_USERS + 3)]
    problem = delete(app, model.id).json()
    assert problem["job_count"] == NAMED_USERS + 3 and len(problem["jobs"]) == NAMED_USERS
    assert set(problem["jobs"]) <= set(made) and "and 3 more" in problem["detail"]


def test_a_stale_member_does_not_hold_the_model(inprocess_api: InProcessApi) -> None:
    """A job id left in the set whose job is over or gone (it should never be) is dropped."""
    app = inprocess_api
    model = record(app)
    app.redis.sadd(f"atelier:model:{model.id}:users", "job_gone")
    assert delete(app, model.id).status_code == 204
    assert app.redis.exists(f"atelier:model:{model.id}:users") == 0


def test_a_delete_between_a_submits_checks_and_its_create_refuses_the_submit(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submit found the model, then the delete ran before its create's MULTI: the
    submit looks again after its create, takes its job back and answers 422."""
    app = inprocess_api
    model = record(app)
    store = JobStore(app.redis)
    create = JobStore.create

    def delete_first(self: JobStore, *args: Any, **kwargs: Any) -> Any:
        _delete_directly(app, model)
        return create(self, *args, **kwargs)

    monkeypatch.setattr(JobStore, "create", delete_first)
    refused = generate(app, model.id)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"] == "urn:atelier:problem:unknown-model"
    assert problem["errors"][0]["field"] == "params.model_id"
    assert store.list_for_owner(OWNER, limit=10)[0] == []
    assert users(app, model.id) == []
    assert app.admin.zcard(f"atelier:owner:{OWNER}:admitting") == 0


def test_a_submit_between_a_deletes_read_and_its_multi_makes_the_delete_look_again(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete read an empty set, then a job needing the model was created before the
    delete's MULTI: the WATCH aborts it, and the delete, looking again, is a 409."""
    app = inprocess_api
    model = record(app)
    delete_in = ModelStore.delete_in
    made: list[str] = []

    def submit_first(self: ModelStore, *args: Any, **kwargs: Any) -> None:
        if not made:  # another connection: the delete's pipeline is mid-transaction
            params = {"model_id": model.id}
            job = JobStore(app.redis).create(OWNER, JobType.GENERATE, "dcgan", params)
            made.append(job.id)
        delete_in(self, *args, **kwargs)

    monkeypatch.setattr(ModelStore, "delete_in", submit_first)
    with pytest.raises(Exception) as refused:
        _delete_directly(app, model)
    assert getattr(refused.value, "status", None) == 409, refused.value
    assert getattr(refused.value, "extensions", {})["jobs"] == made
    assert ModelStore(app.redis).get(model.id) is not None


def test_submits_racing_deletes_never_leave_a_job_without_its_model(
    inprocess_api: InProcessApi,
) -> None:
    """A free race, 40 times: a submit and a delete of a fresh model released together."""
    app = inprocess_api
    outcomes: dict[tuple[int, int], int] = {}
    for _ in range(40):
        model = record(app)
        pair = _race(app, model.id)
        outcomes[pair] = outcomes.get(pair, 0) + 1
        exists = ModelStore(app.redis).get(model.id) is not None
        assert pair in {(202, 409), (422, 204)}, pair
        assert exists == (pair == (202, 409))
        assert len(users(app, model.id)) == (1 if exists else 0)
    print(f"submit/delete outcomes over 40 races: {outcomes}")


def _race(app: InProcessApi, model_id: str) -> tuple[int, int]:
    """The statuses of a submit on the model and its delete, sent at the same moment."""
    answers: dict[str, int] = {}
    start = threading.Barrier(2)
    sessions = {"submit": app.session(), "delete": app.session()}

    def run(what: str) -> None:
        session = sessions[what]
        start.wait()
        if what == "submit":
            body = {"type": "generate", "kind": "dcgan", "params": {"model_id": model_id}}
            sent = session.post(app.url("/v1/jobs"), json=body, headers=headers(app))
        else:
            sent = session.delete(app.url(f"/v1/models/{model_id}"), headers=headers(app))
        answers[what] = sent.status_code

    threads = [threading.Thread(target=run, args=(what,)) for what in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers["submit"], answers["delete"]


def _delete_directly(app: InProcessApi, model: ModelRecord) -> None:
    """What ``DELETE /v1/models/{id}`` does, from another connection."""
    objects = make_object_store(app.settings)
    delete_model(JobStore(app.redis), ModelStore(app.redis), objects, model)
