"""Sweeps (issue 25, point 6): ``POST /v1/sweeps`` makes every trial of a grid or random
space a job under one sweep id, all or nothing (a trial refused by validation or a quota
refuses the sweep, naming the trial and the field, with nothing queued or held); the sweep
ranks its trials by a final metric; cancel cancels the live trials; another owner's sweep
is a 404; trials queue fairly (another owner and the same owner's one-off job start before
most of a big sweep); the client, the CLI and the dashboard's pages.

Fast tier: the app in this process, a real Redis, no worker; the test plays the worker's
part through the job store (claims by the fair queue's own scripts)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from atelier.cli.main import main as cli_main
from atelier.client import ApiError
from atelier.shared.jobs import JobStatus, JobStore, JobType
from atelier.shared.queue import queue_length
from atelier.shared.reservations import Reservations
from atelier.shared.settings import Settings
from atelier.shared.sweep_space import RandomSpace, grid_trials, random_trials, with_overrides
from tests.conftest import TINY_TRAIN, InProcessApi
from tests.test_dashboard import _sign_in

BASE = {"type": "train", "kind": "dcgan", "params": TINY_TRAIN}


def post_sweep(api: InProcessApi, body: dict[str, Any], owner: str = "alice") -> requests.Response:
    headers = {"Authorization": f"Bearer {api.raw_key(owner)}"}
    return api.http.post(api.url("/v1/sweeps"), json=body, headers=headers)


def assert_nothing_queued(api: InProcessApi, owner: str = "alice") -> None:
    assert api.client(owner).jobs()["data"] == []
    assert queue_length(api.redis, api.settings.train_queue) == 0
    assert api.admin.zcard(f"atelier:owner:{owner}:admitting") == 0
    assert Reservations(api.redis).held(owner) == 0
    assert api.client(owner).sweeps()["data"] == []


def finish(api: InProcessApi, job_id: str, metrics: dict[str, float]) -> None:
    """What a worker leaves: the trial ran and ended with these final metrics."""
    store = JobStore(api.redis)
    claimed = store.claim(job_id, "test-worker", 60)
    assert claimed is not None and claimed.fence is not None
    done = store.finish(job_id, JobStatus.SUCCEEDED, fence=claimed.fence, metrics=metrics)
    assert done is not None


def test_the_space_makes_the_trials() -> None:
    assert grid_trials({"a": [1, 2], "b.c": ["x", "y"]}) == [
        {"a": 1, "b.c": "x"},
        {"a": 1, "b.c": "y"},
        {"a": 2, "b.c": "x"},
        {"a": 2, "b.c": "y"},
    ]
    space = RandomSpace.model_validate(
        {
            "count": 20,
            "seed": 3,
            "params": {
                "lr": {"log_uniform": [1e-5, 1e-2]},
                "n": {"uniform": [8, 64], "integer": True},
                "loss": {"choice": ["bce", "hinge"]},
            },
        }
    )
    drawn = random_trials(space)
    assert drawn == random_trials(space) and len(drawn) == 20
    assert all(1e-5 <= t["lr"] <= 1e-2 and isinstance(t["n"], int) for t in drawn)
    assert {t["loss"] for t in drawn} == {"bce", "hinge"}
    assert len({t["lr"] for t in drawn}) == 20
    assert with_overrides({"a": 1, "o": {"x": 1}}, {"o.y": 2, "p.q": 3}) == {
        "a": 1,
        "o": {"x": 1, "y": 2},
        "p": {"q": 3},
    }
    with pytest.raises(KeyError):
        with_overrides({"a": 1}, {"a.b": 2})


def test_a_grid_sweep_submits_every_trial_as_a_job(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    grid: dict[str, list[Any]] = {"generator_lr": [0.001, 0.0005], "batch_size": [16, 32, 64]}
    sweep = client.sweep(
        "train", "dcgan", TINY_TRAIN, grid=grid, name="lr x batch", tags=["lr-study"]
    )
    assert sweep["id"].startswith("sweep_") and sweep["name"] == "lr x batch"
    assert sweep["trial_count"] == 6 and sweep["status_counts"] == {"queued": 6}
    assert [t["values"] for t in sweep["trials"]][:2] == [
        {"generator_lr": 0.001, "batch_size": 16},
        {"generator_lr": 0.001, "batch_size": 32},
    ]
    assert queue_length(inprocess_api.redis, inprocess_api.settings.train_queue) == 6
    for trial in sweep["trials"]:
        job = client.get(trial["job_id"])
        assert job["sweep_id"] == sweep["id"] and job["tags"] == ["lr-study"]
        assert job["name"] == f"lr x batch #{trial['index']}"
        assert job["params"]["batch_size"] == trial["values"]["batch_size"]
        assert job["params"]["latent_dim"] == TINY_TRAIN["latent_dim"]
        assert job["params"]["discriminator_lr"] == 5e-4  # defaults filled in, as a submit does
    assert sweep["space"] == {"grid": grid} and sweep["base"]["params"] == TINY_TRAIN
    assert [s["id"] for s in client.sweeps()["data"]] == [sweep["id"]]


def test_a_random_sweep_draws_its_trials_from_the_seed(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    space = {"count": 5, "seed": 11, "params": {"generator_lr": {"log_uniform": [1e-4, 1e-2]}}}
    first = client.sweep("train", "dcgan", TINY_TRAIN, random=space)
    second = client.sweep("train", "dcgan", TINY_TRAIN, random=space)
    values = [t["values"]["generator_lr"] for t in first["trials"]]
    assert values == [t["values"]["generator_lr"] for t in second["trials"]]
    assert len(set(values)) == 5 and all(1e-4 <= v <= 1e-2 for v in values)


def test_more_trials_than_the_bound_are_refused_naming_the_count(
    inprocess_api: InProcessApi,
) -> None:
    grid = {"batch_size": list(range(16, 16 + 11)), "latent_dim": [8, 16, 32]}
    answer = post_sweep(inprocess_api, {"base": BASE, "grid": grid})
    assert answer.status_code == 422, answer.text
    assert "33 trials; at most 32" in answer.json()["detail"]
    assert answer.json()["errors"][0]["field"] == "grid"
    random = {"count": 40, "params": {"generator_lr": {"uniform": [1e-4, 1e-3]}}}
    answer = post_sweep(inprocess_api, {"base": BASE, "random": random})
    assert answer.status_code == 422 and "40 trials" in answer.json()["detail"]
    assert answer.json()["errors"][0]["field"] == "random.count"
    assert_nothing_queued(inprocess_api)


def test_one_invalid_trial_refuses_the_whole_sweep(inprocess_api: InProcessApi) -> None:
    answer = post_sweep(inprocess_api, {"base": BASE, "grid": {"batch_size": [16, 32, 4]}})
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["errors"][0]["field"] == "trials[2].params.batch_size"
    assert problem["detail"].startswith("Trial 2 (batch_size=4)") and problem["trial"] == 2
    bad_path = post_sweep(inprocess_api, {"base": BASE, "grid": {"steps.x": [1, 2]}})
    assert bad_path.status_code == 422
    assert bad_path.json()["errors"][0]["field"] == "trials[0].params.steps.x"
    spaces: list[dict[str, Any]] = [
        {},
        {"grid": {"a": []}},
        {"grid": {"bad key": [1]}},
        {"grid": {"a": [1]}, "random": {"count": 1, "params": {"a": {"choice": [1]}}}},
        {"random": {"count": 1, "params": {"a": {"uniform": [1, 2], "choice": [1]}}}},
        {"random": {"count": 1, "params": {"a": {"log_uniform": [0, 2]}}}},
    ]
    for space in spaces:
        refused = post_sweep(inprocess_api, {"base": BASE, **space})
        assert refused.status_code == 422, (space, refused.text)
    prefixed = post_sweep(inprocess_api, {"base": BASE, "grid": {"params.batch_size": [16]}})
    assert prefixed.status_code == 422
    assert "'batch_size', not 'params.batch_size'" in prefixed.json()["detail"]
    assert_nothing_queued(inprocess_api)


def test_a_quota_refusal_of_one_trial_holds_nothing(make_api: Any) -> None:
    api: InProcessApi = make_api(max_queued_jobs=3)
    answer = post_sweep(api, {"base": BASE, "grid": {"batch_size": [16, 32, 48, 64]}})
    assert answer.status_code == 403, answer.text
    problem = answer.json()
    assert problem["quota"] == "queued_jobs" and problem["trial"] == 3
    assert problem["detail"].startswith("Trial 3 (batch_size=64)")
    assert_nothing_queued(api)
    three = post_sweep(api, {"base": BASE, "grid": {"batch_size": [16, 32, 48]}})
    assert three.status_code == 202, three.text


def test_a_sweep_spends_a_submit_per_trial_all_or_nothing(make_api: Any) -> None:
    """One submit a minute refills nothing during the test: what is spent stays spent."""
    api: InProcessApi = make_api(submits_per_minute=1, submits_burst=10)
    four = post_sweep(api, {"base": BASE, "grid": {"latent_dim": [8, 16, 32, 64]}})
    assert four.status_code == 202, four.text
    assert four.headers["RateLimit"].startswith('"submits";r=6;')
    held = Reservations(api.redis).held("alice")
    widths = [16, 24, 32, 40, 48, 56, 64, 72]
    eight = post_sweep(api, {"base": BASE, "grid": {"batch_size": widths}})
    assert eight.status_code == 429, eight.text
    assert eight.headers["Content-Type"] == "application/problem+json"
    problem = eight.json()
    assert problem["type"] == "urn:atelier:problem:rate-limited" and problem["policy"] == "submits"
    # Two more submits come in two minutes (one a minute); nothing spent: six are still there.
    assert 110 <= int(eight.headers["Retry-After"]) <= 120 and problem["retry_after"] > 100
    assert eight.headers["RateLimit"].startswith('"submits";r=6;')
    assert "a sweep of 8 trials spends 8" in problem["detail"]
    assert len(api.client().jobs()["data"]) == 4 and len(api.client().sweeps()["data"]) == 1
    assert api.admin.zcard("atelier:owner:alice:admitting") == 0
    assert Reservations(api.redis).held("alice") == held > 0
    grid = {"latent_dim": list(range(8, 19))}
    too_many = post_sweep(api, {"base": BASE, "grid": grid}, owner="bob")
    assert too_many.status_code == 422, too_many.text  # 11 > the burst: it could never fit
    assert "11 trials; at most 10, your submits rate limit's burst" in too_many.json()["detail"]
    six = post_sweep(api, {"base": BASE, "grid": {"batch_size": [16, 24, 32, 40, 48, 56]}})
    assert six.status_code == 202, six.text  # the refused sweep took nothing: all six fit
    assert six.headers["RateLimit"].startswith('"submits";r=0;')
    assert post_sweep(api, {"base": BASE, "grid": {"latent_dim": [8]}}).status_code == 429
    assert len(api.client().jobs()["data"]) == 10
    assert queue_length(api.redis, api.settings.train_queue) == 10


def test_racing_sweeps_take_the_queued_quota_whole_or_not_at_all(make_api: Any) -> None:
    """Eight sweeps of two trials at once against room for five: each admitted all at once
    (one script), so exactly two fit; trial by trial, several could each hold one place,
    then all be refused for the other."""
    api: InProcessApi = make_api(max_queued_jobs=5)
    body = {"base": BASE, "grid": {"latent_dim": [8, 16]}}
    headers = {"Authorization": f"Bearer {api.raw_key()}"}
    sessions = [api.session() for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda s: s.post(api.url("/v1/sweeps"), json=body, headers=headers), sessions)
        )
    assert sorted(a.status_code for a in answers) == [202] * 2 + [403] * 6
    refused = next(a.json() for a in answers if a.status_code == 403)
    assert refused["quota"] == "queued_jobs" and refused["trial"] == 1 and refused["usage"] == 5
    assert len(api.client().jobs()["data"]) == 4
    assert api.admin.zcard("atelier:owner:alice:admitting") == 0


def test_trials_ranked_by_a_final_metric_missing_last(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    sweep = client.sweep("train", "dcgan", TINY_TRAIN, grid={"latent_dim": [8, 16, 32, 64]})
    ids = [t["job_id"] for t in sweep["trials"]]
    for job_id, loss in zip(ids[:3], (0.5, 0.2, 0.9), strict=True):
        finish(inprocess_api, job_id, {"val_loss": loss, "g_loss": 1.0})
    ascending = client.get_sweep(sweep["id"], metric="val_loss")
    assert [t["job_id"] for t in ascending["trials"]] == [ids[1], ids[0], ids[2], ids[3]]
    assert ascending["trials"][0]["metrics"]["val_loss"] == 0.2
    assert ascending["trials"][0]["status"] == "succeeded" and ascending["metric"] == "val_loss"
    descending = client.get_sweep(sweep["id"], metric="-val_loss")
    assert [t["job_id"] for t in descending["trials"]] == [ids[2], ids[0], ids[1], ids[3]]
    assert [t["job_id"] for t in client.get_sweep(sweep["id"])["trials"]] == ids
    assert client.get_sweep(sweep["id"])["status_counts"] == {"succeeded": 3, "queued": 1}


def test_cancel_cancels_every_live_trial(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    sweep = client.sweep("train", "dcgan", TINY_TRAIN, grid={"latent_dim": [8, 16, 32]})
    ids = [t["job_id"] for t in sweep["trials"]]
    finish(inprocess_api, ids[0], {"val_loss": 0.3})
    running = JobStore(inprocess_api.redis).claim(ids[1], "test-worker", 60)
    assert running is not None
    canceled = client.cancel_sweep(sweep["id"])
    assert canceled["status_counts"] == {"succeeded": 1, "canceled": 1, "running": 1}
    assert client.get(ids[1])["cancel_requested"] is True  # it stops at its next step
    assert client.get(ids[2])["status"] == "canceled"
    assert client.cancel_sweep(sweep["id"])["status_counts"]["canceled"] == 1  # again: no error


def test_another_owners_sweep_is_a_404(inprocess_api: InProcessApi) -> None:
    sweep = inprocess_api.client().sweep("train", "dcgan", TINY_TRAIN, grid={"latent_dim": [8]})
    bob = inprocess_api.client("bob")
    calls: list[Callable[[], object]] = [
        lambda: bob.get_sweep(sweep["id"]),
        lambda: bob.cancel_sweep(sweep["id"]),
        lambda: bob.get_sweep("sweep_000000000000000000000000"),
    ]
    for call in calls:
        with pytest.raises(ApiError) as refused:
            call()
        assert refused.value.status == 404
    assert bob.sweeps()["data"] == []
    assert inprocess_api.client().get(sweep["trials"][0]["job_id"])["status"] == "queued"


def test_an_idempotency_key_makes_one_sweep(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    made = [
        client.sweep(
            "train", "dcgan", TINY_TRAIN, grid={"latent_dim": [8, 16]}, idempotency_key="k-1"
        )
        for _ in range(2)
    ]
    assert made[0]["id"] == made[1]["id"]
    assert len(client.jobs()["data"]) == 2 and len(client.sweeps()["data"]) == 1
    with pytest.raises(ApiError) as reused:
        client.sweep("train", "dcgan", TINY_TRAIN, grid={"latent_dim": [32]}, idempotency_key="k-1")
    assert reused.value.status == 422


def test_a_sweep_never_starves_its_owners_other_work_or_anyone_elses(
    inprocess_api: InProcessApi,
) -> None:
    """Claims by the fair queue's own scripts: a 20-trial sweep of alice, then bob's job
    and alice's one-off job; both start among the next three starts."""
    alice, bob = inprocess_api.client(), inprocess_api.client("bob")
    sweep = alice.sweep("train", "dcgan", TINY_TRAIN, grid={"batch_size": list(range(16, 36))})
    store = JobStore(inprocess_api.redis)
    limits = Settings(max_running_jobs=100)
    first = store.claim_next(JobType.TRAIN, "w", 60, limits)
    assert first is not None and first.id == sweep["trials"][0]["job_id"]
    theirs = bob.submit("train", "dcgan", TINY_TRAIN)["id"]
    one_off = alice.submit("train", "dcgan", TINY_TRAIN)["id"]
    started = []
    for _ in range(3):
        job = store.claim_next(JobType.TRAIN, "w", 60, limits)
        assert job is not None
        started.append(job.id)
    assert theirs in started and one_off in started, started
    trial_ids = [t["job_id"] for t in sweep["trials"]]
    assert [i for i in started if i in trial_ids] == trial_ids[1:2]  # trials keep their order
    assert alice.get_sweep(sweep["id"])["status_counts"] == {"running": 2, "queued": 18}


