"""What one job costs Redis, submit to succeeded, counted exactly (``bench.roundtrip_count``:
every redis-py round trip of the in-process API and the worker's ``JobRunner``). The count
is deterministic, so it is pinned: a change that adds a round trip fails here, and says
where (the table by purpose is in the message). The numbers are those of
``bench/results/roundtrip-commands.md``."""

from __future__ import annotations

from pathlib import Path

import redis

from atelier.shared.jobs import JobStatus, JobStore, JobType
from atelier.shared.redis_keys import KEYS
from atelier.shared.settings import Settings
from bench.roundtrip_count import count_one_job, table
from tests.conftest import url_of

# After the cuts (before: api 11, worker 15; the poll's budget and read became one
# round trip in issue 26's point 1, then the worker's fair claim one Lua call instead of
# five round trips: worker 12 -> 8); never more.
API_ROUND_TRIPS = 8
WORKER_ROUND_TRIPS = 8


def test_one_job_costs_no_more_round_trips_than_pinned(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    tally = count_one_job(url_of(redis_client), tmp_path)
    api, worker = tally.total(tally.trips, "api"), tally.total(tally.trips, "worker")
    assert api <= API_ROUND_TRIPS, table(tally)
    assert worker <= WORKER_ROUND_TRIPS, table(tally)
    # redis-py's SCRIPT EXISTS before a pipeline holding a script: a round trip for nothing.
    assert not any(name == "script exists" for _, name in tally.names), table(tally)


def test_scripts_in_a_transaction_run_after_the_server_forgot_them(
    redis_client: redis.Redis, redis_admin: redis.Redis
) -> None:
    """The fair queue's scripts inside MULTI (``EVAL``) and in WATCH mode (``EVALSHA``,
    loaded again on NOSCRIPT) still run once the server's script cache is flushed, as a
    restart or a failover to a node that never ran them leaves it."""
    store = JobStore(redis_client)
    settings = Settings()
    first = store.create("alice", JobType.GENERATE, "dcgan", {})
    claimed = store.claim_next(JobType.GENERATE, "w", 60.0, settings)
    assert claimed is not None and claimed.id == first.id
    redis_admin.script_flush()
    second = store.create("alice", JobType.GENERATE, "dcgan", {})
    redis_admin.script_flush()
    claimed = store.claim_next(JobType.GENERATE, "w", 60.0, settings)
    assert claimed is not None and claimed.id == second.id
    redis_admin.script_flush()
    done = store.finish(second.id, JobStatus.SUCCEEDED, fence=claimed.fence)
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert not redis_client.zscore(KEYS.running, second.id)
    assert redis_client.zcard(KEYS.fair(JobType.GENERATE.value)) == 0
