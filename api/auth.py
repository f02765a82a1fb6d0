"""Bearer-key authentication and scopes for every ``/v1`` route, and the audit hook."""

from __future__ import annotations

from flask import Response, g, request

from atelier.api.services import services
from atelier.shared.audit import AuditLog
from atelier.shared.auth import ID_CHARS, hash_key
from atelier.shared.errors import MissingScope, Unauthorized
from atelier.shared.logs import JOB_ID, OWNER

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

AUDITED = {
    "v1.create_job": "job.submit",
    "v1.cancel_job": "job.cancel",
    "v1.delete_finished_job": "job.delete",
    "v1.delete_trained_model": "model.delete",
    "v1.delete_dataset": "dataset.delete",
    "v1.create_key": "key.create",
    "v1.revoke_key": "key.revoke",
    "v1.rotate_key": "key.rotate",
}
"""Endpoint -> audit action, recorded by ``record_audit`` when the answer is a success."""


def required_scope(method: str, path: str) -> str:
    """Managing keys needs ``admin``; reading ``read``; changing datasets ``upload``;
    any other change (submit, cancel, delete a job or model) ``submit``."""
    if path.startswith("/v1/keys"):
        return "admin"
    if method in READ_METHODS:
        return "read"
    return "upload" if path.startswith("/v1/datasets") else "submit"


def require_api_key() -> None:
    """Before-request hook: resolve the caller's owner, or answer 401 (no valid key) or
    403 (the key lacks the route's scope)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send 'Authorization: Bearer <api key>'; create a key with `atelier keys create`."
        )
    record = services().api_keys.lookup(token.strip())
    if record is None:
        raise Unauthorized(
            "The API key is not valid (unknown, revoked or expired); "
            "create one with `atelier keys create`."
        )
    g.owner = record.owner
    g.key_id = hash_key(token.strip())[:ID_CHARS]
    OWNER.set(record.owner)
    job_id = (request.view_args or {}).get("job_id")
    if job_id:
        JOB_ID.set(job_id)
    scope = required_scope(request.method, request.path)
    if not record.allows(scope):
        raise MissingScope(
            f"This key's scopes are {record.scopes}; {request.method} {request.path} "
            f"needs {scope!r}.",
            scope=scope,
        )


def current_owner() -> str:
    owner: str = g.owner
    return owner


def current_key_id() -> str:
    key_id: str = g.key_id
    return key_id


def record_audit(response: Response) -> Response:
    """After-request hook: append a successful audited change to its owner's trail."""
    action = AUDITED.get(request.endpoint or "")
    if action is None or response.status_code >= 300 or "owner" not in g:
        return response
    fields = {k: str(v) for k, v in (request.view_args or {}).items()}
    body = response.get_json(silent=True) if response.is_json else None
    if isinstance(body, dict) and isinstance(body.get("id"), str):
        fields["id"] = body["id"]
    AuditLog(services().redis).append(g.owner, action, actor=g.key_id, **fields)
    return response
