"""The capacity benchmark's simulators (``bench.capacity_sim``) do what they claim: jobs
submitted through the real API app are all claimed, run and finished by simulated workers
going through ``JobRunner``, none lost, and the per-job command count adds up."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import cast

import pytest
import redis

from atelier.cli.processes import free_port, start_redis
from atelier.shared.jobs import JobStatus, JobStore, JobType
from atelier.shared.redis_keys import KEYS
from atelier.shared.settings import Settings
from bench.capacity import count_commands

pytestmark = pytest.mark.slow  # simulated job processes, forked


def test_simulated_workers_run_every_submitted_job(tmp_path: Path) -> None:
    password = secrets.token_hex(8)
    process, url = start_redis(
        Settings(), tmp_path / "redis", free_port(), tmp_path / "r.log", password=password
    )
    try:
        counted = count_commands(url, tmp_path / "run", jobs=12)
        client = redis.Redis.from_url(url)
        finished = [i.decode() for i in cast(list[bytes], client.zrange(KEYS.finished, 0, -1))]
        statuses = [job.status for job in JobStore(client).get_many(finished)]
        left = client.zcard(KEYS.queued(JobType.GENERATE.value)) + client.zcard(KEYS.running)
    finally:
        process.stop()
    assert counted["succeeded"] == counted["jobs"] == 12
    assert statuses == [JobStatus.SUCCEEDED] * 12 and left == 0
    names = {name for name, _, _ in counted["rows"]}
    assert {"evalsha", "exec", "lpush", "brpop", "xadd"} <= names
    submit = {name: n for name, n, _ in counted["rows"]}
    assert submit["lpush"] == pytest.approx(1.0)  # one Celery message per submit
    assert counted["cpu_per_job"] > 0
