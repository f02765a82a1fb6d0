"""What the caller uses of its quotas and rate budgets, and its limits."""

from __future__ import annotations

from spectree import Response

from ...shared.limits import limits_for
from ...shared.quotas import UNITS
from ...shared.rate_limits import BUDGETS, Budget
from ..auth import current_owner
from ..schemas import QuotaOut, RateBudgetOut, UsageOut
from ..services import services
from ..spec import spec
from . import v1


@v1.get("/usage")
@spec.validate(resp=Response(HTTP_200=UsageOut), tags=["usage"])
def usage() -> UsageOut:
    """Each quota with its use and limit, each rate budget with what is left (0: no limit)."""
    svc = services()
    owner = current_owner()
    limits = limits_for(svc.settings, owner)
    quotas = [
        QuotaOut(
            name=q.name, usage=q.usage, limit=q.limit, unit=UNITS[q.name], reserved=q.reserved
        )
        for q in svc.quotas.usage(owner, limits)
    ]
    budgets = []
    for name in BUDGETS:
        budget = Budget.of(limits, name)
        now = svc.rate_limiter.peek(owner, budget) if budget.limited else None
        budgets.append(
            RateBudgetOut(
                name=name,
                per_minute=budget.per_minute,
                burst=budget.burst,
                remaining=now.remaining if now else budget.burst,
                reset_seconds=now.reset_seconds if now else 0,
            )
        )
    return UsageOut(
        owner=owner,
        quotas=quotas,
        rate_limits=budgets,
        max_running_jobs=limits.max_running_jobs,
        share=limits.share,
    )
