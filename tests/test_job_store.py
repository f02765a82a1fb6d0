"""The job state machine against a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import cast

import pytest
import redis

from atelier.shared.errors import Conflict
from atelier.shared.jobs import (
    ALLOWED_TRANSITIONS,
    CheckpointRef,
    Job,
    JobErrorInfo,
    JobStatus,
    JobStore,
    JobType,
    OutputRef,
    Progress,
    RetryPolicy,
)
from atelier.shared.redis_keys import KEYS


@pytest.fixture()
def store(redis_client: redis.Redis) -> JobStore:
    return JobStore(redis_client)


def test_terminal_statuses_allow_no_transition() -> None:
    for status in JobStatus:
        assert (not ALLOWED_TRANSITIONS[status]) == status.is_terminal()


def test_create_then_read_back(store: JobStore) -> None:
    job = store.create("alice", JobType.TRAIN, "dcgan", {"steps": 3})
    read = store.get(job.id)
    assert read is not None
    assert (read.status, read.owner, read.params, read.attempt) == (
        JobStatus.QUEUED,
        "alice",
        {"steps": 3},
        0,
    )
    assert store.get("job_missing") is None


def test_only_one_of_many_concurrent_claims_wins(store: JobStore) -> None:
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def claim(name: str) -> None:
        barrier.wait()
        if store.claim(job.id, name, 30) is not None:
            winners.append(name)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    claimed = store.get(job.id)
    assert claimed is not None
    assert claimed.status is JobStatus.RUNNING and claimed.worker == winners[0]
    assert claimed.attempt == 1


def test_cancel_queued_job_is_immediate_and_blocks_claim(store: JobStore) -> None:
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    canceled = store.request_cancel(job.id)
    assert canceled is not None
    assert canceled.status is JobStatus.CANCELED and canceled.finished_at is not None
    assert store.claim(job.id, "w", 30) is None


def test_cancel_running_job_sets_flag_and_keeps_running(store: JobStore) -> None:
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    store.claim(job.id, "w", 30)
    assert not store.cancel_requested(job.id)
    flagged = store.request_cancel(job.id)
    assert flagged is not None
    assert flagged.status is JobStatus.RUNNING and flagged.cancel_requested
    assert store.cancel_requested(job.id)
    store.finish(job.id, JobStatus.CANCELED)
    with pytest.raises(Conflict):
        store.request_cancel(job.id)


def test_finish_keeps_progress_and_outputs(store: JobStore) -> None:
    job = store.create("alice", JobType.GENERATE, "dcgan", {})
    claimed = store.claim(job.id, "w", 30)
    assert claimed is not None and claimed.fence is not None
    store.set_progress(job.id, claimed.fence, Progress(step=5, total=10, fraction=0.5))
    ref = OutputRef(name="grid.png", key="owners/alice/x", content_type="image/png", size_bytes=9)
    store.finish(job.id, JobStatus.SUCCEEDED, outputs=[ref], metrics={"predict_time": 0.1})
    done = store.get(job.id)
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED and done.progress.step == 5
    assert done.outputs == [ref] and done.metrics == {"predict_time": 0.1}
    with pytest.raises(Conflict):
        store.finish(job.id, JobStatus.FAILED)


def test_list_pages_newest_first_with_filters(store: JobStore) -> None:
    created = [
        store.create("alice", JobType.TRAIN if i % 2 else JobType.GENERATE, "dcgan", {})
        for i in range(7)
    ]
    store.create("bob", JobType.TRAIN, "dcgan", {})
    newest_first = [j.id for j in reversed(created)]

    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = store.list_for_owner("alice", limit=3, cursor=cursor)
        seen += [j.id for j in page]
        if cursor is None:
            break
    assert seen == newest_first

    trains, _ = store.list_for_owner("alice", limit=10, where=lambda j: j.type is JobType.TRAIN)
    assert [j.id for j in trains] == [j.id for j in reversed(created) if j.type is JobType.TRAIN]


def test_an_unfiltered_page_reads_only_its_records(
    store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page of 20 of a 60-job owner decodes 20 records without a filter, and reads ahead
    with one (a filter may turn most of them away)."""
    from atelier.shared.job_search import JobFilter, find_jobs

    for _ in range(60):
        store.create("carol", JobType.GENERATE, "dcgan", {})
    read: list[int] = []
    get_many = store.get_many

    def counted(job_ids: Iterable[str]) -> list[Job]:
        ids = list(job_ids)
        read.append(len(ids))
        return get_many(ids)

    monkeypatch.setattr(store, "get_many", counted)
    page, cursor = find_jobs(store, "carol", JobFilter(), limit=20)
    assert (len(page), read) == (20, [20]) and cursor == page[-1].id
    read.clear()
    page, _ = find_jobs(store, "carol", JobFilter(kind="dcgan"), limit=20)
    assert len(page) == 20 and read == [50]


