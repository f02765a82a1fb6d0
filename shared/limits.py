"""What one owner may use of a shared Atelier: the defaults are settings, and
``ATELIER_OWNER_LIMITS`` (a JSON object) overrides them per owner, e.g.::

    {"studio": {"max_running_jobs": 8, "share": 2, "submits_per_minute": 600},
     "intern": {"max_running_jobs": 1, "max_stored_bytes": 1073741824}}

The scheduler (``shared.scheduling``) reads ``max_running_jobs`` and ``share``; the API's
rate limits (``api.rate_limits``) and quotas (``shared.quotas``) read the others. For every
rate and quota, 0 means none.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from .settings import Settings


@dataclass(frozen=True)
class OwnerLimits:
    max_running_jobs: int
    """Jobs of this owner that run at once (per job type); more wait their turn, never fail."""
    share: float
    """Weight in fair scheduling: an owner with share 2 starts two jobs for each one of an
    owner with share 1 while both have jobs waiting."""
    submits_per_minute: int = 0
    """``POST /v1/jobs`` per minute on average (0: unlimited)."""
    submits_burst: int = 1
    """Submits allowed at once, before the per-minute rate paces them."""
    uploads_per_minute: int = 0
    """``POST /v1/datasets`` per minute on average (0: unlimited)."""
    uploads_burst: int = 1
    reads_per_minute: int = 0
    """Every other authenticated request per minute on average (0: unlimited)."""
    reads_burst: int = 1
    max_queued_jobs: int = 0
    """Jobs waiting to start; a submit beyond it is refused (0: no quota)."""
    max_stored_bytes: int = 0
    """Bytes in object storage and reserved for unfinished jobs' estimated outputs; an
    upload or a submit that would pass it is refused (0: no quota)."""
    max_datasets: int = 0
    """Uploaded datasets (0: no quota)."""


def scheduling_limits(settings: Settings) -> tuple[int, float, dict[str, tuple[int, float]]]:
    """The default running limit and share, and ``owner -> (running limit, share)`` for
    the owners whose limits are overridden: what the claim script (``JobStore.claim_next``)
    needs to pass over owners at their limit and move tags on, without a call per owner."""
    owners = _overrides(settings.owner_limits)
    resolved = {owner: limits_for(settings, owner) for owner in owners}
    overrides = {o: (limits.max_running_jobs, limits.share) for o, limits in resolved.items()}
    return settings.max_running_jobs, settings.owner_share, overrides


def limits_for(settings: Settings, owner: str) -> OwnerLimits:
    return _resolve(settings, owner)


@cache
def _resolve(settings: Settings, owner: str) -> OwnerLimits:
    defaults = OwnerLimits(
        max_running_jobs=settings.max_running_jobs,
        share=settings.owner_share,
        submits_per_minute=settings.submits_per_minute,
        submits_burst=settings.submits_burst,
        uploads_per_minute=settings.uploads_per_minute,
        uploads_burst=settings.uploads_burst,
        reads_per_minute=settings.reads_per_minute,
        reads_burst=settings.reads_burst,
        max_queued_jobs=settings.max_queued_jobs,
        max_stored_bytes=settings.max_stored_bytes,
        max_datasets=settings.max_datasets,
    )
    override: dict[str, Any] = _overrides(settings.owner_limits).get(owner, {})
    return dataclasses.replace(defaults, **override)


@cache
def _overrides(raw: str) -> dict[str, dict[str, Any]]:
    """Parsed and checked once: unknown owners' fields are errors at start, not surprises."""
    if not raw.strip():
        return {}
    parsed = json.loads(raw)
    known = {f.name for f in dataclasses.fields(OwnerLimits)}
    if not isinstance(parsed, dict):
        raise ValueError("ATELIER_OWNER_LIMITS must be a JSON object of owner -> limits")
    for owner, fields in parsed.items():
        unknown = set(fields) - known if isinstance(fields, dict) else {"<not an object>"}
        if unknown:
            raise ValueError(
                f"ATELIER_OWNER_LIMITS[{owner!r}] has unknown limits {sorted(unknown)}; "
                f"known: {sorted(known)}"
            )
    return parsed
