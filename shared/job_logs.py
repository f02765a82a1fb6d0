"""A job's own log lines, kept in Redis beside its record (newest ``limit`` lines)."""

from __future__ import annotations

import logging
from typing import cast

import redis

from shared.redis_keys import KEYS, RedisKeys

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
    """Copies one job's log records into its Redis list; never fails the job."""

    def __init__(self, logs: JobLogs, job_id: str) -> None:
        super().__init__(level=logging.INFO)
        self._logs = logs
        self._job_id = job_id
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._logs.append(self._job_id, self.format(record))
        except Exception:
            self.handleError(record)