def test_a_higher_priority_sweep_still_goes_before_lower_one_offs(
    inprocess_api: InProcessApi,
) -> None:
    alice = inprocess_api.client()
    low = alice.submit("train", "dcgan", TINY_TRAIN, priority=2)["id"]
    sweep = alice.sweep("train", "dcgan", TINY_TRAIN, grid={"latent_dim": [8, 16]}, priority=7)
    store = JobStore(inprocess_api.redis)
    limits = Settings(max_running_jobs=100)
    order = [store.claim_next(JobType.TRAIN, "w", 60, limits) for _ in range(3)]
    assert [j.id for j in order if j] == [*(t["job_id"] for t in sweep["trials"]), low]


def test_the_cli_and_the_dashboard_show_the_ranked_sweep(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = inprocess_api.client()
    monkeypatch.setattr("atelier.cli.main._client", lambda: client)
    sweep = client.sweep(
        "train", "dcgan", TINY_TRAIN, grid={"latent_dim": [8, 16, 32]}, name="widths"
    )
    ids = [t["job_id"] for t in sweep["trials"]]
    finish(inprocess_api, ids[0], {"val_loss": 0.7})
    finish(inprocess_api, ids[2], {"val_loss": 0.1})
    shown = _run_cli(["sweep", "show", sweep["id"], "--metric", "val_loss"])
    rows = shown.splitlines()
    assert rows[1].split()[:5] == ["1", "2", ids[2], "succeeded", "0.1"], shown
    assert rows[3].split()[:5] == ["3", "1", ids[1], "queued", "-"], shown
    assert sweep["id"] in _run_cli(["sweep", "list"])

    browser = inprocess_api.app.test_client()
    _sign_in(browser, inprocess_api.raw_key())
    page = browser.get(f"/sweeps/{sweep['id']}?metric=val_loss").get_data(as_text=True)
    assert page.index(ids[2]) < page.index(ids[0]) < page.index(ids[1])
    assert f'href="/compare?ids={ids[2]},{ids[0]},{ids[1]}"' in page, page
    assert sweep["id"] in browser.get("/sweeps").get_data(as_text=True)
    assert browser.get("/sweeps/sweep_000000000000000000000000").status_code == 404
    assert "canceled" in _run_cli(["sweep", "cancel", sweep["id"]])


def _run_cli(args: list[str]) -> str:
    result = CliRunner().invoke(cli_main, args)
    assert result.exit_code == 0, result.output
    return result.output
