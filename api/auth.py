"""Bearer-key authentication for every ``/v1`` route."""

from __future__ import annotations

from flask import g, request

from atelier.api.services import services
from atelier.shared.errors import Unauthorized
from atelier.shared.logs import JOB_ID, OWNER


def require_api_key() -> None:
    """Before-request hook: resolve the caller's owner or answer 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "Send 'Authorization: Bearer <api key>'; create a key with `atelier keys create`."
        )
    record = services().api_keys.lookup(token.strip())
    if record is None:
        raise Unauthorized("The API key is not valid; create one with `atelier keys create`.")
    g.owner = record.owner
    OWNER.set(record.owner)
    job_id = (request.view_args or {}).get("job_id")
    if job_id:
        JOB_ID.set(job_id)


def current_owner() -> str:
    owner: str = g.owner
    return owner
