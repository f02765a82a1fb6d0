"""gunicorn settings for the API (``atelier api`` passes bind and workers on the CLI)."""

from __future__ import annotations

from typing import Any

from prometheus_client import multiprocess

worker_class = "gthread"
threads = 4
# Status polls are short; a long timeout would only hide a hung worker.
timeout = 30
# The longest request line gunicorn reads (its maximum); the app answers a 414 problem
# above api.problems.MAX_URI_CHARS, so gunicorn's own plain-text 414 is only met beyond this.
limit_request_line = 8190
graceful_timeout = 10
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the multiprocess metrics directory."""
    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
