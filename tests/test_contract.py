"""The OpenAPI document says exactly what the API does (``api.contract``).

The fast tests read the served document; the slow one runs schemathesis (every check) against
a real gunicorn API with no worker and no TensorFlow, and expects no failure."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest

from atelier.cli.processes import free_port
from atelier.cli.stack import EmbeddedStack
from atelier.shared.settings import Settings
from tests.conftest import ROOMY_LIMITS, UPLOAD_LIMITS, InProcessApi

PROBLEM = "application/problem+json"
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES_PER_OPERATION = 100  # about 20 s for every operation and phase
# A new seed each run (the contract must hold at any), printed with a failure and in the
# test's output; ATELIER_CONTRACT_SEED replays one.
SEED = int(os.environ.get("ATELIER_CONTRACT_SEED") or secrets.randbelow(2**31))


def served_document(api: InProcessApi) -> dict[str, Any]:
    document: dict[str, Any] = api.http.get(api.url("/v1/openapi.json"), timeout=10).json()
    return document


def test_every_error_answer_is_a_problem(inprocess_api: InProcessApi) -> None:
    doc = served_document(inprocess_api)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == [PROBLEM], (method, path, status)
            if path.startswith("/v1/") and operation.get("security") != []:
                assert "401" in operation["responses"], (method, path)


def test_probes_metrics_and_documents_need_no_key(inprocess_api: InProcessApi) -> None:
    doc = served_document(inprocess_api)
    for path in ("/healthz", "/readyz", "/metrics", "/v1/openapi.json", "/v1/docs/redoc/"):
        assert doc["paths"][path]["get"]["security"] == [], path
    assert doc["paths"]["/v1/jobs"]["get"].get("security") is None  # the document's default


def _job_schema_validator(doc: dict[str, Any]) -> jsonschema.Draft202012Validator:
    schemas = doc["components"]["schemas"]
    name = next(n for n in schemas if n.split(".")[0] == "JobCreate" and n.count(".") == 1)
    schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_job_bodies_are_keyed_by_type_and_kind(inprocess_api: InProcessApi) -> None:
    """What the document allows, the API's own validation allows, and the reverse."""
    validator = _job_schema_validator(served_document(inprocess_api))
    key = inprocess_api.raw_key()
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"type": "train", "kind": "dcgan", "params": {"model_id": "mdl_x"}}, False),
        ({"type": "generate", "kind": "dcgan", "params": {"dataset": "digits"}}, False),
        ({"type": "generate", "kind": "dcgan", "params": {}}, False),
        ({"type": "train", "kind": "nope"}, False),
        ({"type": "train", "kind": "textgen", "params": {"latent_dim": 8}}, False),
        ({"type": "train", "kind": "dcgan", "params": {"steps": 3}}, True),
        ({"type": "generate", "kind": "textgen", "params": {"model_id": "mdl_x"}}, True),
    ]
    for body, valid in cases:
        assert validator.is_valid(body) is valid, body
        answer = inprocess_api.http.post(
            inprocess_api.url("/v1/jobs"),
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        problem_type = answer.json().get("type", "")
        # A valid body may still name a model that does not exist (unknown-model).
        schema_refused = answer.status_code == 422 and problem_type.endswith(
            ("validation-failed", "unknown-kind")
        )
        assert schema_refused is not valid, (body, answer.json())


def test_405_says_allow_and_long_uris_are_a_414_problem(inprocess_api: InProcessApi) -> None:
    http = inprocess_api.http
    not_allowed = http.put(inprocess_api.url("/v1/kinds"), timeout=10)
    assert not_allowed.status_code == 405 and not_allowed.headers["Allow"]
    assert not_allowed.headers["Content-Type"] == PROBLEM
    too_long = http.get(inprocess_api.url("/v1/jobs/" + "a" * 5000), timeout=10)
    assert too_long.status_code == 414 and too_long.headers["Content-Type"] == PROBLEM
    assert too_long.json()["type"] == "urn:atelier:problem:uri-too-long"


@pytest.fixture()
def api_only_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """gunicorn with its own Redis and no worker (so no TensorFlow): jobs stay queued."""
    base = Settings.from_env(
        {},
        data_dir=tmp_path,
        log_level="WARNING",
        max_upload_bytes=UPLOAD_LIMITS["bytes"],
        max_upload_files=UPLOAD_LIMITS["files"],
        max_uncompressed_bytes=UPLOAD_LIMITS["uncompressed"],
        max_image_pixels=UPLOAD_LIMITS["pixels"],
        **ROOMY_LIMITS,
    )
    stack = EmbeddedStack(base, port=free_port(), api_workers=2, worker_roles=())
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(tmp_path / "objects", ignore_errors=True)


@pytest.mark.slow
def test_schemathesis_finds_no_failure(api_only_stack: EmbeddedStack, tmp_path: Path) -> None:
    """``schemathesis run --checks all`` against the live API: every answer documented,
    problem+json where documented, no auth where none is asked, schema-valid accepted
    (``tests/schemathesis.toml`` says where a 422 to valid data is on purpose)."""
    assert api_only_stack.settings is not None
    url = api_only_stack.settings.api_url
    schemathesis = Path(sys.executable).with_name("schemathesis")
    command = [
        str(schemathesis),
        "--config-file",
        str(SCHEMATHESIS_CONFIG),
        "run",
        f"{url}/v1/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: Bearer {api_only_stack.api_key}",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(SEED),
        "--no-color",
    ]
    # Its working directory gets schemathesis' own cache (.schemathesis/): not the repo.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=150, check=False, cwd=tmp_path
    )
    report = done.stdout.replace(api_only_stack.api_key, "[key]")
    replay = f"schemathesis seed {SEED}: replay with ATELIER_CONTRACT_SEED={SEED}"
    print(replay)
    assert done.returncode == 0, replay + "\n" + report[-6000:] + done.stderr[-2000:]


