"""One error shape on the wire: every 4xx/5xx is ``application/problem+json``."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..shared.errors import (
    PROBLEM_TYPE_PREFIX,
    MalformedRequest,
    PayloadTooLarge,
    ProblemError,
    ValidationFailed,
)
from .request_local import this_request

PROBLEM_MIMETYPE = "application/problem+json"
MAX_URI_CHARS = 4096
"""Longest path and query the app reads; longer is a 414 problem (``refuse_long_uri``)."""
MULTIPART_OVERHEAD = 64 << 10  # boundaries and form fields around an uploaded file
log = logging.getLogger(__name__)


class UriTooLong(ProblemError):
    status, slug, title = 414, "uri-too-long", "URI too long"


def refuse_long_uri() -> None:
    """Before any hook that reads a header: a path and query longer than ``MAX_URI_CHARS``
    is a 414 in our shape (gunicorn's own, plain-text 414 only starts at 8190 bytes)."""
    req = this_request()
    uri = req.environ.get("RAW_URI") or req.full_path
    if len(uri) > MAX_URI_CHARS:
        raise UriTooLong(
            f"The path and query are {len(uri)} characters; at most {MAX_URI_CHARS} are read."
        )


def problem_response(error: ProblemError) -> Response:
    body = error.to_problem(instance=request.path)
    response = Response(json.dumps(body), status=error.status, mimetype=PROBLEM_MIMETYPE)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="atelier"'
    if "retry_after" in error.extensions:
        response.headers["Retry-After"] = str(error.extensions["retry_after"])
    return response


def _http_exception(exc: HTTPException) -> Response:
    """Werkzeug's own errors (404 route, 405 method, 413 streamed body) in our shape."""
    if exc.code == 413:
        if request.mimetype == "multipart/form-data":
            return problem_response(
                _upload_too_large(" (or a form field too long, or too many parts)")
            )
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
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    # Werkzeug's own headers, such as the ``Allow`` a 405 must carry (RFC 9110).
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return problem_response(ProblemError("The server failed; the error has been logged."))


BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_MAX_DEPTH = 32
"""Deepest nesting of arrays and objects a JSON body may have. Job bodies need 3; a
body nested thousands deep made Python's parser raise RecursionError (a 500)."""


def _too_large_detail() -> str:
    from .services import services

    limit = services().settings.max_request_bytes
    return f"The request body is larger than the {limit}-byte limit; send a smaller body."


def _upload_too_large(also: str = "") -> PayloadTooLarge:
    from .services import services

    limit = services().settings.max_upload_bytes
    return PayloadTooLarge(
        f"The upload is larger than the {limit}-byte limit{also}.", limit_bytes=limit
    )


def guard_json_body() -> None:
    """Cap every body by its real length, then parse and check JSON bodies, before any view
    or validation runs.

    ``request.max_content_length`` makes Werkzeug count the bytes actually read, so a
    chunked body (no ``Content-Length``) is held to the limit too (413)."""
    if request.method not in BODY_METHODS:
        return
    from .services import services

    settings = services().settings
    if request.blueprint == "dashboard":
        _guard_form_body()
        return
    if request.mimetype == "multipart/form-data":
        if not request.mimetype_params.get("boundary"):
            # Werkzeug's form parser raises ValueError (a 500) on this.
            raise MalformedRequest("A multipart/form-data body needs a boundary parameter.")
        # Uploads have their own, larger cap; the form parser reads the body later.
        request.max_content_length = settings.max_upload_bytes + MULTIPART_OVERHEAD
        if (request.content_length or 0) > request.max_content_length:
            raise _upload_too_large()
        return
    raw = _read_body(settings.max_request_bytes)
    if not raw:
        return
    if request.mimetype != "application/json":
        raise MalformedRequest(
            f"Send the body as JSON with 'Content-Type: application/json' "
            f"(got {request.mimetype or 'no content type'!r})."
        )
    body = parse_json_object(raw)
    check_json_strings(body, settings.max_json_string_chars)


DASHBOARD_FORM_BYTES = 16 << 10
"""The dashboard's forms hold a key, a CSRF token and a path: nothing near this."""
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def _guard_form_body() -> None:
    """A dashboard form, as browsers send one (urlencoded by default, or multipart), and
    small: a sign-in post must not be a 64 MiB body spooled to disk."""
    request.max_content_length = DASHBOARD_FORM_BYTES
    if (request.content_length or 0) > DASHBOARD_FORM_BYTES:
        raise PayloadTooLarge(
            f"A dashboard form is at most {DASHBOARD_FORM_BYTES} bytes.",
            limit_bytes=DASHBOARD_FORM_BYTES,
        )
    if request.mimetype == "multipart/form-data" and not request.mimetype_params.get("boundary"):
        raise MalformedRequest("A multipart/form-data body needs a boundary parameter.")
    if request.mimetype not in FORM_TYPES and request.content_length:
        raise MalformedRequest(
            "Send the form as application/x-www-form-urlencoded or multipart/form-data "
            f"(got {request.mimetype or 'no content type'!r})."
        )


def _read_body(limit: int) -> bytes:
    """The whole body, or 413 if it is longer than ``limit`` bytes however it was sent."""
    # Werkzeug hands over the first max_content_length bytes of a body without a length
    # and only objects to a read past them: ask for one byte more to see the excess.
    request.max_content_length = limit + 1
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:  # its Content-Length says so
        raw = None
    if raw is None or len(raw) > limit:
        raise PayloadTooLarge(_too_large_detail(), limit_bytes=limit)
    return raw


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Strict JSON (RFC 8259): UTF-8 only (``json.loads`` would guess UTF-16 or -32 from
    bytes), no NaN/Infinity, no number that overflows a float, nesting bounded."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"The body is not UTF-8 (byte {exc.start} is invalid).") from exc
    try:
        body = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise MalformedRequest(_too_deep()) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedRequest(f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise MalformedRequest(f"The body must be a JSON object, not {type(body).__name__}.")
    return body


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} does not fit a 64-bit float")
    return value


def _too_deep() -> str:
    return f"The body nests arrays and objects more than {JSON_MAX_DEPTH} deep."


def check_json_strings(body: dict[str, Any], max_chars: int) -> None:
    """Walk the parsed body (without recursion): nesting within ``JSON_MAX_DEPTH``, every
    key and string at most ``max_chars`` long and encodable as UTF-8 (a lone surrogate
    such as ``"\\ud800"`` parses, but could never be stored)."""
    pending: list[tuple[Any, str, int]] = [(body, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if depth > JSON_MAX_DEPTH:
            raise MalformedRequest(_too_deep())
        if isinstance(value, dict):
            for key, item in value.items():
                _check_string(key, path or "(body)", max_chars)
                pending.append((item, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}.{index}", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str):
            _check_string(value, path, max_chars)


def _check_string(value: str, field: str, max_chars: int) -> None:
    if max_chars and len(value) > max_chars:
        message = f"longer than {max_chars} characters ({len(value)})"
    else:
        try:
            value.encode("utf-8")
            return
        except UnicodeEncodeError:
            message = "holds a lone UTF-16 surrogate, which is not text"
    raise ValidationFailed(f"{field}: {message}", errors=[{"field": field, "message": message}])


def register_problem_handlers(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_long_uri)
    app.register_error_handler(ProblemError, problem_response)
    app.register_error_handler(HTTPException, _http_exception)
    app.register_error_handler(Exception, _unexpected)
