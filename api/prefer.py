"""RFC 7240 ``Prefer: wait=N``: answer when the job is over, or after N seconds.

A request that waits is a long request (``api.event_hub``): it holds one of the process's
long-request slots and sleeps on the job's events, re-reading the record only when one of
its events arrives. ``Prefer: wait`` without a number waits the most allowed
(``prefer_wait_max_seconds``), as Replicate's API does; preferences that are not understood
(``wait=soon``) are ignored, as RFC 7240 asks.
"""

from __future__ import annotations

import re
import time

from flask import request

from ..shared.jobs import Job
from .services import services

_WAIT = re.compile(r"^\s*wait\s*(?:=\s*\"?(\d{1,9})\"?)?\s*(?:;.*)?$", re.IGNORECASE)


def preferred_wait(headers: list[str], most: float) -> float | None:
    """Seconds to wait from the request's ``Prefer`` headers (capped at ``most``), or None."""
    for header in headers:
        for preference in header.split(","):
            found = _WAIT.match(preference)
            if found:
                seconds = float(found.group(1)) if found.group(1) is not None else most
                return min(seconds, most)
    return None


def requested_wait() -> float | None:
    # One lookup: the server joins repeated ``Prefer`` headers with commas (WSGI), and
    # ``getlist`` walked every header of every status poll to find them.
    header = request.headers.get("Prefer")
    if not header:
        return None
    return preferred_wait([header], services().settings.prefer_wait_max_seconds)


def wait_until_over(job: Job, seconds: float) -> Job:
    """The job once terminal, or as it is after ``seconds``."""
    svc = services()
    if job.status.is_terminal() or seconds <= 0:
        return job
    deadline = time.monotonic() + seconds
    with svc.long_requests.slot(job.owner), svc.hub.watch(job.owner, job.id) as waiter:
        while True:
            # Read after subscribing: a change between the caller's read and the watch
            # would otherwise be missed until the deadline.
            job = svc.jobs.get(job.id) or job
            remaining = deadline - time.monotonic()
            if job.status.is_terminal() or remaining <= 0 or svc.hub.closing:
                return job
            waiter.wait(remaining)


def wait_headers(seconds: float | None) -> dict[str, str]:
    """``Preference-Applied`` when a wait was honoured; ``Vary`` either way (caches)."""
    headers = {"Vary": "Prefer"}
    if seconds is not None:
        headers["Preference-Applied"] = f"wait={int(seconds)}"
    return headers
