"""Per-owner request budgets kept in Redis, so every API process spends the same ones.

Each budget is a GCRA (generic cell rate algorithm: a token bucket refilled continuously,
as in Brandur Leach's and redis-cell's limiters). It keeps one number, the theoretical
arrival time (TAT): when the bucket would be full again if nothing else came. A request at
``now`` is allowed when ``TAT + interval - burst * interval <= now`` and then moves the TAT on
by one ``interval`` (60 s / the per-minute rate). One Lua script reads Redis's own clock and
decides, so concurrent requests on any number of processes cannot overspend, and API hosts
need no synchronised clocks. A denied request spends nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import cast

import redis

from .limits import OwnerLimits
from .redis_keys import KEYS, RedisKeys

BUDGETS = ("submits", "uploads", "reads")
"""``POST /v1/jobs``, ``POST /v1/datasets``, and every other authenticated request."""

# KEYS[1] budget's TAT; ARGV interval (ms), burst, cost (requests; 1 if not given). Sets
# ``result``: allowed, TAT - now, retry (ms). All or nothing: a cost the bucket cannot cover
# now spends nothing.
_SPEND = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local interval = tonumber(ARGV[1])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local new_tat = tat + interval * tonumber(ARGV[3] or '1')
local allowed_at = new_tat - interval * tonumber(ARGV[2])
local result
if now < allowed_at then
  result = {0, tat - now, allowed_at - now}
else
  redis.call('SET', KEYS[1], new_tat, 'PX', new_tat - now)
  result = {1, new_tat - now, 0}
end
"""
_GCRA = _SPEND + "return result\n"
# The same, and when refused, ARGV[4] requests spent earlier given back (the TAT moved back,
# never before now): a sweep's trials past the one its request already spent, refused,
# leave the budget as it was before the request.
_GCRA_OR_REFUND = (
    _SPEND
    + """
if result[1] == 0 then
  local back = math.max(tat - interval * tonumber(ARGV[4]), now)
  if back > now then redis.call('SET', KEYS[1], back, 'PX', back - now)
  else redis.call('DEL', KEYS[1]) end
  result[2] = back - now
end
return result
"""
)
# The same arithmetic without spending: what ``GET /v1/usage`` shows.
_PEEK = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
return math.max(tonumber(redis.call('GET', KEYS[1]) or now), now) - now
"""


@dataclass(frozen=True)
class Budget:
    name: str
    per_minute: int
    """Average requests per minute; 0: the budget is unlimited."""
    burst: int
    """Requests allowed at once: the bucket's size."""

    @classmethod
    def of(cls, limits: OwnerLimits, name: str) -> Budget:
        per_minute: int = getattr(limits, f"{name}_per_minute")
        burst: int = getattr(limits, f"{name}_burst")
        return cls(name, per_minute, max(burst, 1))

    @property
    def limited(self) -> bool:
        return self.per_minute > 0

    @property
    def interval_ms(self) -> int:
        return math.ceil(60_000 / self.per_minute)

    @property
    def window_seconds(self) -> int:
        """Time to refill a whole burst: ``burst`` requests per this window is the rate."""
        return max(1, math.ceil(self.burst * self.interval_ms / 1000))


@dataclass(frozen=True)
class Decision:
    budget: Budget
    allowed: bool
    remaining: int
    """Requests that could be made right now."""
    reset_seconds: int
    """Seconds until one more request is available (0 with the bucket full)."""
    retry_after: int
    """Whole seconds to wait before this request would be allowed (0 when it was)."""

    def headers(self) -> dict[str, str]:
        """The HTTP fields that say it (``api.rate_limits`` documents their format)."""
        budget = self.budget
        fields = {
            "RateLimit-Policy": f'"{budget.name}";q={budget.burst};w={budget.window_seconds}',
            "RateLimit": f'"{budget.name}";r={self.remaining};t={self.reset_seconds}',
        }
        if not self.allowed:
            fields["Retry-After"] = str(self.retry_after)
        return fields


class RateLimiter:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._keys = keys
        self._gcra = client.register_script(_GCRA)
        self._gcra_or_refund = client.register_script(_GCRA_OR_REFUND)
        self._peek = client.register_script(_PEEK)

    def spend(self, owner: str, budget: Budget) -> Decision:
        """Spend one request of ``budget`` if it has one; one round trip to Redis."""
        return self.spend_key(self._keys.rate_limit(owner, budget.name), budget)

    def spend_for_address(self, address: str, budget: Budget) -> Decision:
        return self.spend_key(self._keys.address_rate_limit(address), budget)

    def spend_key(self, key: str, budget: Budget) -> Decision:
        allowed, debt, retry = cast(
            list[int], self._gcra(keys=[key], args=[budget.interval_ms, budget.burst])
        )
        return decision_of(budget, bool(allowed), debt, retry)

    def spend_more(self, owner: str, budget: Budget, cost: int, spent: int) -> Decision:
        """Spend ``cost`` more requests of ``budget`` at once, or none; when refused, give
        back the ``spent`` this request took already (one script: nothing can come
        between). The decision's ``retry_after``: when ``cost + spent`` will be there."""
        key = self._keys.rate_limit(owner, budget.name)
        allowed, debt, retry = cast(
            list[int],
            self._gcra_or_refund(keys=[key], args=[budget.interval_ms, budget.burst, cost, spent]),
        )
        decision = decision_of(budget, bool(allowed), debt, retry)
        if allowed:
            return decision
        # What is left still serves smaller requests: the RateLimit field says so.
        left = decision_of(budget, True, debt, 0)
        return replace(decision, remaining=left.remaining, reset_seconds=left.reset_seconds)

    def peek(self, owner: str, budget: Budget) -> Decision:
        """What the budget holds now, spending nothing."""
        debt = cast(int, self._peek(keys=[self._keys.rate_limit(owner, budget.name)]))
        return decision_of(budget, True, debt, 0)


def decision_of(budget: Budget, allowed: bool, debt_ms: int, retry_ms: int) -> Decision:
    """``debt_ms``: how far the TAT is ahead of now, i.e. the part of the bucket in use."""
    free_ms = budget.burst * budget.interval_ms - debt_ms
    remaining = max(0, min(budget.burst, free_ms // budget.interval_ms))
    if not allowed:
        wait = math.ceil(retry_ms / 1000)
        return Decision(budget, False, 0, wait, max(wait, 1))
    next_ms = (remaining + 1) * budget.interval_ms - free_ms
    reset = 0 if remaining >= budget.burst else math.ceil(next_ms / 1000)
    return Decision(budget, True, remaining, reset, 0)