def test_api_key_cache_saves_the_round_trip_and_expires(redis_client: redis.Redis) -> None:
    from atelier.shared.auth import ApiKeyStore, hash_key
    from atelier.shared.redis_keys import KEYS

    store = ApiKeyStore(redis_client, cache_seconds=0.3)
    key = store.create("alice")
    assert store.lookup("atk_unknown") is None  # unknown keys are not cached...
    assert (record := store.lookup(key)) is not None and record.owner == "alice"
    redis_client.delete(KEYS.api_key(hash_key(key)))
    assert store.lookup(key) is not None  # ...known ones are, for cache_seconds
    time.sleep(0.4)
    assert store.lookup(key) is None
    uncached = ApiKeyStore(redis_client)
    other = uncached.create("bob")
    redis_client.delete(KEYS.api_key(hash_key(other)))
    assert uncached.lookup(other) is None


def test_queued_index_follows_the_state_machine(
    store: JobStore, redis_client: redis.Redis
) -> None:
    def overdue(job_type: JobType = JobType.TRAIN) -> list[str]:
        return store.overdue_queued(job_type, time.time() + 3600)

    first = store.create("alice", JobType.TRAIN, "dcgan", {})
    second = store.create("alice", JobType.GENERATE, "dcgan", {})
    assert overdue() == [first.id] and overdue(JobType.GENERATE) == [second.id]
    claimed = store.claim(first.id, "w1", 30)
    assert claimed is not None and claimed.fence is not None
    assert overdue() == []
    patient = JobStore(redis_client, retry=RetryPolicy(backoff_seconds=60))
    lost = JobErrorInfo(type="WorkerLost", message="gone")
    assert patient.attempt_failed(first.id, lost, fence=claimed.fence) is not None
    assert store.overdue_queued(JobType.TRAIN, time.time()) == []  # due in a minute
    assert overdue() == [first.id]
    store.request_cancel(first.id)
    store.expire(second.id, "too late")
    assert overdue() == [] and overdue(JobType.GENERATE) == []


def test_reaper_resends_a_lost_message_only_when_its_queue_is_empty(
    store: JobStore, redis_client: redis.Redis
) -> None:
    from prometheus_client import REGISTRY

    from atelier.shared.settings import Settings
    from atelier.workers.reaper import reap_once

    def resent_total() -> float:
        return REGISTRY.get_sample_value("atelier_reaper_actions_total", {"action": "resent"}) or 0

    resent_before = resent_total()
    settings = Settings(lost_message_seconds=0.2)
    lost = store.create("alice", JobType.GENERATE, "dcgan", {})  # no message was ever sent
    sent: list[tuple[str, str]] = []

    def sweep(waiting: int) -> int:
        return reap_once(store, settings, lambda *m: sent.append(m), lambda _t: waiting).resent

    assert sweep(waiting=0) == 0  # not overdue yet
    time.sleep(0.3)
    assert sweep(waiting=3) == 0  # messages still wait: workers are busy, nothing is lost
    assert sweep(waiting=0) == 1 and sent == [(lost.id, "generate")]
    assert sweep(waiting=0) == 0  # the resend restarted its wait
    time.sleep(0.3)
    assert store.claim(lost.id, "w1", 30) is not None  # the resent message arrived
    assert sweep(waiting=0) == 0 and len(sent) == 1
    assert resent_total() == resent_before + 1


