"""Compare runs (issue 25, point 2): ``GET /v1/jobs/compare`` with real jobs, their curves
and samples written as a worker writes them, the bounds and the ownership of ``ids``, which
parameters differ (nested ones dotted), the client and CLI, and the dashboard's compare page
and the job list's checkboxes (its chart is drawn in a browser: test_compare_browser.py).

Fast tier: the app in this process, a real Redis (under Atelier's ACL), local storage, no
worker; the test plays the worker's part through the job store."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest
import redis
import requests
from click.testing import CliRunner

from atelier.cli.main import main as cli_main
from atelier.client import ApiError, Client
from atelier.shared.job_compare import differing_params, flatten, read_runs
from atelier.shared.jobs import JobStatus, JobStore, OutputRef, Progress
from atelier.shared.storage import ObjectLayout
from tests.conftest import TINY_TRAIN, InProcessApi
from tests.test_dashboard import _sign_in

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def run_a_job(
    api: InProcessApi,
    client: Client,
    params: dict[str, Any],
    *,
    loss: float,
    samples: int = 6,
    name: str | None = None,
    owner: str = "alice",
) -> str:
    """A training job as a worker would leave it: progress with train and validation
    metrics at steps 10..100, ``samples`` PNG samples stored and listed, succeeded."""
    job_id = client.submit("train", "dcgan", {**TINY_TRAIN, **params}, name=name)["id"]
    store = JobStore(api.redis)
    claimed = store.claim(job_id, "test-worker", 60)
    assert claimed is not None and claimed.fence is not None
    fence = claimed.fence
    for step in range(10, 101, 10):
        metrics = {"d_loss": loss * 2 / step, "g_loss": loss / step}
        if step % 20 == 0:
            metrics["val_loss"] = loss * 3 / step
        progress = Progress(step=step, total=100, metrics=metrics, updated_at=time.time())
        assert store.set_progress(job_id, fence, progress)
    objects = api.app.extensions["atelier"].objects
    for step in range(samples):
        key = ObjectLayout.sample(owner, job_id, fence, (step + 1) * 10)
        size = objects.put_bytes(key, PNG, "image/png")
        sample = OutputRef(
            name=key.rsplit("/", 2)[-2] + "/" + key.rsplit("/", 1)[-1],
            key=key,
            content_type="image/png",
            size_bytes=size,
        )
        assert store.add_outputs(job_id, fence, [sample])
    final = {"val_loss": loss * 3 / 100, "g_loss": loss / 100}
    assert store.finish(job_id, JobStatus.SUCCEEDED, fence=fence, metrics=final) is not None
    return job_id


def problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def test_two_runs_side_by_side(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    first = run_a_job(inprocess_api, client, {"latent_dim": 8}, loss=1.0, name="small")
    second = run_a_job(inprocess_api, client, {"latent_dim": 16}, loss=2.0, samples=2)
    found = client.compare([second, first])
    assert [run["id"] for run in found["data"]] == [second, first]  # the order asked
    assert found["differing_params"] == ["latent_dim"]
    late, early = found["data"]
    assert (early["name"], early["kind"], early["type"], early["status"]) == (
        "small",
        "dcgan",
        "train",
        "succeeded",
    )
    assert early["params"]["latent_dim"] == 8 and late["params"]["latent_dim"] == 16
    assert early["metrics"] == {"val_loss": pytest.approx(0.03), "g_loss": pytest.approx(0.01)}
    assert early["step"] == early["total"] == 100
    train = early["series"]["train"]
    assert [p["step"] for p in train] == list(range(10, 101, 10))
    assert train[0]["metrics"] == {"d_loss": pytest.approx(0.2), "g_loss": pytest.approx(0.1)}
    assert [p["step"] for p in early["series"]["validation"]] == [20, 40, 60, 80, 100]
    assert early["series"] == client.request("GET", f"/v1/jobs/{first}/metrics")["series"]
    # The newest 4 of 6 samples, oldest first, with the URLs the job itself lists.
    names = [s["name"] for s in early["samples"]]
    assert names == [f"samples/step-{s:07d}.png" for s in (30, 40, 50, 60)]
    listed = {o["name"]: o["url"] for o in client.get(first)["outputs"]}
    assert all(listed[s["name"]] == s["url"] for s in early["samples"])
    fetched = client.http.get(early["samples"][-1]["url"])
    assert fetched.status_code == 200 and fetched.content == PNG
    assert [s["name"] for s in late["samples"]] == [
        "samples/step-0000010.png",
        "samples/step-0000020.png",
    ]


def test_a_queued_run_compares_with_no_curves_and_the_same_params_differ_in_nothing(
    inprocess_api: InProcessApi,
) -> None:
    client = inprocess_api.client()
    ids = [client.submit("train", "dcgan", TINY_TRAIN)["id"] for _ in range(8)]
    found = client.compare(ids)
    assert found["differing_params"] == []
    assert all(r["status"] == "queued" and r["samples"] == [] for r in found["data"])
    assert all(r["series"] == {"train": [], "validation": []} for r in found["data"])


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ("{a}", "give 2 to 8 job ids, comma-separated; got 1"),
        (",".join(["{a}"] * 2), "given more than once"),
        ("{a},{b},{a}", "given more than once"),
        ("{a},job_nothex", "'job_nothex' is not a job id"),
        ("{a},,{b}", "'' is not a job id"),
        ("{a},../{b}", "is not a job id"),
        ("", "got 0"),
        (",".join(["job_" + "0" * 22] * 9), "got 9"),
    ],
)
def test_bad_ids_are_a_422_naming_the_problem(
    inprocess_api: InProcessApi, ids: str, message: str
) -> None:
    client = inprocess_api.client()
    a, b = (client.submit("train", "dcgan", TINY_TRAIN)["id"] for _ in range(2))
    headers = {"Authorization": f"Bearer {inprocess_api.raw_key()}"}
    query = ids.format(a=a, b=b)
    answer = inprocess_api.http.get(
        inprocess_api.url("/v1/jobs/compare"), params={"ids": query}, headers=headers
    )
    body = problem(answer, 422)
    assert body["errors"][0]["field"] == "ids" and message in body["errors"][0]["message"]
    assert message in body["detail"]
    missing = inprocess_api.http.get(inprocess_api.url("/v1/jobs/compare"), headers=headers)
    assert problem(missing, 422)["errors"][0]["field"] == "ids"


def test_another_owners_job_looks_like_none(inprocess_api: InProcessApi) -> None:
    alice, bob = inprocess_api.client("alice"), inprocess_api.client("bob")
    mine = alice.submit("train", "dcgan", TINY_TRAIN)["id"]
    theirs = bob.submit("train", "dcgan", TINY_TRAIN)["id"]
    nobody = "job_" + "0" * 22
    answers = []
    for other in (theirs, nobody):
        with pytest.raises(ApiError) as error:
            alice.compare([mine, other])
        assert error.value.status == 404
        answers.append(error.value.problem["detail"].replace(other, "ID"))
    assert answers[0] == answers[1] == "No job 'ID'."
    # Bob may compare his own with nothing of Alice's either, whatever the order.
    with pytest.raises(ApiError) as error:
        bob.compare([mine, theirs])
    assert error.value.status == 404 and mine in error.value.problem["detail"]


def test_the_runs_are_read_in_one_round_trip(
    inprocess_api: InProcessApi, redis_admin: redis.Redis
) -> None:
    client = inprocess_api.client()
    ids = [
        run_a_job(inprocess_api, client, {"latent_dim": d}, loss=1.0, samples=0)
        for d in (8, 16, 32)
    ]
    counted = _Counting(inprocess_api.redis)
    runs = read_runs(
        cast(redis.Redis, counted), JobStore(inprocess_api.redis), [*ids, "job_" + "0" * 22]
    )
    assert counted.executes == 1 and counted.commands == 4 * 3  # a record and two series each
    assert [r.job.id if r else None for r in runs] == [*ids, None]
    assert all(r is not None and len(r.history["train"]) == 10 for r in runs[:3])


class _Counting:
    """A Redis client that counts the pipelines it runs and the commands in them."""

    def __init__(self, client: redis.Redis) -> None:
        self.client, self.executes, self.commands = client, 0, 0

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self.client.pipeline(transaction=transaction)
        execute = pipe.execute

        def counted(raise_on_error: bool = True) -> Any:
            self.executes += 1
            self.commands += len(pipe.command_stack)
            return execute(raise_on_error)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe


def test_differing_params_flatten_nested_ones() -> None:
    assert flatten(
        {"a": 1, "opt": {"lr": 0.1, "betas": [0.5, 0.9], "sched": {"kind": "cos"}}, "empty": {}}
    ) == {
        "a": 1,
        "opt.lr": 0.1,
        "opt.betas": [0.5, 0.9],
        "opt.sched.kind": "cos",
        "empty": {},
    }
    runs = [
        {"a": 1, "same": "x", "opt": {"lr": 0.1, "betas": [0.5, 0.9]}},
        {"a": 1, "same": "x", "opt": {"lr": 0.2, "betas": [0.5, 0.9]}, "extra": None},
        {"a": True, "same": "x", "opt": {"lr": 0.1, "betas": [0.5, 0.99]}},
    ]
    assert differing_params(runs) == ["a", "extra", "opt.betas", "opt.lr"]
    assert differing_params(runs[:1] * 3) == []


def test_cli_compare_prints_the_differing_params_and_final_metrics(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = inprocess_api.client()
    monkeypatch.setattr("atelier.cli.main._client", lambda: client)
    first = run_a_job(inprocess_api, client, {"latent_dim": 8}, loss=1.0, name="small")
    second = run_a_job(inprocess_api, client, {"latent_dim": 16}, loss=2.0, samples=0)
    done = CliRunner().invoke(cli_main, ["compare", first, second])
    assert done.exit_code == 0, done.output
    lines = done.output.splitlines()
    assert lines[0].split() == ["job", first, second]
    assert lines[1].split() == ["name", "small", "-"]
    assert lines[3].split() == ["params.latent_dim", "8", "16"]
    assert lines[4].split() == ["g_loss", "0.01", "0.02"]
    assert lines[5].split() == ["val_loss", "0.03", "0.06"]
    assert CliRunner().invoke(cli_main, ["compare", first]).exit_code == 2
    refused = CliRunner().invoke(cli_main, ["compare", first, "job_" + "0" * 22])
    assert refused.exit_code == 1 and "404" in refused.output


def test_dashboard_compare_page_and_job_list_checkboxes(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    hostile = "<script>alert(1)</script>"
    first = run_a_job(inprocess_api, client, {"latent_dim": 8}, loss=1.0, name=hostile)
    second = run_a_job(inprocess_api, client, {"latent_dim": 16}, loss=2.0, samples=2)
    browser = inprocess_api.app.test_client()
    assert _sign_in(browser, inprocess_api.raw_key()).status_code == 302  # type: ignore[attr-defined]
    listing = browser.get("/").get_data(as_text=True)
    assert f'name="ids" value="{first}" form="compare-form"' in listing
    assert 'id="compare-form"' in listing and 'action="/compare"' in listing
    # The checkboxes send ids=a&ids=b; a link may say ids=a,b.
    for query in (f"ids={first}&ids={second}", f"ids={first},{second}"):
        answer = browser.get(f"/compare?{query}")
        assert answer.status_code == 200
        page = answer.get_data(as_text=True)
        assert hostile not in page and "&lt;script&gt;" in page
        assert f'data-ids="{first},{second}"' in page
        assert (
            '<tr data-param="latent_dim"><th scope="row"><code>latent_dim</code></th>'
            "<td><code>8</code></td><td><code>16</code></td></tr>"
        ) in page
        assert '<tr data-metric="val_loss"><th scope="row"><code>val_loss</code></th>' in page
        assert page.count('<li class="output" data-name="samples/') == 4 + 2
    refused = browser.get(f"/compare?ids={first}")
    assert refused.status_code == 422 and "give 2 to 8 job ids" in refused.get_data(as_text=True)
    other = inprocess_api.client("bob").submit("train", "dcgan", TINY_TRAIN)["id"]
    assert browser.get(f"/compare?ids={first},{other}").status_code == 404


def test_other_methods_on_compare_are_405_not_a_job_named_compare(
    inprocess_api: InProcessApi,
) -> None:
    """Found by schemathesis: ``/v1/jobs/compare`` also matches ``/v1/jobs/<job_id>``, whose
    PATCH and DELETE an OPTIONS advertised and a DELETE reached (a 404 for job 'compare')."""
    headers = {"Authorization": f"Bearer {inprocess_api.raw_key()}"}
    url = inprocess_api.url("/v1/jobs/compare")
    options = inprocess_api.http.options(url, headers=headers)
    assert options.status_code == 200 and options.headers["Allow"] == "GET, HEAD, OPTIONS"
    for method in ("DELETE", "PATCH", "POST", "PUT"):
        refused = inprocess_api.http.request(method, url, headers=headers, json={})
        body = problem(refused, 405)
        assert body["status"] == 405 and refused.headers["Allow"] == "GET, HEAD, OPTIONS"
    # The job routes beside it are untouched.
    job_id = inprocess_api.client().submit("train", "dcgan", TINY_TRAIN)["id"]
    allow = inprocess_api.http.options(inprocess_api.url(f"/v1/jobs/{job_id}"), headers=headers)
    assert {"GET", "PATCH", "DELETE"} <= set(allow.headers["Allow"].split(", "))
