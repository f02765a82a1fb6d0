"""gunicorn settings for the API (``atelier api`` passes bind and workers on the CLI)."""

from __future__ import annotations

import signal
from typing import Any

from prometheus_client import multiprocess

from ..shared.settings import Settings

_settings = Settings.from_env()
worker_class = "gthread"
# Ordinary requests get ``api_threads``; event streams and ``Prefer: wait`` requests get
# threads of their own beside them, at most ``api_long_requests`` (api.event_hub).
threads = _settings.api_threads + _settings.api_long_requests
# gthread's timeout watches the worker's main loop, not each request: a long-lived event
# stream is not killed by it. Status polls are short; a long one would hide a hung worker.
timeout = 30
# The longest request line gunicorn reads (its maximum); the app answers a 414 problem
# above api.problems.MAX_URI_CHARS, so gunicorn's own plain-text 414 is only met beyond this.
limit_request_line = 8190
graceful_timeout = 10
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def post_worker_init(worker: Any) -> None:
    """On SIGTERM (a restart, a scale-down) open event streams and waits end at once, so
    the worker stops in well under ``graceful_timeout``; clients reconnect elsewhere with
    ``Last-Event-ID``. gunicorn's own handler still runs (it stops accepting)."""
    from .services import EXTENSION_NAME

    services = getattr(worker.wsgi, "extensions", {}).get(EXTENSION_NAME)
    if services is None:
        return  # another app under this configuration (the benchmarks' baseline app)
    own_handler = signal.getsignal(signal.SIGTERM)
    hub = services.hub

    def close_streams_then_exit(signum: int, frame: Any) -> None:
        hub.close()
        if callable(own_handler):
            own_handler(signum, frame)

    signal.signal(signal.SIGTERM, close_streams_then_exit)


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics directory."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
