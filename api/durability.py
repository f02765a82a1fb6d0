"""Redis going away under a request (a failover, a restart) and writes too few replicas
confirmed: both are 503s with ``Retry-After``, never 500s, and the process keeps serving.

A read that shows a job's outcome (a terminal status, its model, its outputs) is held to
the same rule as a write: a primary cut off from its replica keeps taking writes from the
processes beside it, a worker's finish among them, and a failover throws them away; a
client shown that outcome would act on one the job never had.

Each request's Redis client retries for ``ATELIER_REDIS_FAILOVER_WAIT_SECONDS`` first
(``api.services``), so a failover shorter than that is only a slow answer.
"""

from __future__ import annotations

import logging

import redis
from flask import Flask, Response, g, request

from ..shared.durability import RETRY_AFTER_SECONDS
from ..shared.errors import NotReplicated, ProblemError, ServiceUnavailable
from .problems import problem_response
from .request_local import this_g, this_request
from .services import services

log = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
# Errors a primary answers while it cannot take writes: a replica still being written to
# (READONLY, after a failover demoted it), lagging replicas (NOREPLICAS), a replica that
# lost its primary (MASTERDOWN).
_UNAVAILABLE_REPLIES = ("READONLY", "NOREPLICAS", "MASTERDOWN", "LOADING")


def redis_unavailable(exc: Exception) -> Response:
    log.warning("Redis unavailable on %s %s: %s", request.method, request.path, exc)
    return problem_response(
        ServiceUnavailable(
            "Redis is unavailable (a failover or a restart); nothing was acknowledged. "
            "Retry shortly (with the same Idempotency-Key for a submit).",
            retry_after=RETRY_AFTER_SECONDS,
        )
    )


def _redis_refused(exc: redis.ResponseError) -> Response:
    if str(exc).startswith(_UNAVAILABLE_REPLIES):
        return redis_unavailable(exc)
    log.error("Redis refused a command on %s %s", request.method, request.path, exc_info=exc)
    return problem_response(ProblemError("The server failed; the error has been logged."))


def outcome_shown() -> None:
    """This answer shows a job's outcome: ``confirm_writes`` sends it only once the
    replicas hold it."""
    g.atelier_outcome_shown = True


def confirm_writes(response: Response) -> Response:
    """A write, or an answer showing an outcome, answered 2xx or 3xx only once enough
    replicas hold it (``shared.durability``); else the answer becomes a 503."""
    req = this_request()
    shows_outcome = bool(this_g().get("atelier_outcome_shown"))
    if (req.method not in WRITE_METHODS and not shows_outcome) or response.status_code >= 400:
        return response
    try:
        services().durability.confirm("The job's outcome" if shows_outcome else "The write")
    except NotReplicated as exc:
        log.warning("%s %s: %s", request.method, request.path, exc)
        return problem_response(exc)
    except redis.RedisError as exc:
        return redis_unavailable(exc)
    return response


def install_durability(app: Flask) -> None:
    """Call before any ``after_request`` hook that writes (they run in reverse order), so
    the confirmation covers their writes too."""
    for error in REDIS_AWAY:
        app.register_error_handler(error, redis_unavailable)
    app.register_error_handler(redis.ResponseError, _redis_refused)
    app.after_request(confirm_writes)
