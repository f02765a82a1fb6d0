"""Rate limits as a pair of hooks on the ``/v1`` blueprint: before a view, spend one request
of the caller's budget (``shared.rate_limits``) or answer 429; after it, say what is left.

Headers follow draft-ietf-httpapi-ratelimit-headers-11 (May 2026), whose fields are HTTP
structured fields (RFC 9651): a policy item names the budget, ``q`` is its quota and ``w``
its window in seconds; a service-limit item gives ``r``, what remains, and ``t``, the
seconds until more is available::

    RateLimit-Policy: "submits";q=60;w=30
    RateLimit: "submits";r=59;t=1

A sweep (``POST /v1/sweeps``) spends one submit per trial, all at once or none: the hook
spends the request's one, the view the rest once it knows the count (``spend_more_submits``).

A GCRA budget of ``burst`` requests refilled at ``per_minute`` is advertised as ``q=burst``
over the time one burst takes to refill (60/min with a burst of 30: ``q=30;w=30``). A 429 adds
``Retry-After`` (whole seconds, never before ``t`` runs out, as the draft asks).

The ``reads`` budget is spent from per-process leases (``shared.rate_leases``: a few reads
taken from Redis at once; docs/operating.md states the error bound), so most reads make no
round trip for it. A status poll (``GET /v1/jobs/{id}``) whose body this process does not keep
(``api.job_cache``) and whose lease is spent reads its job record in the lease's own Lua
script: one round trip instead of two. The view takes the record with
``prefetched_job_hash``.

Only authenticated ``/v1`` routes are limited (the hooks run after ``require_api_key``);
probes, metrics and the API documents are on other blueprints and never are.
"""

from __future__ import annotations

from flask import Response, g

from ..shared.errors import RateLimited
from ..shared.limits import limits_for
from ..shared.rate_limits import Budget, Decision
from .auth import current_owner
from .present import poll_needs_read
from .request_local import this_g, this_request
from .services import services

# (method, endpoint) -> budget; every other authenticated request spends "reads".
BUDGET_OF_ROUTE = {
    ("POST", "v1.create_job"): "submits",
    ("POST", "v1.create_sweep"): "submits",
    ("POST", "v1.upload_dataset"): "uploads",
}


def budget_name() -> str:
    req = this_request()
    return BUDGET_OF_ROUTE.get((req.method, req.endpoint or ""), "reads")


# Routes whose view reads one job hash first: it rides on the budget's round trip.
PREFETCH_ENDPOINTS = frozenset({"v1.get_job"})


def spend_rate_budget() -> None:
    """Before-request hook: one request of the caller's budget, or 429 ``rate-limited``."""
    svc = services()
    owner = current_owner()
    budget = Budget.of(limits_for(svc.settings, owner), budget_name())
    if not budget.limited:
        return
    req, here = this_request(), this_g()
    job_id = (req.view_args or {}).get("job_id")
    if budget.name != "reads":
        decision = svc.rate_limiter.spend(owner, budget)
    elif req.endpoint in PREFETCH_ENDPOINTS and job_id and poll_needs_read(job_id):
        decision, raw = svc.read_leases.spend(owner, budget, svc.jobs.job_key(job_id))
        if raw is not None:
            here.prefetched_job = (job_id, raw)
    else:
        decision, _ = svc.read_leases.spend(owner, budget)
    here.rate_decision = decision
    if not decision.allowed:
        raise RateLimited(
            f"Over the {budget.name} rate limit ({budget.per_minute} a minute, bursts of "
            f"{budget.burst}); retry in {decision.retry_after} s.",
            policy=budget.name,
            retry_after=decision.retry_after,
        )


def spend_more_submits(count: int, what: str) -> None:
    """``count`` more submits at once for this request (a sweep's trials past the first, which
    the hook spent), or 429 ``rate-limited`` taking nothing, the hook's one given back too:
    ``Retry-After`` says when the whole request will fit. ``what``: the request, as the
    detail names it ("a sweep of 32 trials")."""
    decision: Decision | None = g.get("rate_decision")
    if decision is None or count <= 0:  # not limited (no budget, or an unlimited one)
        return
    budget = decision.budget
    svc = services()
    decision = svc.rate_limiter.spend_more(current_owner(), budget, count, spent=1)
    g.rate_decision = decision
    if not decision.allowed:
        raise RateLimited(
            f"Over the {budget.name} rate limit: {what} spends {count + 1} of your "
            f"{budget.name} ({budget.per_minute} a minute, bursts of {budget.burst}), one per "
            f"job; retry in {decision.retry_after} s. Nothing was spent or queued.",
            policy=budget.name,
            retry_after=decision.retry_after,
        )


def submits_burst() -> int | None:
    """The most submits one request can spend (the budget's burst); None when unlimited."""
    decision: Decision | None = g.get("rate_decision")
    return decision.budget.burst if decision is not None else None


def prefetched_job_hash(job_id: str) -> dict[bytes, bytes] | None:
    """The job hash ``spend_rate_budget`` read for this request (empty: no such job), or
    None when it read none for ``job_id`` (a kept body, a leased read); taken once."""
    found: tuple[str, dict[bytes, bytes] | None] | None = g.pop("prefetched_job", None)
    return found[1] if found is not None and found[0] == job_id else None


def add_rate_limit_headers(response: Response) -> Response:
    """After-request hook: the budget's headers on every answer it limited, 429 or not."""
    decision: Decision | None = g.get("rate_decision")
    if decision is not None:
        response.headers.update(decision.headers())
    return response