def test_one_retry_policy_for_runner_and_reaper(redis_client: redis.Redis) -> None:
    """attempt_failed counts the failure, requeues with the policy's doubling backoff, and
    fails the job with the last error once max_attempts failures are reached."""
    from atelier.shared.settings import Settings
    from atelier.workers.reaper import reap_once

    policy = RetryPolicy(max_attempts=3, backoff_seconds=10, max_delay_seconds=15)
    store = JobStore(redis_client, retry=policy)
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    flaky = JobErrorInfo(type="StorageUnavailable", message="storage away")

    one = store.claim(job.id, "w1", 30)
    assert one is not None and one.fence is not None
    assert store.attempt_failed(job.id, flaky, fence="2-0") is None  # attempt 1 holds it
    before = time.time()
    first = store.attempt_failed(job.id, flaky, fence=one.fence)
    assert first is not None and first.status is JobStatus.QUEUED and first.failures == 1
    assert first.error == flaky and first.worker is None
    due = redis_client.zscore("atelier:requeued", job.id)
    assert due is not None and before + 10 <= due <= time.time() + 10  # the first backoff

    # The second attempt's worker dies: the reaper applies the same policy.
    redis_client.zadd("atelier:requeued", {job.id: 0})
    assert store.claim(job.id, "w2", -1) is not None  # a lease already run out
    report = reap_once(store, Settings(), lambda _id, _type: None)
    assert report.requeued == 1
    second = store.get(job.id)
    assert second is not None and second.failures == 2 and second.error is not None
    assert second.error.type == "WorkerLost" and "w2" in second.error.message
    due = redis_client.zscore("atelier:requeued", job.id)
    assert due is not None and due >= time.time() + 14  # doubled, capped at 15 s

    redis_client.zadd("atelier:requeued", {job.id: 0})
    three = store.claim(job.id, "w3", 30)
    assert three is not None and three.fence is not None
    last = store.attempt_failed(job.id, flaky, fence=three.fence)
    assert last is not None and last.status is JobStatus.FAILED and last.failures == 3
    assert last.error is not None and last.error.type == "StorageUnavailable"
    assert last.error.message == "gave up after 3 failed attempts: storage away"
    for index in ("running", "requeued", "queued:train", "start-deadlines"):
        assert redis_client.zscore(f"atelier:{index}", job.id) is None


def test_cancel_of_a_missing_job_is_none(store: JobStore) -> None:
    assert store.request_cancel("job_missing") is None


def test_a_stale_attempt_can_write_nothing(store: JobStore, redis_client: redis.Redis) -> None:
    """Fencing: once attempt 2 holds the job, every write of attempt 1 is refused and
    leaves the record as attempt 2 made it."""
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    one = store.claim(job.id, "w1", 30)
    assert one is not None and one.fence is not None and one.fence.startswith("1-")
    assert store.renew_lease(job.id, one.fence, 30)
    lost = JobErrorInfo(type="WorkerLost", message="paused")
    assert store.attempt_failed(job.id, lost, fence=one.fence) is not None  # the reaper
    assert not store.renew_lease(job.id, one.fence, 30)  # requeued: attempt 1 holds nothing
    redis_client.zadd("atelier:requeued", {job.id: 0})
    two = store.claim(job.id, "w2", 30)
    assert two is not None and two.fence is not None and two.fence.startswith("2-")
    assert store.fence(job.id) == two.fence
    _stale_writes_refused(store, redis_client, job.id, stale=one.fence, current=two.fence)


