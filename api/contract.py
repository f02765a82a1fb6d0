"""The served OpenAPI document made to say exactly what the API does, where SpecTree's own
account falls short (``tests/test_contract.py`` holds it to that with schemathesis):

- every error answer is ``application/problem+json`` with the ``Problem`` schema, including
  the answers no view declares: 401 from the key hook, 400/413 from the body guard, 414;
- the routes outside SpecTree's views (probes, metrics, the documents, ``/v1/files``) are
  described, the unauthenticated ones with ``security: []``;
- a job's body is a union keyed by ``type`` and ``kind``: one branch per kind (plug-ins
  included, so it is built when the document is served) and job type, each with that kind's
  own params schema, so a ``train`` body carrying ``model_id`` is invalid here as it is in
  the API.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from ..shared.exports import ExportFormat
from ..shared.jobs import JobType
from ..shared.kinds import KINDS
from .events_doc import event_routes
from .problems import MAX_URI_CHARS, PROBLEM_MIMETYPE

BODY_METHODS = frozenset({"post", "put", "patch"})

_REASONS = {
    "400": "Malformed request: the body is not a JSON object, or not JSON (or a bad header).",
    "401": "Missing or invalid API key.",
    "403": "The API key lacks the route's scope (or a quota is used up).",
    "404": "No such resource for this owner.",
    "413": "The body is larger than allowed.",
    "414": f"The path and query are longer than {MAX_URI_CHARS} characters.",
    "422": "A field is wrong; `errors` names each.",
    "503": "A backing service is unavailable.",
}


def document_contract(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of SpecTree's ``doc`` completed as this module's docstring says."""
    doc = copy.deepcopy(doc)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    problem = _problem_ref(schemas)
    paths = doc.setdefault("paths", {})
    paths.update(_unlisted_routes())
    paths.update(event_routes())
    for path, operations in paths.items():
        for method, operation in operations.items():
            _complete_errors(path, method, operation, problem)
    _document_job_bodies(doc, schemas)
    for name in [n for n in schemas if n.split(".")[0] == "ValidationError"]:
        del schemas[name]  # SpecTree's 422 body, replaced by the Problem above
    return doc


def _problem_ref(schemas: dict[str, Any]) -> str:
    name = next(n for n in schemas if n.split(".")[0] == "Problem")
    return f"#/components/schemas/{name}"


def problem_answer(description: str, ref: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MIMETYPE: {"schema": {"$ref": ref}}}}


def _complete_errors(path: str, method: str, operation: dict[str, Any], problem: str) -> None:
    """Error answers as problem+json, plus those every route of its kind can give."""
    responses = operation.setdefault("responses", {})
    places = {p.get("in") for p in operation.get("parameters", [])}
    statuses = {"414"}
    if path.startswith("/v1/") and operation.get("security") != []:
        statuses |= {"401", "403"}
    if method in BODY_METHODS:  # the body guard reads any body (api.problems)
        statuses |= {"400", "413", "422"}
    if places & {"query", "header"}:
        statuses.add("422")
    elif method not in BODY_METHODS:
        responses.pop("422", None)  # SpecTree's, on a route with nothing to validate
    if "path" in places:
        statuses.add("404")
    for status in statuses - set(responses):
        responses[status] = problem_answer(_REASONS[status], problem)
    for status, response in responses.items():
        if int(status) >= 400:  # SpecTree's own 422 schema too: ours is the Problem
            response["content"] = {PROBLEM_MIMETYPE: {"schema": {"$ref": problem}}}


def _open(
    summary: str, content: dict[str, Any], tag: str, errors: dict[str, str] | None = None
) -> dict[str, Any]:
    """An operation without auth (``security: []``) answering 200 with ``content``."""
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    responses.update({status: {"description": text} for status, text in (errors or {}).items()})
    return {"get": {"summary": summary, "tags": [tag], "security": [], "responses": responses}}


