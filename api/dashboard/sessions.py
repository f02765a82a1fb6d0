"""Dashboard sessions: a browser signs in once with an API key and holds a random session id
in an HttpOnly cookie instead of the key.

A session lives in Redis under ``{p}:dashboard-session:{sha256(id)}`` (a string of JSON,
with the session's TTL): the hash of the key it was made from (never the key) and the
session's CSRF token. Redis holds hashes only, so a copy of it signs nobody in. A session
ends when its TTL runs out, when its owner signs out (the record is deleted: the cookie is
worthless at once, on every API process) or when its key is revoked or expires (every use
looks the key up again by its hash).

CSRF: one random token per session, put in each page (a ``<meta>`` and hidden form fields)
and sent back in a form field or the ``X-CSRF-Token`` header; compared in constant time.
SameSite=Strict already keeps other sites' requests from carrying the cookie; the token is
the second lock, for browsers and proxies that do not honour it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

import redis

from ...shared.auth import hash_key
from ...shared.redis_keys import KEYS, RedisKeys

COOKIE_NAME = "atelier_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
ID_BYTES = 32
"""256 random bits per session id and per CSRF token (``secrets.token_urlsafe``)."""


@dataclass(frozen=True)
class DashboardSession:
    key_digest: str
    """sha256 of the API key the session was made from: it authenticates like that key."""
    csrf_token: str
    created_at: float
    expires_at: float


def csrf_matches(expected: str, sent: str | None) -> bool:
    """Constant time, so the comparison leaks no prefix of the token."""
    return bool(sent) and hmac.compare_digest(expected.encode(), (sent or "").encode())


class SessionStore:
    def __init__(self, client: redis.Redis, ttl_seconds: int, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        self._prefix = f"{keys.prefix}:dashboard-session:"

    def _key(self, session_id: str) -> str:
        return self._prefix + hashlib.sha256(session_id.encode()).hexdigest()

    def create(self, api_key: str) -> tuple[str, DashboardSession]:
        """A new session for a key the caller has already verified: (cookie value, record)."""
        session_id = secrets.token_urlsafe(ID_BYTES)
        now = time.time()
        session = DashboardSession(
            key_digest=hash_key(api_key),
            csrf_token=secrets.token_urlsafe(ID_BYTES),
            created_at=now,
            expires_at=now + self._ttl,
        )
        self._redis.set(self._key(session_id), json.dumps(session.__dict__), ex=self._ttl)
        return session_id, session

    def get(self, session_id: str | None) -> DashboardSession | None:
        """The live session the cookie names, or None (unknown, signed out, expired)."""
        if not session_id or len(session_id) > 128:
            return None
        raw = self._redis.get(self._key(session_id))
        if raw is None:
            return None
        session = DashboardSession(**json.loads(raw))
        # Redis expires the key; this guards a clock or TTL that drifted past it.
        return session if session.expires_at > time.time() else None

    def delete(self, session_id: str | None) -> None:
        if session_id:
            self._redis.delete(self._key(session_id))
