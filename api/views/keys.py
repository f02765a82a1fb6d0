"""Managing the caller's API keys (an ``admin`` key) and reading its audit trail."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field
from spectree import Response

from ...shared.audit import AuditLog
from ...shared.auth import ApiKeyInfo
from ...shared.errors import NotFound
from ..auth import current_owner
from ..paging import checked_limit
from ..schemas import Problem
from ..services import services
from ..spec import spec
from . import v1

Scope = Literal["read", "submit", "upload", "admin"]
DAY = 86_400.0


class KeyOut(BaseModel):
    id: str = Field(description="Public id (first 16 hex digits of the key's SHA-256).")
    name: str
    scopes: list[Scope] = Field(description="`admin` implies the other three.")
    created_at: float = Field(description="Epoch seconds.")
    expires_at: float | None = Field(description="Epoch seconds; null: never.")
    last_used_at: float | None = Field(description="Epoch seconds, to the minute; null: never.")


class KeyCreated(KeyOut):
    key: str = Field(description="The key itself: shown once, never again.")


class KeyList(BaseModel):
    data: list[KeyOut]


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="What the key is for.")
    scopes: list[Scope] = Field(["read", "submit", "upload"], min_length=1, max_length=4)
    expires_in_days: float | None = Field(None, gt=0, le=3650)


class AuditQuery(BaseModel):
    limit: int = Field(
        20, ge=1, description="Events, newest first; at most ATELIER_LIST_PAGE_MAX."
    )


class AuditEvent(BaseModel):
    action: str = Field(
        description="`job.submit`, `job.cancel`, `job.delete`, "
        "`model.delete`, `dataset.delete`, `key.create|revoke|rotate`."
    )
    actor: str = Field(description="Id of the key that did it, or `cli`.")
    at: float = Field(description="Epoch seconds.")


class AuditList(BaseModel):
    data: list[dict[str, str | float]] = Field(
        description="Newest first; each has an AuditEvent's fields and its target's ids."
    )


def _out(info: ApiKeyInfo) -> KeyOut:
    return KeyOut.model_validate(info.model_dump())


def _created(key: str) -> tuple[KeyCreated, int]:
    info = services().api_keys.lookup_info(current_owner(), key)
    return KeyCreated(**_out(info).model_dump(), key=key), 201


@v1.get("/keys")
@spec.validate(resp=Response(HTTP_200=KeyList), tags=["keys"])
def list_keys() -> KeyList:
    """The caller's keys (never the keys themselves), oldest first."""
    return KeyList(data=[_out(k) for k in services().api_keys.list_for_owner(current_owner())])


@v1.post("/keys")
@spec.validate(resp=Response(HTTP_201=KeyCreated), tags=["keys"])
def create_key(json: KeyCreate) -> tuple[KeyCreated, int]:
    """Create a key for the caller's owner; the answer is the only time it is shown."""
    expires = time.time() + json.expires_in_days * DAY if json.expires_in_days else None
    key = services().api_keys.create(current_owner(), json.name, list(json.scopes), expires)
    return _created(key)


@v1.delete("/keys/<key_id>")
@spec.validate(resp=Response(HTTP_204=None, HTTP_404=Problem), tags=["keys"])
def revoke_key(key_id: str) -> tuple[str, int]:
    """Revoke a key: other API processes may honour it for ATELIER_AUTH_CACHE_SECONDS."""
    if services().api_keys.revoke(current_owner(), key_id) is None:
        raise NotFound(f"No key {key_id!r}.")
    return "", 204


@v1.post("/keys/<key_id>/rotate")
@spec.validate(resp=Response(HTTP_201=KeyCreated, HTTP_404=Problem), tags=["keys"])
def rotate_key(key_id: str) -> tuple[KeyCreated, int]:
    """Replace a key by a new one with its name, scopes and expiry; the old one is revoked."""
    key = services().api_keys.rotate(current_owner(), key_id)
    if key is None:
        raise NotFound(f"No key {key_id!r}.")
    return _created(key)


@v1.get("/audit")
@spec.validate(query=AuditQuery, resp=Response(HTTP_200=AuditList), tags=["keys"])
def audit(query: AuditQuery) -> AuditList:
    """The caller's audit trail, newest first: submits, cancels, deletes and key changes."""
    svc = services()
    limit = checked_limit(query.limit, svc.settings.list_page_max)
    return AuditList(data=AuditLog(svc.redis).read(current_owner(), limit))
