"""How many uploads one API process checks at once, and where the slow part runs.

An upload is read whole and normalised in memory (``api.ingest``): a few hundred MiB at
worst for one (``bench/upload_memory.py``), so an API process admits at most
``api_concurrent_uploads`` at once; one more is answered 503 with ``Retry-After`` before
its file is read, and nothing of it is stored. (The per-owner upload rate,
``api.rate_limits``, bounds how often one owner uploads; this bounds the process, whoever
sends them.)

The slow, GIL-holding part (music21 reading ABC tunes: up to ~1 minute for one upload)
runs in a process of its own (``run``), at most one an upload slot, so the API process's
other requests keep its threads and its interpreter. The process exits when its call
returns: music21 and a parse hold ~100 MiB that an idle API should not keep, and starting
one takes ~1 s next to seconds or a minute of parsing. It is started with ``spawn``
(forking a threaded process can copy a held lock). One that dies (killed for its memory)
is answered 503, nothing stored.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

from ..shared.errors import ServiceUnavailable

RETRY_AFTER_SECONDS = 5
SPAWN = multiprocessing.get_context("spawn")
log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


class UploadGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the process's upload slots, or raise 503 with ``Retry-After``."""
        if not self._slots.acquire(blocking=False):
            raise ServiceUnavailable(
                f"This API process is already checking {self.limit} uploads "
                "(ATELIER_API_CONCURRENT_UPLOADS); nothing was stored: send it again shortly.",
                retry_after=RETRY_AFTER_SECONDS,
            )
        try:
            yield
        finally:
            self._slots.release()

    def run(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``call(*args, **kwargs)`` in a process of its own, which exits after it (call it
        holding a ``slot``, which bounds how many run). Its arguments, result and
        exceptions cross by pickle."""
        with ProcessPoolExecutor(1, mp_context=SPAWN) as pool:
            try:
                return pool.submit(call, *args, **kwargs).result()
            except BrokenProcessPool as exc:
                log.warning("an upload's checking process died", exc_info=True)
                raise ServiceUnavailable(
                    "The upload could not be checked (its checking process stopped); nothing "
                    "was stored: send it again shortly.",
                    retry_after=RETRY_AFTER_SECONDS,
                ) from exc