def test_multipart_without_a_boundary_is_a_400(inprocess_api: InProcessApi) -> None:
    for path in ("/v1/jobs", "/v1/datasets"):
        answer = inprocess_api.http.post(
            inprocess_api.url(path),
            data=b"{}",
            headers={
                "Authorization": f"Bearer {inprocess_api.raw_key()}",
                "Content-Type": "multipart/form-data",
            },
            timeout=10,
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["type"] == "urn:atelier:problem:malformed-request"


def test_the_key_of_a_deleted_job_is_a_409_not_a_503(inprocess_api: InProcessApi) -> None:
    """Found by schemathesis' stateful phase: submit, cancel, delete, submit again with the
    same Idempotency-Key waited 2 s for a job that will never exist and answered 503."""
    http, key = inprocess_api.http, inprocess_api.raw_key()
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "once"}
    body = {"type": "train", "kind": "dcgan", "params": {"steps": 5}}
    job_id = http.post(inprocess_api.url("/v1/jobs"), json=body, headers=headers).json()["id"]
    http.post(inprocess_api.url(f"/v1/jobs/{job_id}/cancel"), headers=headers)
    assert http.delete(inprocess_api.url(f"/v1/jobs/{job_id}"), headers=headers).status_code == 204
    again = http.post(inprocess_api.url("/v1/jobs"), json=body, headers=headers, timeout=10)
    assert again.status_code == 409 and again.json()["type"] == "urn:atelier:problem:conflict"


def test_each_route_lists_the_errors_it_can_give(inprocess_api: InProcessApi) -> None:
    """Not SpecTree's blanket 422 on routes with nothing to validate, nor 413 on a GET."""
    paths = served_document(inprocess_api)["paths"]

    def statuses(path: str, method: str = "get") -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/v1/usage") == {"200", "401", "403", "414", "429"}
    # 503: a `Prefer: wait` read when the process holds its most long requests.
    assert statuses("/v1/jobs/{job_id}") == {"200", "401", "403", "404", "414", "429", "503"}
    assert statuses("/v1/jobs") == {"200", "401", "403", "414", "422", "429"}
    assert {"400", "403", "409", "413", "422", "503"} <= statuses("/v1/jobs", "post")
    assert statuses("/readyz") == {"200", "414", "429", "503"}


def test_an_empty_last_event_id_is_what_the_document_says(inprocess_api: InProcessApi) -> None:
    """Found by schemathesis at a random seed: the document refused an empty Last-Event-ID
    (its pattern) that the API took as none. Both now agree: empty means none."""
    document = served_document(inprocess_api)
    headers = {"Authorization": f"Bearer {inprocess_api.raw_key()}", "Last-Event-ID": ""}
    for path in ("/v1/events", "/v1/jobs/{job_id}/events"):
        parameter = next(
            p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "Last-Event-ID"
        )
        jsonschema.validate("", parameter["schema"])
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate("12-x", parameter["schema"])
    stream = inprocess_api.app.test_client().get("/v1/events", headers=headers, buffered=False)
    assert stream.status_code == 200
    first_chunk = next(iter(cast(Iterable[bytes], stream.response)))
    assert first_chunk.startswith(b"retry:")
    stream.close()
    bad = inprocess_api.http.get(
        inprocess_api.url("/v1/events"), headers={**headers, "Last-Event-ID": "12-x"}, timeout=10
    )
    assert bad.status_code == 400


def test_an_empty_model_id_is_refused_by_the_schema_as_by_the_api(
    inprocess_api: InProcessApi,
) -> None:
    """Found by schemathesis at a random seed: model_id "" was schema-valid, answered 422."""
    document = served_document(inprocess_api)
    schemas = document["components"]["schemas"]
    generate = [name for name in schemas if name.endswith("_generate_params")]
    assert len(generate) >= 3
    for name in generate:
        model_id = schemas[name]["properties"]["model_id"]
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate("", model_id)
        jsonschema.validate("model_0661e8b982938689481f6c", model_id)
    answer = inprocess_api.http.post(
        inprocess_api.url("/v1/jobs"),
        json={"type": "generate", "kind": "dcgan", "params": {"model_id": ""}},
        headers={"Authorization": f"Bearer {inprocess_api.raw_key()}"},
        timeout=10,
    )
    assert answer.status_code == 422
    assert answer.json()["type"] == "urn:atelier:problem:validation-failed"
