"""Liveness and readiness, outside ``/v1`` and without auth (for probes)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify

from ...shared.errors import ServiceUnavailable
from ..services import Services, services

health = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@health.get("/healthz")
def healthz() -> Response:
    """The process answers."""
    return jsonify(status="ok")


@health.get("/readyz")
def readyz() -> Response:
    """Redis answers and the object store can be reached (checked at most once per
    ``READY_CACHE_SECONDS`` per process: a flood of probes costs no Redis PING or S3
    HeadBucket each)."""
    svc = services()
    readiness = current_app.extensions.setdefault(READINESS_EXTENSION, _Readiness())
    down = readiness.check(lambda: _probe(svc))
    if down is not None:
        raise down
    return jsonify(status="ready", redis="ok", storage=svc.settings.storage)


READY_CACHE_SECONDS = 1.5
READINESS_EXTENSION = "atelier.readiness"


class _Readiness:
    """The last probe's outcome, shared by the process's threads for a moment."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0
        self._down: ServiceUnavailable | None = None

    def check(self, probe: Callable[[], ServiceUnavailable | None]) -> ServiceUnavailable | None:
        with self._lock:  # one thread probes; the others wait for its answer
            if time.monotonic() >= self._until:
                self._down = probe()
                self._until = time.monotonic() + READY_CACHE_SECONDS
            return self._down


def _probe(svc: Services) -> ServiceUnavailable | None:
    try:
        svc.redis.ping()
    except Exception as exc:
        return _down("Redis", exc)
    try:
        svc.objects.check()
    except Exception as exc:
        return _down("Object storage", exc)
    return None


def _down(dependency: str, exc: Exception) -> ServiceUnavailable:
    """The answer names the dependency only: its error text (host names, paths, bucket)
    is for the server log, which gets it with the traceback."""
    log.warning("readyz: %s unreachable", dependency, exc_info=exc)
    return ServiceUnavailable(f"{dependency} is unreachable.")
