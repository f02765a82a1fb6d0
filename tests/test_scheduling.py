"""Fair scheduling across owners and priority within one (shared.scheduling), on a real
Redis with no worker: claims are what a worker's message leads to."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
import redis

from atelier.shared.jobs import JobErrorInfo, JobStatus, JobStore, JobType, RetryPolicy
from atelier.shared.settings import Settings

GEN = JobType.GENERATE


def limits(running: int = 100, **shares: float) -> Settings:
    overrides = {owner: {"share": share} for owner, share in shares.items()}
    return Settings(max_running_jobs=running, owner_limits=json.dumps(overrides))


@pytest.fixture()
def store(redis_client: redis.Redis) -> JobStore:
    return JobStore(redis_client, retry=RetryPolicy(backoff_seconds=60))


def claim(store: JobStore, of: Settings | None = None) -> str | None:
    job = store.claim_next(GEN, "w", 30, of or limits())
    return job.owner if job else None


def test_a_newcomer_starts_after_at_most_one_more_job_of_a_busy_owner(store: JobStore) -> None:
    for _ in range(30):
        store.create("ana", GEN, "dcgan", {})
    assert [claim(store) for _ in range(5)] == ["ana"] * 5
    store.create("ben", GEN, "dcgan", {})
    order = [claim(store) for _ in range(3)]
    assert order.index("ben") <= 1, order
    assert order.count("ben") == 1


def test_owners_take_turns_by_share(store: JobStore) -> None:
    for owner in ("ana", "ben", "cleo"):
        for _ in range(40):
            store.create(owner, GEN, "dcgan", {})
    taken = Counter(claim(store, limits(ana=2.0)) for _ in range(40))
    assert taken == {"ana": 20, "ben": 10, "cleo": 10}


def test_priority_then_age_within_an_owner(store: JobStore) -> None:
    made = [store.create("ana", GEN, "dcgan", {}, priority=p) for p in (5, 9, 0, 9, 5)]
    claimed = [store.claim_next(GEN, "w", 30, limits()) for _ in made]
    assert [j.id for j in claimed if j] == [made[i].id for i in (1, 3, 0, 4, 2)]


def test_jobs_past_an_owners_running_limit_wait_their_turn(store: JobStore) -> None:
    two = limits(running=2)
    ana = [store.create("ana", GEN, "dcgan", {}).id for _ in range(4)]
    assert [claim(store, two) for _ in range(2)] == ["ana", "ana"]
    assert claim(store, two) is None  # ana is at her limit: nothing may start
    store.fair.owe_wakeup(GEN)
    ben = store.create("ben", GEN, "dcgan", {})
    assert claim(store, two) == "ben"  # others are not held up by ana's limit
    running = [i for i in ana if (j := store.get(i)) and j.status is JobStatus.RUNNING]
    store.finish(running[0], JobStatus.SUCCEEDED)
    assert store.fair.take_owed_wakeup(GEN) and not store.fair.take_owed_wakeup(GEN)
    assert claim(store, two) == "ana"
    statuses = [job.status for job in store.get_many(ana)]
    assert statuses.count(JobStatus.QUEUED) == 1 and ben.owner == "ben"


def test_what_leaves_the_queue_leaves_the_fair_structures(
    store: JobStore, redis_admin: redis.Redis
) -> None:
    canceled = store.create("ana", GEN, "dcgan", {})
    expired = store.create("ana", GEN, "dcgan", {}, start_before=time.time() + 60)
    retried = store.create("ben", GEN, "dcgan", {})
    store.request_cancel(canceled.id)
    store.expire(expired.id, "too late")
    job = store.claim_next(GEN, "w", 30, limits())
    assert job is not None and job.id == retried.id and job.fence is not None
    lost = JobErrorInfo(type="WorkerLost", message="gone")
    assert store.attempt_failed(job.id, lost, fence=job.fence) is not None  # backoff: 60 s
    assert claim(store) is None  # not claimable while it waits out its backoff
    again = store.get(job.id)
    assert again is not None
    store.make_claimable(again)  # the reaper, once it is due
    assert claim(store) == "ben"
    store.finish(job.id, JobStatus.SUCCEEDED)
    assert [k for k in redis_admin.scan_iter("atelier:fair*") if b"tags" not in k] == []
    assert [k for k in redis_admin.scan_iter("atelier:owner-running:*")] == []


def test_sweeps_are_bounded_shared_and_put_leases_first(redis_client: redis.Redis) -> None:
    """2,000 due start deadlines and one dead worker's lease: every sweep takes at most a
    batch, the lease is recovered by the first, and two reapers never take the same ids."""
    from atelier.workers.reaper import reap_once

    store = JobStore(redis_client)
    settings = Settings(reaper_batch=200)
    for _ in range(2000):
        store.create("ana", GEN, "dcgan", {}, start_before=time.time() + 0.5)
    dead = store.create("ben", GEN, "dcgan", {})
    assert store.claim(dead.id, "w", -1) is not None  # its lease has already run out
    time.sleep(0.6)

    first = reap_once(store, settings, lambda *_: None)
    assert first.requeued == 1 and first.expired == 200 and first.more
    a = store.claim_missed_start_deadlines(200)
    b = store.claim_missed_start_deadlines(200)
    assert len(a) == len(b) == 200 and not set(a) & set(b)  # claimed: two nodes share
    sweeps = 1
    while (report := reap_once(store, settings, lambda *_: None)).more:
        assert report.expired <= 200
        sweeps += 1
    # The 400 claimed above come due again after the hold; everything else is expired.
    assert sweeps == 8
    assert redis_client.zcard("atelier:start-deadlines") == 400


def test_a_per_owner_running_limit_overrides_the_default(store: JobStore) -> None:
    settings = Settings(max_running_jobs=100, owner_limits='{"ana": {"max_running_jobs": 1}}')
    for owner in ("ana", "ana", "ben", "ben"):
        store.create(owner, GEN, "dcgan", {})
    assert [claim(store, settings) for _ in range(4)] == ["ana", "ben", "ben", None]


def test_a_job_created_after_its_owners_last_claim_is_claimed_next(
    store: JobStore, redis_client: redis.Redis
) -> None:
    """The claim that takes an owner's last waiting job takes the owner out of the fair set,
    decided inside the claim's one script: when the pick and the start were two steps, a
    count taken at pick time was stale if the owner's next job arrived in between, and that
    job waited forever (found by test_reliability after a Redis restart). The owner's next
    job puts it back, and is claimed."""
    first = store.create("alice", JobType.TRAIN, "dcgan", {})
    claimed = store.claim_next(JobType.TRAIN, "w1", 30, Settings.from_env({}))
    assert claimed is not None and claimed.id == first.id
    assert redis_client.zscore("atelier:fair:train", "alice") is None
    second = store.create("alice", JobType.TRAIN, "dcgan", {})
    claimed = store.claim_next(JobType.TRAIN, "w2", 30, Settings.from_env({}))
    assert claimed is not None and claimed.id == second.id


def test_a_claim_rewrites_only_its_own_fields_of_the_record(
    store: JobStore, redis_client: redis.Redis
) -> None:
    """The claim script rewrites the record's status, attempt, started_at and worker and
    keeps every other member as written (cjson would round a float to 14 digits and write
    an empty list as {}); a second attempt keeps the first one's error, counts attempt 2,
    and its ``status`` event says so, as ``events.status_data`` would."""
    params = {
        "x": 0.12345678901234567, "big": 2**60, "s": 'a"}],\\é', "empty": [],
        "nested": {"attempt": 7, "worker": "not this", "status": "queued"},
    }  # fmt: skip
    made = store.create("ana", GEN, "dcgan", params, tags=["t"], priority=7, name="n,}")
    before = time.time()
    first = store.claim_next(GEN, 'w"1', 30, limits())
    assert first is not None and first.id == made.id
    assert (first.status, first.attempt, first.worker) == (JobStatus.RUNNING, 1, 'w"1')
    assert first.started_at is not None and before <= first.started_at <= time.time()
    assert first.fence is not None and first.fence.startswith("1-")
    stored = redis_client.hget(f"atelier:job:{made.id}", "record")
    assert stored is not None
    assert json.loads(stored) == json.loads(made.model_copy(update={
        "status": JobStatus.RUNNING, "attempt": 1, "worker": 'w"1',
        "started_at": first.started_at}).model_dump_json(exclude_defaults=True, exclude={
            "progress", "checkpoint", "cancel_requested", "fence"}))  # fmt: skip
    error = JobErrorInfo(type="TransientJobError", message="the store was away")
    requeued = store.attempt_failed(made.id, error, fence=first.fence)
    assert requeued is not None and requeued.status is JobStatus.QUEUED
    store.make_claimable(requeued)
    second = store.claim_next(GEN, "w2", 30, limits())
    assert second is not None and (second.attempt, second.error) == (2, error)
    assert second.params == params and second.fence and second.fence.startswith("2-")
    status = store.events.for_job(made.id)[-1]
    assert status.data == {
        "status": "running", "type": "generate", "kind": "dcgan", "attempt": 2,
        "error": error.model_dump(mode="json"),
    }  # fmt: skip
