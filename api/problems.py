"""One error shape on the wire: every 4xx/5xx is ``application/problem+json``."""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from atelier.shared.errors import (
    PROBLEM_TYPE_PREFIX,
    MalformedRequest,
    PayloadTooLarge,
    ProblemError,
)

PROBLEM_MIMETYPE = "application/problem+json"
MULTIPART_OVERHEAD = 64 << 10  # boundaries and form fields around an uploaded file
log = logging.getLogger(__name__)


def problem_response(error: ProblemError) -> Response:
    body = error.to_problem(instance=request.path)
    response = Response(json.dumps(body), status=error.status, mimetype=PROBLEM_MIMETYPE)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="atelier"'
    return response


def _http_exception(exc: HTTPException) -> Response:
    """Werkzeug's own errors (404 route, 405 method, 413 streamed body) in our shape."""
    if exc.code == 413:
        return problem_response(PayloadTooLarge("The request body is larger than allowed."))
    status = exc.code or 500
    slug = (exc.name or "error").lower().replace(" ", "-")
    body = {
        "type": PROBLEM_TYPE_PREFIX + slug,
        "title": exc.name,
        "status": status,
        "detail": exc.description,
        "instance": request.path,
    }
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(ProblemError("The server failed; the error has been logged."))


def _too_large_detail() -> str:
    from atelier.api.services import services

    limit = services().settings.max_request_bytes
    return f"The request body is larger than the {limit}-byte limit; send a smaller body."


def guard_json_body() -> None:
    """Reject oversized and non-JSON bodies before any view or validation runs."""
    if request.method not in {"POST", "PUT", "PATCH"}:
        return
    from atelier.api.services import services

    settings = services().settings
    if request.mimetype == "multipart/form-data":
        # Uploads have their own, larger cap; the form parser reads the body later.
        if (request.content_length or 0) > settings.max_upload_bytes + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(
                f"The upload is larger than the {settings.max_upload_bytes}-byte limit.",
                limit_bytes=settings.max_upload_bytes,
            )
        return
    limit = settings.max_request_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(_too_large_detail(), limit_bytes=limit)
    raw = request.get_data(cache=True)
    if not raw:
        return
    if request.mimetype != "application/json":
        raise MalformedRequest(
            f"Send the body as JSON with 'Content-Type: application/json' "
            f"(got {request.mimetype or 'no content type'!r})."
        )
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise MalformedRequest(f"The body must be a JSON object, not {type(body).__name__}.")


def register_problem_handlers(app: Flask) -> None:
    app.register_error_handler(ProblemError, problem_response)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unexpected)
