"""Authentication (a bearer key, or a dashboard session cookie standing for one) and scopes
for every ``/v1`` route, and the audit hook."""

from __future__ import annotations

from collections.abc import Callable

from flask import Response, g, request

from ..shared.audit import AuditLog
from ..shared.auth import ID_CHARS, KEY_PREFIX, ApiKeyRecord, hash_key
from ..shared.errors import CsrfFailed, MissingScope, Unauthorized
from ..shared.logs import JOB_ID, OWNER
from .address_limits import spend_address_budget
from .dashboard.sessions import (
    COOKIE_NAME,
    CSRF_HEADER,
    SessionStore,
    csrf_matches,
)
from .request_local import this_g, this_request
from .services import services

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

AUDITED = {
    "v1.create_job": "job.submit",
    "v1.cancel_job": "job.cancel",
    "v1.update_job": "job.update",
    "v1.create_sweep": "sweep.submit",
    "v1.cancel_sweep": "sweep.cancel",
    "v1.delete_finished_job": "job.delete",
    "v1.delete_trained_model": "model.delete",
    "v1.delete_dataset": "dataset.delete",
    "v1.create_key": "key.create",
    "v1.revoke_key": "key.revoke",
    "v1.rotate_key": "key.rotate",
    "v1.rotate_webhook_secret": "webhook-secret.rotate",
}
"""Endpoint -> audit action, recorded by ``record_audit`` when the answer is a success."""


def required_scope(method: str, path: str) -> str:
    """Managing keys needs ``admin``; reading ``read``; changing datasets ``upload``;
    any other change (submit, cancel, delete a job or model) ``submit``."""
    if path.startswith("/v1/keys"):
        return "admin"
    if path.startswith("/v1/webhooks/secret"):
        # Reading the secret is enough to forge deliveries: the scope that sets webhooks.
        return "submit"
    if method in READ_METHODS:
        return "read"
    return "upload" if path.startswith("/v1/datasets") else "submit"


def require_api_key() -> None:
    """Before-request hook: resolve the caller's owner, or answer 401 (no valid key) or
    403 (the key lacks the route's scope, or a cookie-made change lacks its CSRF token).
    A bearer key wins; without one, a dashboard session cookie stands for the key it was
    made from (the dashboard's fetch calls and EventSource cannot send headers of their
    own choosing to every route, and must not hold the key in script)."""
    req, here = this_request(), this_g()
    header = req.headers.get("Authorization", "")
    try:
        if not header and COOKIE_NAME in req.cookies:
            record, digest = _session_credentials()
            here.session_id = req.cookies.get(COOKIE_NAME)
        else:
            record, digest = _bearer_credentials(header)
    except Unauthorized:
        # No owner pays for a failed authentication: its client address does (429 over).
        spend_address_budget()
        raise
    here.owner = record.owner
    here.key_digest = digest
    here.key_id = digest[:ID_CHARS]
    OWNER.set(record.owner)
    job_id = (req.view_args or {}).get("job_id")
    if job_id:
        JOB_ID.set(job_id)
    scope = required_scope(req.method, req.path)
    if not record.allows(scope):
        raise MissingScope(
            f"This key's scopes are {record.scopes}; {req.method} {req.path} "
            f"needs {scope!r}.",
            scope=scope,
        )


def _bearer_credentials(header: str) -> tuple[ApiKeyRecord, str]:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send 'Authorization: Bearer <api key>'; create a key with `atelier keys create`."
        )
    token = token.strip()
    digest = hash_key(token)  # once: ``lookup`` would hash it again
    record = services().api_keys.lookup_digest(digest) if token.startswith(KEY_PREFIX) else None
    if record is None:
        raise Unauthorized(
            "The API key is not valid (unknown, revoked or expired); "
            "create one with `atelier keys create`."
        )
    return record, digest


def session_store() -> SessionStore:
    svc = services()
    return SessionStore(svc.redis, svc.settings.dashboard_session_seconds)


def _session_credentials() -> tuple[ApiKeyRecord, str]:
    """The record of the key behind the request's session cookie. A change (any unsafe
    method) must also carry the session's CSRF token in ``X-CSRF-Token``."""
    session = session_store().get(request.cookies.get(COOKIE_NAME))
    if session is None:
        raise Unauthorized("The dashboard session has ended (expired or signed out); sign in.")
    if request.method not in READ_METHODS and not csrf_matches(
        session.csrf_token, request.headers.get(CSRF_HEADER)
    ):
        raise CsrfFailed(f"A change made with the session cookie needs the {CSRF_HEADER} header.")
    record = services().api_keys.lookup_digest(session.key_digest)
    if record is None:
        raise Unauthorized("The key this session was made from is revoked or expired; sign in.")
    return record, session.key_digest


def credentials_check() -> Callable[[], bool]:
    """For a long request (an event stream): whether the key it was authenticated with is
    still valid, and, for a cookie, its session still open. A revoke, an expiry or a
    sign-out ends the stream at its next check instead of an hour later."""
    digest: str = g.key_digest
    session_id: str | None = g.get("session_id")
    api_keys = services().api_keys
    sessions = session_store() if session_id is not None else None

    def still_valid() -> bool:
        if sessions is not None and sessions.get(session_id) is None:
            return False
        return api_keys.lookup_digest(digest) is not None

    return still_valid


def current_owner() -> str:
    owner: str = this_g().owner
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
