"""A job's own log lines, kept in Redis beside its record (newest ``limit`` lines)."""

from __future__ import annotations

import logging
from typing import cast

import redis

from atelier.shared.redis_keys import KEYS, RedisKeys

MAX_LINE_CHARS = 2000


class JobLogs:
    def __init__(self, client: redis.Redis, limit: int, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._limit = limit
        self._keys = keys

    def append(self, job_id: str, line: str) -> None:
        key = self._keys.job_logs(job_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.rpush(key, line[:MAX_LINE_CHARS])
        pipe.ltrim(key, -self._limit, -1)
        pipe.execute()

    def read(self, job_id: str) -> list[str]:
        raw = cast(list[bytes], self._redis.lrange(self._keys.job_logs(job_id), 0, -1))
        return [line.decode(errors="replace") for line in raw]


class JobLogHandler(logging.Handler):
    """Copies the records logged through a `job_logger` into that job's Redis list; never
    fails the job. Other records pass by."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        logs = getattr(record, "atelier_job_logs", None)
        job_id = getattr(record, "atelier_job_id", None)
        if not isinstance(logs, JobLogs) or not isinstance(job_id, str):
            return
        try:
            logs.append(job_id, self.format(record))
        except Exception:
            self.handleError(record)


# One logger and one handler for every job of the process. A logger per job was never
# freed, and its `setLevel` walks every logger ever made: a cost that grew with each job.
_JOB_LOGGER = logging.getLogger("atelier.job")
_JOB_LOGGER.setLevel(logging.INFO)
_JOB_LOGGER.addHandler(JobLogHandler())

JobLogger = logging.LoggerAdapter[logging.Logger]


def job_logger(logs: JobLogs, job_id: str) -> JobLogger:
    """A logger whose records also land in the job's own log."""
    return logging.LoggerAdapter(_JOB_LOGGER, {"atelier_job_logs": logs, "atelier_job_id": job_id})
