"""The ``/v1`` blueprint; each module beside this one adds its routes to it."""

from __future__ import annotations

from flask import Blueprint, Response

from ..auth import require_api_key
from ..rate_limits import add_rate_limit_headers, spend_rate_budget


def _not_stored(response: Response) -> Response:
    """Every ``/v1`` answer is one owner's (and some carry a secret: a new key, the webhook
    secret): no browser or proxy cache may keep it. A route that says otherwise (event
    streams, served files) keeps its own."""
    response.headers.setdefault("Cache-Control", "no-store")
    return response


v1 = Blueprint("v1", __name__, url_prefix="/v1")
v1.before_request(require_api_key)
v1.before_request(spend_rate_budget)  # after the key: budgets are per owner
v1.after_request(add_rate_limit_headers)
v1.after_request(_not_stored)
