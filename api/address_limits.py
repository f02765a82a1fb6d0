"""Limits before authentication: one GCRA budget per client address (``shared.rate_limits``,
the same Lua script as the owners' budgets) for the requests no owner pays for.

What spends it: every request whose key or session fails to authenticate (on ``/v1`` and
the dashboard), sign-in, ``/readyz`` and the API documents. Over it: 429 ``rate-limited``
with ``Retry-After`` and the budget's ``RateLimit`` headers. ``/healthz`` (a liveness probe
that touches nothing) and requests that authenticate never spend it, so a client behind the
same address as an attacker keeps working with its own key.

The address is Werkzeug's ``remote_addr`` after ProxyFix (``ATELIER_TRUSTED_PROXY_HOPS``
says how many ``X-Forwarded-For`` hops to believe). An IPv6 client is keyed by its /64: one
host holds a whole /64 and could otherwise take a fresh budget per request.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from ..shared.errors import RateLimited
from ..shared.rate_limits import Budget
from .services import services

OPEN_ENDPOINTS = frozenset(
    {
        "health.readyz",
        "openapi",
        "openapi_v1/docs",
        "openapi_v1/docs_redoc",
        "openapi_v1/docs_swagger",
        "dashboard.sign_in",
    }
)
"""Routes anyone may call that cost the server work: each spends the address's budget."""

HSTS = "max-age=31536000"


def client_address() -> str:
    """The address a budget is kept for: the client's IPv4 address, or its IPv6 /64."""
    raw = request.remote_addr or "unknown"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64]
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def spend_address_budget() -> None:
    """One request of the caller's address budget, or 429 ``rate-limited``."""
    svc = services()
    settings = svc.settings
    budget = Budget("anonymous", settings.anonymous_per_minute, max(settings.anonymous_burst, 1))
    if not budget.limited:
        return
    decision = svc.rate_limiter.spend_for_address(client_address(), budget)
    g.rate_decision = decision
    if not decision.allowed:
        raise RateLimited(
            f"Too many requests without a valid key from this address ({budget.per_minute} a "
            f"minute, bursts of {budget.burst}); retry in {decision.retry_after} s, or "
            "authenticate with a valid key.",
            policy=budget.name,
            retry_after=decision.retry_after,
        )


def _limit_open_routes() -> None:
    if request.endpoint in OPEN_ENDPOINTS:
        spend_address_budget()


def _transport_headers(response: Response) -> Response:
    """HSTS on answers that came over TLS (directly, or through a trusted proxy), and the
    address budget's headers where one was spent (the owners' hook covers ``/v1``)."""
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    decision = g.get("rate_decision")
    if decision is not None and "RateLimit" not in response.headers:
        response.headers.update(decision.headers())
    return response


def install_address_limits(app: Flask, trusted_proxy_hops: int) -> None:
    if trusted_proxy_hops > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=trusted_proxy_hops, x_proto=trusted_proxy_hops
        )
    app.before_request(_limit_open_routes)
    app.after_request(_transport_headers)