def test_a_claim_lost_in_a_failover_never_repeats_its_fence(
    store: JobStore, redis_client: redis.Redis, redis_admin: redis.Redis
) -> None:
    """A failover can lose a claim (replication is asynchronous): the promoted replica has
    the job queued, and the next claim counts the same attempt again. Its token still
    differs, so the first claimant's writes are refused. The database is put back as it
    was before the claim, as a replica that never received the claim would have it."""
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    before = {key: redis_admin.dump(key) for key in redis_admin.keys("*")}
    lost_claim = store.claim(job.id, "w1", 30)
    assert lost_claim is not None and lost_claim.fence is not None
    redis_admin.flushdb()
    for key, value in before.items():
        redis_admin.restore(key, 0, cast(bytes, value))
    again = store.claim(job.id, "w2", 30)
    assert again is not None and again.fence is not None
    assert again.attempt == lost_claim.attempt == 1  # the number repeats ...
    assert again.fence != lost_claim.fence  # ... the token does not
    _stale_writes_refused(store, redis_client, job.id, stale=lost_claim.fence, current=again.fence)


def _stale_writes_refused(
    store: JobStore, redis_client: redis.Redis, job_id: str, *, stale: str, current: str
) -> None:
    from atelier.shared.job_logs import JobLogs

    logs = JobLogs(redis_client, 100)
    assert logs.append(job_id, current, "the current attempt runs")
    lost = JobErrorInfo(type="WorkerLost", message="paused")
    ref = OutputRef(name="samples/x.png", key="a1/x.png", content_type="image/png", size_bytes=1)
    assert not store.renew_lease(job_id, stale, 30)
    assert not store.set_progress(job_id, stale, Progress(step=900, total=1000, fraction=0.9))
    assert not store.set_checkpoint(job_id, stale, CheckpointRef(step=800, key="a1/ck"))
    assert not store.add_outputs(job_id, stale, [ref])
    assert not logs.append(job_id, stale, "the stale attempt woke up")
    assert store.finish(job_id, JobStatus.SUCCEEDED, fence=stale) is None
    assert store.requeue(job_id, fence=stale) is None
    assert store.attempt_failed(job_id, lost, fence=stale) is None
    flags = store.stop_requested(job_id, stale, None)
    assert flags.fenced and not flags.canceled and not flags.draining

    assert store.set_progress(job_id, current, Progress(step=10, total=1000, fraction=0.01))
    done = store.finish(job_id, JobStatus.SUCCEEDED, fence=current)
    assert done is not None and done.fence == current and done.outputs == []
    assert done.checkpoint is None and done.progress.step == 10
    assert logs.read(job_id) == ["the current attempt runs"]
    assert not store.stop_requested(job_id, current, None).fenced


def test_a_nan_metric_leaves_every_record_readable(
    store: JobStore, redis_client: redis.Redis
) -> None:
    """A diverged run's NaN stored as JSON null made its record unreadable, and so every
    listing of its owner's jobs. Non-finite metrics are left out of what is stored, and a
    record stored that way before reads again."""
    job = store.create("nan-owner", JobType.TRAIN, "dcgan", {})
    claimed = store.claim(job.id, "w", 30)
    assert claimed is not None and claimed.fence is not None
    nan, inf = float("nan"), float("inf")
    progress = Progress(step=3, total=9, metrics={"loss": nan, "d_loss": inf, "g_loss": 0.5})
    assert progress.metrics == {"g_loss": 0.5}
    store.set_progress(job.id, claimed.fence, progress)
    store.finish(job.id, JobStatus.FAILED, metrics={"val_loss": nan, "steps": 3.0})
    done = store.get(job.id)
    assert done is not None and done.metrics == {"steps": 3.0}
    assert done.progress.metrics == {"g_loss": 0.5}
    # A record written before this guard: the null is read as no metric.
    key = KEYS.job(job.id)
    record = cast(bytes | None, redis_client.hget(key, "record"))
    assert record is not None
    patched = record.replace(b'"steps":3.0', b'"steps":3.0,"x":null')
    assert b'"x":null' in patched
    redis_client.hset(key, "record", patched)
    listed = store.list_for_owner("nan-owner", limit=10)
    assert [j.id for j in listed[0]] == [job.id] and listed[0][0].metrics == {"steps": 3.0}
