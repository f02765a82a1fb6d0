"""The OpenAPI document's account of rate limits and quotas, added to every limited route
at once (the limits are hooks, so no view declares them): the ``RateLimit`` and
``RateLimit-Policy`` headers on its answers, its 429, and the 403 of routes with quotas."""

from __future__ import annotations

import copy
from typing import Any

QUOTA_ROUTES = {("/v1/jobs", "post"), ("/v1/datasets", "post")}
ADDRESS_LIMITED_PATHS = frozenset({"/readyz"})
"""Open routes in the document that spend the client address's budget (api.address_limits);
every authenticated route's 429 may come from that budget too, when its key fails."""
_STRING = {"schema": {"type": "string"}}
HEADERS = {
    "RateLimit": {
        **_STRING,
        "description": 'What is left of the budget, e.g. `"submits";r=59;t=1` (remaining '
        "requests, seconds until one more); draft-ietf-httpapi-ratelimit-headers-11.",
    },
    "RateLimit-Policy": {
        **_STRING,
        "description": 'The budget, e.g. `"submits";q=60;w=30` (a burst of q requests, '
        "refilled over w seconds).",
    },
}
RETRY_AFTER = {
    "schema": {"type": "integer", "minimum": 1},
    "description": "Whole seconds to wait before the request can succeed.",
}


def document_limits(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``doc`` with the limits described on every authenticated ``/v1`` route."""
    doc = copy.deepcopy(doc)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.get("responses", {})
            if path in ADDRESS_LIMITED_PATHS:
                responses["429"] = _answer(
                    "Over the client address's budget (`anonymous`); retry after "
                    "`Retry-After` seconds.",
                    _extended(
                        schemas, _problem_ref(responses["503"]), "RateLimitedProblem", _RATE_FIELDS
                    ),
                    {**HEADERS, "Retry-After": RETRY_AFTER},
                )
            if not path.startswith("/v1/") or "401" not in responses:
                continue  # no owner's budget
            problem = _problem_ref(responses["401"])
            for status, response in responses.items():
                if status.startswith("2"):
                    response.setdefault("headers", {}).update(HEADERS)
            responses["429"] = _answer(
                "Over a rate budget; retry after `Retry-After` seconds.",
                _extended(schemas, problem, "RateLimitedProblem", _RATE_FIELDS),
                {**HEADERS, "Retry-After": RETRY_AFTER},
            )
            if (path, method) in QUOTA_ROUTES:
                responses["403"] = _answer(
                    "A quota is used up (`quota-exceeded`); nothing was stored or queued.",
                    _extended(schemas, problem, "QuotaProblem", _QUOTA_FIELDS),
                    dict(HEADERS),
                )
    return doc


_RATE_FIELDS = {
    "policy": {
        "type": "string",
        "description": "The budget: submits, uploads or reads (the owner's), or anonymous "
        "(the client address's, spent by requests without valid credentials).",
    },
    "retry_after": {"type": "integer", "description": "As the Retry-After header."},
}
_QUOTA_FIELDS = {
    "quota": {"type": "string", "description": "queued_jobs, stored_bytes or datasets."},
    "usage": {"type": "integer", "description": "What the owner uses now."},
    "limit": {"type": "integer", "description": "The owner's quota."},
}


def _problem_ref(response: dict[str, Any]) -> str:
    ref: str = response["content"]["application/problem+json"]["schema"]["$ref"]
    return ref


def _extended(
    schemas: dict[str, Any], base_ref: str, name: str, fields: dict[str, Any]
) -> dict[str, str]:
    schemas[name] = {
        "allOf": [{"$ref": base_ref}, {"type": "object", "properties": fields}],
        "title": name,
    }
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: dict[str, str], headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": headers,
        "content": {"application/problem+json": {"schema": schema}},
    }
