"""The ``/v1`` blueprint; each module beside this one adds its routes to it."""

from __future__ import annotations

from flask import Blueprint

from atelier.api.auth import require_api_key
from atelier.api.rate_limits import add_rate_limit_headers, spend_rate_budget

v1 = Blueprint("v1", __name__, url_prefix="/v1")
v1.before_request(require_api_key)
v1.before_request(spend_rate_budget)  # after the key: budgets are per owner
v1.after_request(add_rate_limit_headers)