def _json_object(**properties: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return {"application/json": {"schema": schema}}


_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def _unlisted_routes() -> dict[str, Any]:
    """Routes no SpecTree view describes (the 503's content is added by the caller)."""
    ready = _open(
        "Redis answers and the object store can be reached.",
        _json_object(
            status={"const": "ready"}, redis={"const": "ok"}, storage={"enum": ["local", "s3"]}
        ),
        "health",
        {"503": "Redis or the object store cannot be reached."},
    )
    return {
        "/healthz": _open("The process answers.", _json_object(status={"const": "ok"}), "health"),
        "/readyz": ready,
        "/metrics": _open("Prometheus metrics, text exposition format.", _TEXT, "health"),
        "/v1/openapi.json": _open(
            "This document.", {"application/json": {"schema": {"type": "object"}}}, "docs"
        ),
        "/v1/docs/openapi.json": _open(
            "SpecTree's own account, before this module completes it.",
            {"application/json": {"schema": {"type": "object"}}},
            "docs",
        ),
        "/v1/docs/redoc/": _open("The API reference (ReDoc).", _HTML, "docs"),
        "/v1/docs/swagger/": _open("The API reference (Swagger UI).", _HTML, "docs"),
        "/v1/files/{key}": _files_route(),
        "/v1/models/{model_id}/export": _export_route(),
    }


def _export_route() -> dict[str, Any]:
    formats = [f.value for f in ExportFormat]
    pending = _json_object(
        model_id={"type": "string"},
        format={"enum": formats},
        status={"const": "pending"},
        requested_at={"type": "number"},
        detail={"type": "string"},
    )
    return {
        "get": {
            "summary": "The model's export bundle, a zip (see docs/api.md, Taking a model away).",
            "tags": ["models"],
            "parameters": [
                {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": formats, "default": ExportFormat.KERAS.value},
                },
            ],
            "responses": {
                "200": {
                    "description": "The bundle (local storage).",
                    "content": {
                        "application/zip": {"schema": {"type": "string", "format": "binary"}}
                    },
                },
                "202": {
                    "description": "Being made: ask again after `Retry-After` seconds.",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                    "content": pending,
                },
                "302": {
                    "description": "Object storage: a short-lived presigned URL to the bundle.",
                    "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
                },
                "500": {"description": "The export could not be made; asking again retries."},
            },
        }
    }


def _files_route() -> dict[str, Any]:
    return {
        "get": {
            "summary": "An object the caller owns (local storage; S3 hands out presigned URLs).",
            "tags": ["files"],
            "parameters": [
                {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {
                "200": {
                    "description": "The object's bytes.",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "302": {
                    "description": "Object storage: a short-lived presigned URL to the object.",
                    "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
                },
            },
        }
    }


def _document_job_bodies(doc: dict[str, Any], schemas: dict[str, Any]) -> None:
    """``JobCreate`` as ``oneOf`` one branch per (kind, type), each with its params schema."""
    name = next(n for n in schemas if n.split(".")[0] == "JobCreate" and n.count(".") == 1)
    envelope = schemas[name]
    branches = []
    for spec in KINDS.values():
        for job_type, model in (
            (JobType.TRAIN, spec.train_params),
            (JobType.GENERATE, spec.generate_params),
        ):
            ref = _add_model(schemas, model, f"{spec.name} {job_type.value} params")
            branches.append(_branch(envelope, spec.name, job_type, ref, schemas))
    schemas[name] = {
        "title": "JobCreate",
        "description": "A job: one branch per `kind` and `type`, each with its own `params`.",
        "oneOf": branches,
    }


def _add_model(schemas: dict[str, Any], model: type[BaseModel], title: str) -> str:
    """Add ``model``'s JSON Schema (and its own ``$defs``) to the components."""
    prefix = "".join(c if c.isalnum() else "_" for c in title)
    schema = model.model_json_schema(ref_template=f"#/components/schemas/{prefix}.{{model}}")
    for sub_name, sub_schema in schema.pop("$defs", {}).items():
        schemas[f"{prefix}.{sub_name}"] = sub_schema
    schema["title"] = title
    schemas[prefix] = schema
    return f"#/components/schemas/{prefix}"


def _branch(
    envelope: dict[str, Any], kind: str, job_type: JobType, params_ref: str, schemas: dict[str, Any]
) -> dict[str, Any]:
    branch = copy.deepcopy(envelope)
    branch["title"] = f"{kind} {job_type.value} job"
    properties = branch["properties"]
    properties["type"] = {
        "const": job_type.value,
        "description": properties["type"].get("description", ""),
    }
    properties["kind"] = {"const": kind, "description": "Model kind; see GET /v1/kinds."}
    properties["params"] = {"$ref": params_ref}
    params = schemas[params_ref.rsplit("/", 1)[1]]
    if params.get("required"):
        branch["required"] = [*branch.get("required", []), "params"]
    return branch
