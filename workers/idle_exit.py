"""A ``--once`` worker that finds nothing to claim stops instead of holding its GPU.

KEDA starts one pod per queued training job, but another pod may take that job first, and
a message may name a job that is no longer queued (a duplicate, a cancel). Such a pod would
wait for work forever on a GPU nobody else can use. The Celery parent watches its own
requests: once it has held none for ``once_idle_seconds`` it asks itself for a warm
shutdown (SIGTERM, exit 0), as the job process does after its one job.

A message that arrives as it stops is not lost: a warm shutdown hands back messages it has
not acknowledged, and the reaper sends a queued job's message again if one still goes
missing (``lost_message_seconds``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class IdleExit(threading.Thread):
    """Calls ``stop`` once ``busy`` has said False for ``idle_seconds`` on end."""

    def __init__(
        self,
        idle_seconds: float,
        busy: Callable[[], bool],
        stop: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="atelier-idle-exit", daemon=True)
        self.idle_seconds = idle_seconds
        self.busy = busy
        self.stop = stop
        self.clock = clock
        self.poll_seconds = min(1.0, idle_seconds / 4)

    def run(self) -> None:
        last_busy = self.clock()
        while True:
            time.sleep(self.poll_seconds)
            now = self.clock()
            if self.busy():
                last_busy = now
            elif now - last_busy >= self.idle_seconds:
                log.info("no job for %.0f s: stopping (--once)", now - last_busy)
                self.stop()
                return
