"""OpenAPI, docs, health, metrics, listing filters, and the TensorFlow-free API."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from atelier.client import ApiError
from tests.conftest import RunningStack

TINY_ONE_STEP = {"steps": 1, "batch_size": 8, "base_filters": 4, "latent_dim": 2}

pytestmark = pytest.mark.slow


def test_openapi_is_generated_from_the_validating_schemas(local_stack: RunningStack) -> None:
    doc = requests.get(local_stack.url("/v1/openapi.json"), timeout=10).json()
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
    docs_page = requests.get(local_stack.url("/v1/docs/redoc/"), timeout=10)
    assert docs_page.status_code == 200 and "openapi.json" in docs_page.text


def test_health_and_readiness(stack: RunningStack) -> None:
    assert requests.get(stack.url("/healthz"), timeout=10).json() == {"status": "ok"}
    ready = requests.get(stack.url("/readyz"), timeout=10).json()
    assert ready["status"] == "ready" and ready["storage"] == stack.name


def test_datasets_and_kinds(local_stack: RunningStack) -> None:
    client = local_stack.client("frank")
    datasets = client.datasets()
    digits = next(d for d in datasets if d["name"] == "digits")
    assert (digits["image_size"], digits["channels"], digits["count"]) == (28, 1, 1797)
    assert {d["name"] for d in datasets} >= {"digits", "shapes"}
    kinds = client.kinds()
    assert kinds[0]["name"] == "dcgan"
    assert kinds[0]["train_params_schema"]["properties"]["steps"]["maximum"] == 1_000_000


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


def test_list_filters_and_cursor(local_stack: RunningStack) -> None:
    client = local_stack.client("hana")
    ids = [client.submit("train", "dcgan", TINY_ONE_STEP)["id"] for _ in range(3)]
    for job_id in ids:
        client.wait(job_id, timeout=120)
    first = client.jobs(limit=2)
    assert [j["id"] for j in first["data"]] == ids[::-1][:2]
    second = client.jobs(limit=2, cursor=first["next_cursor"])
    assert [j["id"] for j in second["data"]] == [ids[0]] and second["next_cursor"] is None
    assert client.jobs(status="failed")["data"] == []
    assert len(client.jobs(status="succeeded", type="train", kind="dcgan")["data"]) == 3
    assert client.jobs(type="generate")["data"] == []


def test_api_and_celery_parent_never_import_tensorflow() -> None:
    probe = (
        "import sys; import api.wsgi, workers.celery_app, cli.main; "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"ATELIER_LOCAL_STORAGE_DIR": "/tmp/atelier-probe", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.split() == ["False", "False"]
