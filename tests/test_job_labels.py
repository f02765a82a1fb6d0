"""Name, tag, note, find (issue 25, point 1): labels at submit and by PATCH, the filters of
``GET /v1/jobs`` each alone and combined with paging, the order by a final metric, and
hostile labels refused with nothing written.

Fast tier: the app in this process, a real Redis (under Atelier's ACL), no worker; a
finished job with metrics is made through the store's own transitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from atelier.cli.main import main as cli_main
from atelier.client import ApiError, Client
from atelier.shared.jobs import JobStatus, JobStore
from tests.conftest import TINY_TEXT, TINY_TRAIN, InProcessApi
from tests.test_dashboard import _sign_in

TEXT_TRAIN = {**TINY_TEXT, "dataset": "fables"}


def submit(client: Client, kind: str = "dcgan", **labels: Any) -> str:
    params = TEXT_TRAIN if kind == "textgen" else TINY_TRAIN
    return client.submit("train", kind, params, **labels)["id"]


def finish(api: InProcessApi, job_id: str, metrics: dict[str, float]) -> None:
    store = JobStore(api.redis)
    assert store.claim(job_id, "test-worker", 60) is not None
    assert store.finish(job_id, JobStatus.SUCCEEDED, metrics=metrics) is not None


def problem(response: requests.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


def every(client: Client, **filters: Any) -> list[str]:
    """Ids of every job found, page by page (pages of 2: the cursor is exercised)."""
    return [job["id"] for job in client.all_jobs(limit=2, **filters)]


def test_labels_at_submit_read_back_and_change(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    job_id = submit(client, name="baseline run", tags=["lr=2e-4", "team/vision", "lr=2e-4"],
                    notes="first try\n\twith tabs")
    job = client.get(job_id)
    assert (job["name"], job["tags"], job["notes"]) == (
        "baseline run", ["lr=2e-4", "team/vision"], "first try\n\twith tabs"
    )
    finish(inprocess_api, job_id, {"val_loss": 0.5})  # a finished job can be relabelled too
    changed = client.update_job(job_id, name="renamed", tags=["best"])
    assert (changed["name"], changed["tags"], changed["notes"]) == (
        "renamed", ["best"], "first try\n\twith tabs"
    )
    assert changed["status"] == "succeeded" and changed["metrics"] == {"val_loss": 0.5}
    cleared = client.update_job(job_id, notes=None, tags=[])
    assert (cleared["name"], cleared["tags"], cleared["notes"]) == ("renamed", [], None)
    # The tag index followed: the old tags find nothing, and no empty sets are left.
    assert every(client, tag="lr=2e-4") == [] and every(client, tag="best") == []
    assert inprocess_api.admin.keys("atelier:owner:alice:tag:*") == []
    audit = [e["action"] for e in client.audit()]
    assert audit.count("job.update") == 2


def test_unlabelled_jobs_read_as_before(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    job = client.get(submit(client))
    assert (job["name"], job["tags"], job["notes"]) == (None, [], None)
    record = inprocess_api.admin.hget(f"atelier:job:{job['id']}", "record")
    assert record is not None and b'"tags"' not in record  # defaults cost no bytes


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x" * 201}, "name"),
        ({"name": ""}, "name"),
        ({"name": "two\nlines"}, "name"),
        ({"tags": ["has space"]}, "tags.0"),
        ({"tags": ["日本"]}, "tags.0"),
        ({"tags": ["-leading"]}, "tags.0"),
        ({"tags": ["x" * 65]}, "tags.0"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"tags": "solo"}, "tags"),
        ({"notes": "bell\x07"}, "notes"),
        ({"owner": "mallory"}, "owner"),
        ({"status": "succeeded"}, "status"),
    ],
)
def test_bad_labels_are_422_and_change_nothing(
    inprocess_api: InProcessApi, body: dict[str, Any], field: str
) -> None:
    client = inprocess_api.client()
    job_id = submit(client, name="kept", tags=["kept"])
    headers = {"Authorization": f"Bearer {inprocess_api.raw_key()}"}
    url = inprocess_api.url(f"/v1/jobs/{job_id}")
    answer = problem(inprocess_api.http.patch(url, json=body, headers=headers, timeout=10), 422)
    assert any(e["field"] == field for e in answer["errors"]), answer
    job = client.get(job_id)
    assert (job["name"], job["tags"], job["status"]) == ("kept", ["kept"], "queued")
    # The same rules hold at submit, where nothing is created.
    created = {"type": "train", "kind": "dcgan", "params": TINY_TRAIN, **body}
    if field not in ("owner", "status"):
        post = inprocess_api.http.post(inprocess_api.url("/v1/jobs"), json=created,
                                       headers=headers, timeout=10)
        problem(post, 422)
        assert inprocess_api.redis.zcard("atelier:owner:alice:jobs") == 1


def test_hostile_bodies(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    job_id = submit(client, tags=["kept"])
    headers = {"Authorization": f"Bearer {inprocess_api.raw_key()}"}
    url = inprocess_api.url(f"/v1/jobs/{job_id}")
    thousand = {"tags": [f"tag{i}" for i in range(1000)]}
    answer = problem(inprocess_api.http.patch(url, json=thousand, headers=headers, timeout=10), 422)
    assert "at most 20" in answer["detail"]
    too_long = problem(
        inprocess_api.http.patch(url, json={"notes": "n" * 8193}, headers=headers, timeout=10), 422
    )
    assert too_long["errors"][0]["field"] in ("notes", "(body)", ""), too_long
    huge = problem(
        inprocess_api.http.patch(url, json={"notes": "n" * (2 << 20)}, headers=headers, timeout=10),
        413,
    )
    assert huge["type"].endswith("payload-too-large")
    assert client.update_job(job_id, notes="é" * 8192)["notes"] == "é" * 8192  # chars, not bytes
    assert client.get(job_id)["tags"] == ["kept"]
    assert inprocess_api.admin.keys("atelier:owner:alice:tag:tag*") == []


def test_another_owners_job_is_404(inprocess_api: InProcessApi) -> None:
    job_id = submit(inprocess_api.client("alice"), name="alice's")
    with pytest.raises(ApiError) as error:
        inprocess_api.client("bob").update_job(job_id, name="bob's now")
    assert error.value.status == 404
    with pytest.raises(ApiError) as missing:
        inprocess_api.client("bob").update_job("job_0000000000000000000000", name="x")
    assert missing.value.status == 404
    assert inprocess_api.client("alice").get(job_id)["name"] == "alice's"
    assert every(inprocess_api.client("bob")) == []


def test_filters_alone_and_combined_across_pages(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    made: dict[str, str] = {}
    for i in range(5):
        made[f"gan{i}"] = submit(client, name=f"GAN sweep {i}", tags=["sweep", f"i{i}"])
    made["text"] = submit(client, kind="textgen", name="gan-like text", tags=["sweep"])
    made["plain"] = submit(client)
    client.cancel(made["gan1"])
    gans = [made[f"gan{i}"] for i in reversed(range(5))]  # newest first
    assert every(client, tag="sweep") == [made["text"], *gans]
    assert every(client, tag="i3") == [made["gan3"]]
    assert every(client, tag="nobody") == []
    assert every(client, name_prefix="gan sweep") == gans  # any case
    assert every(client, name_prefix="gan") == [made["text"], *gans]
    assert every(client, kind="textgen") == [made["text"]]
    assert every(client, dataset="fables") == [made["text"]]
    assert every(client, dataset="digits") == [made["plain"], *gans]
    assert every(client, status="canceled") == [made["gan1"]]
    assert every(client, tag="sweep", kind="dcgan", status="queued") == [
        made["gan4"], made["gan3"], made["gan2"], made["gan0"]
    ]
    assert every(client, tag="sweep", name_prefix="GAN S", dataset="digits", type="train") == gans


def test_sort_by_final_metric_missing_last(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    losses: list[float | None] = [0.9, 0.2, None, 0.5, None, 0.2, 0.7]
    ids = []
    for loss in losses:
        job_id = submit(client, tags=["ranked"])
        ids.append(job_id)
        if loss is not None:
            finish(inprocess_api, job_id, {"val_loss": loss, "loss": 1.0})
        elif len(ids) == 5:  # finished without the metric
            finish(inprocess_api, job_id, {"loss": 1.0})
    other = submit(client)  # not tagged: out of the tag's ranking
    finish(inprocess_api, other, {"val_loss": 0.01})
    # Ascending, ties newest first; no metric (queued, or finished without) last.
    ascending = [ids[5], ids[1], ids[3], ids[6], ids[0], ids[4], ids[2]]
    assert every(client, tag="ranked", sort="val_loss") == ascending
    descending = [ids[0], ids[6], ids[3], ids[5], ids[1], ids[4], ids[2]]
    assert every(client, tag="ranked", sort="-val_loss") == descending
    assert every(client, sort="val_loss")[:2] == [other, ids[5]]
    assert every(client, sort="-val_loss", status="queued") == [ids[2]]
    assert every(client, tag="ranked", sort="no_such_metric") == list(reversed(ids))
    # A cursor survives jobs coming and going between pages.
    first = client.jobs(tag="ranked", sort="val_loss", limit=3)
    assert [j["id"] for j in first["data"]] == ascending[:3]
    new = submit(client, tags=["ranked"])  # no metric yet: among the last, the newest
    rest = [j["id"] for j in client.all_jobs(tag="ranked", sort="val_loss",
                                             cursor=first["next_cursor"], limit=3)]
    assert rest == [ids[6], ids[0], new, ids[4], ids[2]]


def test_bad_queries_are_422(inprocess_api: InProcessApi) -> None:
    headers = {"Authorization": f"Bearer {inprocess_api.raw_key()}"}
    for query in ("sort=val loss", "sort=--x", "tag=a%20b", "sort=val_loss&cursor=nonsense"):
        url = inprocess_api.url(f"/v1/jobs?{query}")
        problem(inprocess_api.http.get(url, headers=headers, timeout=10), 422)


def test_cli_submit_find_and_label(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    client = inprocess_api.client()
    monkeypatch.setattr("atelier.cli.main._client", lambda: client)
    runner = CliRunner()
    args = ["submit", "train", "--name", "cli run", "--tag", "cli", "--tag", "v1", "--notes", "n"]
    submitted = runner.invoke(cli_main, args)
    assert submitted.exit_code == 0, submitted.output
    job_id = submitted.output.strip()
    other = client.submit("train", "dcgan", TINY_TRAIN, name="other")["id"]
    listed = runner.invoke(cli_main, ["jobs", "--tag", "cli"]).output
    assert job_id in listed and "cli run #cli #v1" in listed and other not in listed
    assert other in runner.invoke(cli_main, ["list", "--name", "OTH"]).output
    notes = tmp_path / "notes.md"
    notes.write_text("from a file\n")
    changed = runner.invoke(
        cli_main,
        ["label", job_id, "--name", "renamed", "--add-tag", "best", "--remove-tag", "v1",
         "--notes", f"@{notes}"],
    )
    assert changed.exit_code == 0, changed.output
    assert "renamed #cli #best" in changed.output
    job = client.get(job_id)
    assert (job["name"], job["tags"], job["notes"]) == ("renamed", ["cli", "best"], "from a file\n")
    cleared = runner.invoke(cli_main, ["label", job_id, "--name", "", "--no-tags"])
    assert cleared.exit_code == 0 and client.get(job_id)["tags"] == []
    assert client.get(job_id)["name"] is None
    bad = runner.invoke(cli_main, ["label", job_id, "--tag", "has space"])
    assert bad.exit_code == 1 and "422" in bad.output + str(bad.stderr_bytes or b"")
    assert runner.invoke(cli_main, ["label", job_id]).exit_code == 2
    finish(inprocess_api, other, {"val_loss": 0.25})
    ranked = runner.invoke(cli_main, ["jobs", "--sort", "val_loss"]).output.splitlines()
    assert ranked[0].startswith(other) and "0.25" in ranked[0]


def test_dashboard_lists_names_and_tags_and_shows_parameters(
    inprocess_api: InProcessApi,
) -> None:
    client = inprocess_api.client()
    hostile = "<script>alert(1)</script>"
    named = submit(client, name=f"vision {hostile}", tags=["team/vision", "lr=2e-4"],
                   notes=f"why: {hostile}\nsecond line")
    plain = submit(client)
    finish(inprocess_api, named, {"val_loss": 0.125})
    browser = inprocess_api.app.test_client()
    assert _sign_in(browser, inprocess_api.raw_key()).status_code == 302  # type: ignore[attr-defined]
    listing = browser.get("/").get_data(as_text=True)
    assert hostile not in listing and "vision &lt;script&gt;" in listing
    assert 'class="tag" href="/?tag=team/vision">team/vision</a>' in listing
    by_tag = browser.get("/?tag=lr%3D2e-4").get_data(as_text=True)
    assert named in by_tag and plain not in by_tag
    by_name = browser.get("/?name_prefix=VIS&sort=-val_loss").get_data(as_text=True)
    assert by_name.count('<tr data-job="') == 1
    assert browser.get("/?tag=not%20a%20tag").get_data(as_text=True).count('<tr data-job="') == 0
    page = browser.get(f"/jobs/{named}").get_data(as_text=True)
    assert hostile not in page and "why: &lt;script&gt;" in page
    assert '<th scope="row"><code>latent_dim</code></th><td><code>8</code></td>' in page
    assert '<th scope="row"><code>dataset</code></th><td><code>digits</code></td>' in page
    assert "val_loss 0.125" in page
