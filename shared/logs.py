"""Logging for every Atelier process: JSON lines (or plain text) that carry the job id and
owner, so one grep follows a job from the API through the worker."""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar

from .settings import Settings

JOB_ID: ContextVar[str | None] = ContextVar("atelier_job_id", default=None)
OWNER: ContextVar[str | None] = ContextVar("atelier_owner", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field, var in (("job_id", JOB_ID), ("owner", OWNER)):
            value = var.get()
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        job = JOB_ID.get()
        return f"{line} [job={job}]" if job else line


def configure_logging(settings: Settings) -> None:
    """Replace the root handler (idempotent: safe in forked children)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
