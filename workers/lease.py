"""A running attempt's lease, renewed from a thread so a long step never looks like a dead
worker. The lease belongs to the attempt (its fencing token, ``shared.job_indexes``): once
the reaper has requeued the job, or a newer attempt holds it, renewal is refused and the
attempt learns it must stop."""

from __future__ import annotations

import logging
import threading

from ..shared.jobs import JobStore

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, jobs: JobStore, job_id: str, fence: str, lease_seconds: float) -> None:
        self._jobs = jobs
        self._job_id = job_id
        self._fence = fence
        self._lease = lease_seconds
        self._stop = threading.Event()
        self.lost = threading.Event()
        """Set when this attempt no longer holds the job (also by any refused write)."""
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                if not self._jobs.renew_lease(self._job_id, self._fence, self._lease):
                    self.lost.set()
                    return
            except Exception:
                log.warning("lease renewal failed", exc_info=True)
