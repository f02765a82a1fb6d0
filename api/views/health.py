"""Liveness and readiness, outside ``/v1`` and without auth (for probes)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from atelier.api.services import services
from atelier.shared.errors import ServiceUnavailable

health = Blueprint("health", __name__)


@health.get("/healthz")
def healthz() -> Response:
    """The process answers."""
    return jsonify(status="ok")


@health.get("/readyz")
def readyz() -> Response:
    """Redis answers and the object store can be reached."""
    svc = services()
    try:
        svc.redis.ping()
    except Exception as exc:
        raise ServiceUnavailable(f"Redis unreachable: {exc}") from exc
    svc.objects.check()
    return jsonify(status="ready", redis="ok", storage=svc.settings.storage)
