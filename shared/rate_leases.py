"""The read budget spent from per-process leases: an API process takes a few of an owner's
reads from the GCRA budget in Redis (``shared.rate_limits``) in one script call and spends
them locally, so most reads (status polls above all) make no round trip for the budget.

A lease of ``n`` reads is debited in Redis when it is taken, exactly as ``n`` reads at once
would be (all of the budget's arithmetic stays in the one script, on Redis's clock); a
lease is as large as the budget has room for, up to ``n``. What it changes, with P API
processes and leases of at most N reads (``ATELIER_READ_LEASE``, and never more than a
tenth of the burst, so a small budget stays exact), is stated in docs/operating.md:

- **Never more reads than the budget over time**: every read served was debited first.
- **In any window, at most P * (N - 1) more than an exact budget allows in it**: reads
  leased before the window and served in it. A lease's unused reads lapse ``LEASE_SECONDS``
  after it was taken, so only leases from the second before the window count.
- **A read may be refused while other processes hold up to (P - 1) * (N - 1) of the
  owner's reads unspent**; a process gives back its lapsed reads with its next lease for
  the owner (the TAT moved back, never before now), and otherwise they come back as the
  budget refills.
- The ``RateLimit`` field's ``r`` is the process's view: what Redis had left when the lease
  was taken, plus what the process still holds of it.

Denied: nothing is taken, and the answer says when one read will be there, as ``spend``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis

from .rate_limits import Budget, Decision, decision_of
from .redis_keys import KEYS, RedisKeys

LEASE_SECONDS = 1.0
"""A lease's unused reads lapse this long after it was taken (given back at the next)."""
LEASE_SHARE = 10
"""A lease is at most this fraction of the burst: a burst under 20 is spent exactly."""

# KEYS[1] budget's TAT; ARGV interval (ms), burst, reads wanted, reads given back (the
# unused part of this process's lapsed lease). Sets ``result``: reads taken (0: refused),
# TAT - now, retry (ms).
_LEASE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local interval = tonumber(ARGV[1])
local back = tonumber(ARGV[4])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
tat = math.max(tat - interval * back, now)
local room = math.floor((now + interval * tonumber(ARGV[2]) - tat) / interval)
local take = math.min(tonumber(ARGV[3]), room)
local result
if take < 1 then
  result = {0, tat - now, tat + interval - interval * tonumber(ARGV[2]) - now}
else
  tat = tat + interval * take
  result = {take, tat - now, 0}
end
if take < 1 and back == 0 then
elseif tat > now then redis.call('SET', KEYS[1], tat, 'PX', tat - now)
else redis.call('DEL', KEYS[1]) end
"""
_LEASE_ONLY = _LEASE + "return result\n"
# The same, and when reads were taken the hash at KEYS[2] after them (field, value, ...):
# a status poll's lease and its job record in one round trip (``api.rate_limits``).
_LEASE_THEN_HGETALL = (
    _LEASE
    + """
if result[1] > 0 then
  for _, item in ipairs(redis.call('HGETALL', KEYS[2])) do result[#result + 1] = item end
end
return result
"""
)


@dataclass
class Lease:
    left: int
    """Reads taken and not yet spent."""
    debt_ms: int
    """The budget's use in Redis (TAT - now) when the lease was taken."""
    taken_at: float

    def lapsed(self, now: float) -> bool:
        return now - self.taken_at >= LEASE_SECONDS


class ReadLeases:
    """One process's leases, per owner and budget (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        most: int,
        keys: RedisKeys = KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self._most = max(1, most)
        self._clock = clock
        self._leases: dict[tuple[str, str], Lease] = {}
        self._lock = threading.Lock()  # the API serves requests on threads
        self._lease = client.register_script(_LEASE_ONLY)
        self._lease_then_hgetall = client.register_script(_LEASE_THEN_HGETALL)

    def size(self, budget: Budget) -> int:
        return max(1, min(self._most, budget.burst // LEASE_SHARE))

    def spend(
        self, owner: str, budget: Budget, hash_key: str | None = None
    ) -> tuple[Decision, dict[bytes, bytes] | None]:
        """One read of ``budget``: from this process's lease, or from a new one taken in
        Redis together with the hash at ``hash_key`` (empty if there is none). The hash is
        None when nothing was read: a local spend, or a denial."""
        now = self._clock()
        with self._lock:
            held = self._leases.get((owner, budget.name))
            if held is not None and held.left > 0 and not held.lapsed(now):
                held.left -= 1
                return self._shown(budget, held), None
            back = self._leases.pop((owner, budget.name), None)
        returned = back.left if back is not None else 0
        taken, debt, retry, raw = self._take(owner, budget, returned, hash_key)
        if not taken:
            return decision_of(budget, False, debt, retry), None
        with self._lock:
            held = self._leases.get((owner, budget.name))  # another thread's, meanwhile
            left = taken - 1 + (held.left if held is not None else 0)
            lease = self._leases[(owner, budget.name)] = Lease(left, debt, now)
            return self._shown(budget, lease), raw

    def _take(
        self, owner: str, budget: Budget, returned: int, hash_key: str | None
    ) -> tuple[int, int, int, dict[bytes, bytes] | None]:
        keys = [self._keys.rate_limit(owner, budget.name)]
        args = [budget.interval_ms, budget.burst, self.size(budget), returned]
        if hash_key is None:
            reply = cast(list[int | bytes], self._lease(keys=keys, args=args))
        else:
            keys.append(hash_key)
            reply = cast(list[int | bytes], self._lease_then_hgetall(keys=keys, args=args))
        taken, debt, retry = (int(value) for value in reply[:3])
        if not taken or hash_key is None:
            return taken, debt, retry, None
        items = cast(list[bytes], reply[3:])
        return taken, debt, retry, dict(zip(items[::2], items[1::2], strict=True))

    def _shown(self, budget: Budget, lease: Lease) -> Decision:
        """What the caller may still do: Redis's room at the lease, plus what is held."""
        return decision_of(budget, True, lease.debt_ms - lease.left * budget.interval_ms, 0)
