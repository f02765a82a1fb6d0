"""The bodies of polled jobs, kept per API process so that most status polls
(``GET /v1/jobs/{id}``) read nothing from Redis (issue 26: a poll cost ~350 µs, of which the
round trip and the body's construction were most).

Semantics, for the operator and the client (docs/performance.md says the same):

- **A change shows when its wake-up reaches the process.** Every write to a job's hash
  PUBLISHes a wake-up (``shared.events``) in the same atomic step; the event hub's listener
  (``api.event_hub``), which every API process runs, drops the job's kept body on it. Until
  the wake-up is delivered (~1 ms; up to tens of ms on a loaded machine, as measured in
  bench/results/polling.md) a poll may show the state before the change. A change made
  through this process (a rename, a cancel, a deletion) drops the body before the answer
  leaves.
- **Bounded in any case by ``max_age``** (``ATELIER_POLL_CACHE_SECONDS``, 1 s; with S3 also a
  tenth of a presigned URL's life): a kept body older than that is never shown, whatever
  happened to the subscription.
- **Never in use while the subscription is not live**: a dropped subscription flushes every
  kept body and polls read Redis until it is back (confirmed), when it flushes again.
- **Never older than what this process has shown**: a poll that read the hash keeps what it
  read only if no wake-up for the job, no flush, came since it *began* reading (a per-read
  token that a wake-up removes) and no other read of the job overlapped it (two overlapping
  reads can end in the other order), so a slow read can never put back a state a later
  read has shown (unless a read stalled for ``max_age`` between its token and its read: a
  later read may then take the token). Across processes only the first rule
  holds (a client whose polls alternate between processes may, within the wake-up's
  delivery time, see the earlier state again).
- Bounded in memory: least recently used bodies go past ``max_bytes`` or ``max_entries``.

Ownership is checked on every poll against the kept body's owner; the key itself is checked
by ``api.auth`` on every request (its own cache: ``ATELIER_AUTH_CACHE_SECONDS``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Shown:
    """A job's body as served (JSON bytes of ``JobOut``, validated when made)."""

    owner: str
    terminal: bool
    files_route: str
    """The download links' base the body was made with (it differs by the Host called)."""
    body: bytes
    made_at: float = field(default_factory=time.monotonic, compare=False)

    @property
    def size(self) -> int:
        return len(self.body) + 200  # the entry's own objects, roughly


class Reading:
    """A read of one job's hash under way; ``keep`` stores its result only while this is
    still the job's entry (a wake-up or a flush removes it)."""

    size = 1

    def __init__(self) -> None:
        self.began = time.monotonic()


class JobBodies:
    """See the module docstring. ``live`` says whether wake-ups are being received now."""

    def __init__(
        self,
        max_age: float,
        live: Callable[[], bool] = lambda: True,
        *,
        max_bytes: int = 8 << 20,
        max_entries: int = 10_000,
    ) -> None:
        self.max_age = max_age
        self._live = live
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._kept: OrderedDict[str, Shown | Reading] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the API serves requests on threads

    def kept(self, job_id: str, files_route: str) -> Shown | None:
        """The job's kept body, if it may be shown now."""
        if self.max_age <= 0 or not self._live():
            return None
        with self._lock:
            found = self._kept.get(job_id)
            if not isinstance(found, Shown) or found.files_route != files_route:
                return None
            if time.monotonic() - found.made_at > self.max_age:
                self._drop(job_id)
                return None
            self._kept.move_to_end(job_id)
            return found

    def reading(self, job_id: str) -> Reading | None:
        """Call before reading the job's hash; pass the answer to ``keep``. Two reads of
        one job that overlap keep neither result (None here, and the other's token
        dropped): either may have read the newer state, and the other may have shown it."""
        if self.max_age <= 0 or not self._live():
            return None
        token = Reading()
        with self._lock:
            found = self._kept.get(job_id)
            self._drop(job_id)
            if isinstance(found, Reading) and token.began - found.began < self.max_age:
                return None  # (one older than that was abandoned: its request failed)
            self._put(job_id, token)
        return token

    def keep(self, job_id: str, token: Reading | None, shown: Shown) -> None:
        """Keep ``shown``, made from a read begun with ``token``, unless the job changed
        (or the cache was flushed) since."""
        if token is None or shown.size > self._max_bytes or not self._live():
            return
        with self._lock:
            if self._kept.get(job_id) is token:
                self._drop(job_id)
                self._put(job_id, shown)

    # --- the event hub's side ---------------------------------------------------------------
    def changed(self, job_id: str) -> None:
        """A wake-up for ``job_id``: its body (or a read under way) is stale."""
        with self._lock:
            self._drop(job_id)

    def flush(self) -> None:
        """The subscription dropped or came back: wake-ups may have been missed."""
        with self._lock:
            self._kept.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._kept)

    # --- under the lock -------------------------------------------------------------------
    def _put(self, job_id: str, entry: Shown | Reading) -> None:
        self._kept[job_id] = entry
        self._bytes += entry.size
        while self._bytes > self._max_bytes or len(self._kept) > self._max_entries:
            _, oldest = self._kept.popitem(last=False)
            self._bytes -= oldest.size

    def _drop(self, job_id: str) -> None:
        gone = self._kept.pop(job_id, None)
        if gone is not None:
            self._bytes -= gone.size
