"""The dashboard blueprint: its guard (a session or a redirect to sign-in), its security
headers, sign-in and sign-out. The pages themselves are in ``pages``."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from ...shared.auth import ID_CHARS
from ..address_limits import spend_address_budget
from ..auth import session_store
from ..rate_limits import spend_rate_budget
from ..services import services
from .sessions import COOKIE_NAME, CSRF_FIELD, csrf_matches

dashboard = Blueprint(
    "dashboard",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",  # the app keeps Flask's own /static rule
)
SIGN_IN_COOKIE = "atelier_sign_in"
"""Double-submit token of the sign-in form (there is no session yet to hold one): stops
another site signing a browser in under the other site's key (login CSRF)."""
OPEN_ENDPOINTS = frozenset({"dashboard.sign_in", "dashboard.static"})


@dashboard.before_request
def require_session() -> BaseResponse | None:
    """Every page but sign-in needs a live session; a form post also its CSRF token."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    session = session_store().get(request.cookies.get(COOKIE_NAME))
    if session is None:
        spend_address_budget()  # no owner to pay for it: the client's address does
        return redirect(url_for("dashboard.sign_in", next=request.full_path.rstrip("?")))
    record = services().api_keys.lookup_digest(session.key_digest)
    if record is None:  # the key was revoked or expired since
        spend_address_budget()
        return redirect(url_for("dashboard.sign_in"))
    if request.method == "POST" and not csrf_matches(
        session.csrf_token, request.form.get(CSRF_FIELD)
    ):
        abort(403, "The form's CSRF token is missing or wrong; reload the page and retry.")
    if not record.allows("read"):
        abort(403, f"This key's scopes are {record.scopes}; the dashboard needs 'read'.")
    g.dashboard_session = session
    g.dashboard_key = record
    g.owner = record.owner
    g.key_id = session.key_digest[:ID_CHARS]
    spend_rate_budget()  # a page is a read of its owner's, like the API's (429 over)
    return None


@dashboard.after_request
def security_headers(response: BaseResponse) -> BaseResponse:
    """No inline script anywhere, no framing, nothing cached that belongs to a session."""
    settings = services().settings
    media = "'self'"
    if settings.storage == "s3":
        media += " " + _s3_origin(settings.s3_endpoint_url)
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {media} data:; media-src {media}; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "dashboard.static":
        response.headers["Cache-Control"] = "no-store"
    return response


def _s3_origin(endpoint: str) -> str:
    """Presigned downloads come from the S3 endpoint (or AWS when none is set)."""
    if not endpoint:
        return "https://*.amazonaws.com"
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


@dashboard.app_context_processor
def page_context() -> dict[str, Any]:
    session = g.get("dashboard_session")
    return {"csrf_token": session.csrf_token if session else "", "owner": g.get("owner")}


@dashboard.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> BaseResponse | tuple[str, int]:
    """Paste an API key; the browser gets a session cookie, never the key."""
    error = None
    if request.method == "POST":
        key = request.form.get("api_key", "").strip()
        if not csrf_matches(request.cookies.get(SIGN_IN_COOKIE, ""), request.form.get(CSRF_FIELD)):
            error = "The sign-in form expired; try again."
        elif (record := services().api_keys.lookup(key)) is None:
            error = "That key is not valid (unknown, revoked or expired)."
        elif not record.allows("read"):
            error = f"That key's scopes are {record.scopes}; the dashboard needs 'read'."
        else:
            return _signed_in(key)
    token = secrets.token_urlsafe(32)
    # The key is never echoed back into the form, even after a failed attempt.
    page = render_template("sign_in.html", error=error, sign_in_token=token, next=_next())
    answer = make_response(page, 401 if error else 200)
    _set_cookie(answer, SIGN_IN_COOKIE, token, max_age=3600)
    return answer


def _signed_in(key: str) -> BaseResponse:
    session_id, _ = session_store().create(key)
    answer = redirect(_next())
    _set_cookie(answer, COOKIE_NAME, session_id, services().settings.dashboard_session_seconds)
    answer.delete_cookie(SIGN_IN_COOKIE, path="/")
    return answer


def _next() -> str:
    """Where to go after sign-in: a local path only (never another site)."""
    target = request.values.get("next", "")
    # Browsers and Werkzeug drop tabs and newlines from a Location (and read a backslash
    # as a slash): "/\t/evil.example" would leave as "//evil.example", another site.
    controls = any(ch < " " or ch == "\x7f" for ch in target)
    if controls or "\\" in target or not target.startswith("/") or target.startswith("//"):
        return url_for("dashboard.jobs")
    return target


def _set_cookie(response: BaseResponse, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )


@dashboard.post("/sign-out")
def sign_out() -> BaseResponse:
    """Ends the session in Redis (the cookie is worthless on every API process at once)."""
    session_store().delete(request.cookies.get(COOKIE_NAME))
    answer = redirect(url_for("dashboard.sign_in"))
    answer.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict")
    return answer
