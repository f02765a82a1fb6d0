"""A job's own log lines, kept in Redis beside its record (newest ``limit`` lines).

Each line names its attempt, and a line of an attempt that no longer holds the job is
dropped: the append checks the job hash's ``fence`` field in the same script (see
``shared.job_indexes``), so a paused worker that wakes cannot write into a newer run's log.
"""

from __future__ import annotations

import json
import logging
from typing import cast

import redis

from .events import EMIT_LUA
from .redis_keys import KEYS, RedisKeys

MAX_LINE_CHARS = 2000
# KEYS[1] job hash, KEYS[2] log list; ARGV fence token, line, lines kept, key prefix, job id,
# the line's event data (JSON). Each kept line is also a ``log`` event (shared.events).
_FENCED_APPEND = (
    EMIT_LUA
    + """
if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
emit(KEYS[1], ARGV[4], ARGV[5], 'log', ARGV[6])
return 1
"""
)


class JobLogs:
    def __init__(self, client: redis.Redis, limit: int, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._limit = limit
        self._keys = keys
        self._fenced_append = client.register_script(_FENCED_APPEND)

    def append(self, job_id: str, fence: str, line: str) -> bool:
        """False (nothing written) once ``fence`` no longer holds the job."""
        keys = [self._keys.job(job_id), self._keys.job_logs(job_id)]
        line = line[:MAX_LINE_CHARS]
        data = json.dumps({"line": line})
        args: list[str | int] = [fence, line, self._limit, self._keys.prefix, job_id, data]
        return bool(self._fenced_append(keys=keys, args=args))

    def read(self, job_id: str) -> list[str]:
        raw = cast(list[bytes], self._redis.lrange(self._keys.job_logs(job_id), 0, -1))
        return [line.decode(errors="replace") for line in raw]


class JobLineFormatter(logging.Formatter):
    """A job's log is read by its owner: an exception shows as its type only, and the
    traceback (server paths, library internals) stays in the worker's own log. The record
    is left as it came (``exc_text`` unset), so the worker's log still formats it whole."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info and record.exc_info[0] is not None:
            line += f" ({record.exc_info[0].__name__})"
        return line


class JobLogHandler(logging.Handler):
    """Copies the records logged through a `job_logger` into that job's Redis list; never
    fails the job. Other records pass by."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(
            JobLineFormatter("%(asctime)s %(levelname)s [attempt %(atelier_attempt)s] %(message)s")
        )

    def emit(self, record: logging.LogRecord) -> None:
        logs = getattr(record, "atelier_job_logs", None)
        job_id = getattr(record, "atelier_job_id", None)
        fence = getattr(record, "atelier_fence", None)
        if not isinstance(logs, JobLogs) or not isinstance(job_id, str):
            return
        if not isinstance(fence, str):
            return
        try:
            logs.append(job_id, fence, self.format(record))
        except Exception:
            self.handleError(record)


# One logger and one handler for every job of the process. A logger per job was never
# freed, and its `setLevel` walks every logger ever made: a cost that grew with each job.
_JOB_LOGGER = logging.getLogger("atelier.job")
_JOB_LOGGER.setLevel(logging.INFO)
_JOB_LOGGER.addHandler(JobLogHandler())

JobLogger = logging.LoggerAdapter[logging.Logger]


def job_logger(logs: JobLogs, job_id: str, attempt: int, fence: str) -> JobLogger:
    """A logger whose records also land in the job's own log, while ``fence`` (the
    attempt's token) holds it. Lines name the attempt by its number."""
    extra = {
        "atelier_job_logs": logs,
        "atelier_job_id": job_id,
        "atelier_attempt": attempt,
        "atelier_fence": fence,
    }
    return logging.LoggerAdapter(_JOB_LOGGER, extra)
