"""Liveness and readiness, outside ``/v1`` and without auth (for probes)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify

from atelier.api.services import services
from atelier.shared.errors import ServiceUnavailable

health = Blueprint("health", __name__)
log = logging.getLogger(__name__)


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
        raise _down("Redis", exc) from None
    try:
        svc.objects.check()
    except Exception as exc:
        raise _down("Object storage", exc) from None
    return jsonify(status="ready", redis="ok", storage=svc.settings.storage)


def _down(dependency: str, exc: Exception) -> ServiceUnavailable:
    """The answer names the dependency only: its error text (host names, paths, bucket)
    is for the server log, which gets it with the traceback."""
    log.warning("readyz: %s unreachable", dependency, exc_info=exc)
    return ServiceUnavailable(f"{dependency} is unreachable.")
