"""OpenAPI, docs, health, metrics, listing filters and cursors, and the TensorFlow-free API.

All but the metrics test are fast: the app in this process, a real Redis, no worker."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from atelier.client import ApiError, Client
from atelier.shared.models import ModelRecord, ModelStore
from tests.conftest import (
    InProcessApi,
    RunningStack,
    inprocess_api_for,
    inprocess_settings,
    s3_settings,
)

TINY_ONE_STEP = {"steps": 1, "batch_size": 8, "base_filters": 4, "latent_dim": 2}


def test_openapi_is_generated_from_the_validating_schemas(inprocess_api: InProcessApi) -> None:
    doc = inprocess_api.http.get(inprocess_api.url("/v1/openapi.json"), timeout=10).json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/models",
        "/v1/models/{model_id}",
        "/v1/datasets",
        "/v1/kinds",
    ):
        assert path in doc["paths"], path
    dumped = str(doc)
    # The kind's params schema, with its bounds, is part of the document.
    assert "dcgan train params" in dumped and "'maximum': 1000000" in dumped
    docs_page = inprocess_api.http.get(inprocess_api.url("/v1/docs/redoc/"), timeout=10)
    assert docs_page.status_code == 200 and "openapi.json" in docs_page.text


def test_openapi_documents_every_route_and_its_problems(inprocess_api: InProcessApi) -> None:
    doc = inprocess_api.http.get(inprocess_api.url("/v1/openapi.json"), timeout=10).json()
    submit = doc["paths"]["/v1/jobs"]["post"]
    assert {"202", "401", "413", "422"} <= set(submit["responses"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    listed = doc["paths"]["/v1/jobs"]["get"]["parameters"]
    assert {"status", "type", "kind", "cursor", "limit"} <= {p["name"] for p in listed}


@pytest.fixture(params=["local", "s3"])
def either_storage(
    request: pytest.FixtureRequest, redis_base_url: str, tmp_path: Path
) -> Iterator[InProcessApi]:
    extra = s3_settings(request.getfixturevalue("s3_endpoint")) if request.param == "s3" else {}
    yield from inprocess_api_for(inprocess_settings(redis_base_url, tmp_path, **extra))


def test_health_and_readiness(either_storage: InProcessApi) -> None:
    api = either_storage
    assert api.http.get(api.url("/healthz"), timeout=10).json() == {"status": "ok"}
    ready = api.http.get(api.url("/readyz"), timeout=10).json()
    assert ready["status"] == "ready" and ready["storage"] == api.settings.storage


def test_datasets_and_kinds(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client("frank")
    datasets = client.datasets()
    digits = next(d for d in datasets if d["name"] == "digits")
    assert (digits["image_size"], digits["channels"], digits["count"]) == (28, 1, 1797)
    assert digits["classes"] == 10
    assert {d["name"] for d in datasets} >= {"digits", "shapes"}
    kinds = client.kinds()
    assert kinds[0]["name"] == "dcgan"
    assert kinds[0]["train_params_schema"]["properties"]["steps"]["maximum"] == 1_000_000


@pytest.mark.slow
def test_metrics_exposition(local_stack: RunningStack) -> None:
    client = local_stack.client("gina")
    client.jobs()
    with pytest.raises(ApiError):
        client.submit("generate", "dcgan", {"model_id": "model_none"})
    client.wait(client.submit("train", "dcgan", TINY_ONE_STEP)["id"], timeout=120)
    text = requests.get(local_stack.url("/metrics"), timeout=10).text
    assert 'atelier_http_requests_total{method="GET",route="/v1/jobs",status="200"}' in text
    assert "atelier_http_request_duration_seconds_bucket" in text
    assert 'status="422"' in text
    submitted = [
        line for line in text.splitlines() if line.startswith("atelier_jobs_submitted_total{")
    ]
    assert any(
        line.startswith('atelier_jobs_submitted_total{kind="dcgan",type="train"}')
        for line in submitted
    ), submitted
    assert (
        f'atelier_queue_depth{{queue="{local_stack.settings.train_queue}",state="waiting"}}' in text
    )


def test_list_filters_and_cursor(inprocess_api: InProcessApi) -> None:
    """No worker runs here: the jobs stay queued, and one is canceled."""
    client = inprocess_api.client("hana")
    ids = [client.submit("train", "dcgan", TINY_ONE_STEP)["id"] for _ in range(3)]
    first = client.jobs(limit=2)
    assert [j["id"] for j in first["data"]] == ids[::-1][:2]
    second = client.jobs(limit=2, cursor=first["next_cursor"])
    assert [j["id"] for j in second["data"]] == [ids[0]] and second["next_cursor"] is None
    assert client.jobs(status="failed")["data"] == []
    assert len(client.jobs(status="queued", type="train", kind="dcgan")["data"]) == 3
    assert client.jobs(type="generate")["data"] == []
    client.cancel(ids[1])
    assert [j["id"] for j in client.jobs(status="canceled")["data"]] == [ids[1]]
    assert [j["id"] for j in client.jobs(status="queued")["data"]] == [ids[2], ids[0]]
    assert client.jobs(kind="textgen")["data"] == []


def flat(pages: list[list[str]]) -> list[str]:
    return [item for page in pages for item in page]


def all_pages(client: Client, path: str, limit: int, **filters: Any) -> list[list[str]]:
    """The ids of every page, following ``next_cursor`` to the end."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {"limit": limit, **filters, **({"cursor": cursor} if cursor else {})}
        page = client.request("GET", path, params=query)
        pages.append([item["id"] for item in page["data"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursor never ends"


def test_job_cursor_pages_every_job_once(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client("iris")
    inprocess_api.client("other").submit("train", "dcgan", {})  # never on iris's pages
    submitted = [
        client.submit("train" if i % 3 else "generate", "dcgan", _params(inprocess_api, i))["id"]
        for i in range(8)
    ]
    pages = all_pages(client, "/v1/jobs", 3)
    assert [len(p) for p in pages] == [3, 3, 2]
    assert flat(pages) == submitted[::-1]
    trains = [job_id for i, job_id in enumerate(submitted) if i % 3]
    filtered = all_pages(client, "/v1/jobs", 2, type="train")
    assert [len(p) for p in filtered] == [2, 2, 1]
    assert flat(filtered) == trains[::-1]
    assert all_pages(client, "/v1/jobs", 100) == [submitted[::-1]]


def _params(api: InProcessApi, index: int) -> dict[str, Any]:
    """Train params, or generate params naming a model of iris's (made on first use)."""
    if index % 3:
        return TINY_ONE_STEP
    return {"model_id": _model(api, "iris", f"job_{index}"), "n": 1}


def _model(api: InProcessApi, owner: str, job_id: str) -> str:
    record = ModelRecord(
        id=ModelStore.new_id(),
        owner=owner,
        kind="dcgan",
        config={},
        weights_key=f"owners/{owner}/models/w",
        source_job_id=job_id,
        dataset="digits",
        steps=1,
        created_at=time.time(),
    )
    return ModelStore(api.redis).save(record).id


def test_model_cursor_pages_every_model_once(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client("jade")
    made = [_model(inprocess_api, "jade", f"job_{i}") for i in range(7)]
    _model(inprocess_api, "kurt", "job_x")
    pages = all_pages(client, "/v1/models", 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(flat(pages)) == sorted(made)
    assert flat(pages) == sorted(made, reverse=True)  # ids sort by creation: newest first
    assert [m["id"] for m in client.models()] == sorted(made, reverse=True)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/models"])
@pytest.mark.parametrize("limit", ["0", "-1", "past the maximum", "ten"])
def test_limit_out_of_range_is_a_422_naming_limit(
    inprocess_api: InProcessApi, path: str, limit: str
) -> None:
    client = inprocess_api.client("lena")
    if limit == "past the maximum":
        limit = str(inprocess_api.settings.list_page_max + 1)
    with pytest.raises(ApiError) as error:
        client.request("GET", path, params={"limit": limit})
    assert error.value.status == 422
    assert error.value.problem["type"] == "urn:atelier:problem:validation-failed"
    assert [e["field"] for e in error.value.problem["errors"]] == ["limit"]


def test_limit_bounds_are_accepted(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client("lena")
    for limit in (1, inprocess_api.settings.list_page_max):
        assert client.jobs(limit=limit) == {"data": [], "next_cursor": None}


def test_unknown_status_filter_is_a_422(inprocess_api: InProcessApi) -> None:
    with pytest.raises(ApiError) as error:
        inprocess_api.client("lena").jobs(status="done")
    assert error.value.status == 422
    assert [e["field"] for e in error.value.problem["errors"]] == ["status"]


def test_api_and_celery_parent_never_import_tensorflow(tmp_path: Path) -> None:
    probe = (
        "import sys; import atelier.api.wsgi, atelier.workers.celery_app, atelier.cli.main; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"ATELIER_LOCAL_STORAGE_DIR": str(tmp_path / "objects"), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.split() == ["False", "False"]
