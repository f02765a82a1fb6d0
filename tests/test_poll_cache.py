"""The pieces that let most status polls read nothing from Redis (issue 26, point 1): the
process's kept bodies (``api.job_cache``) with the event hub that drops them, the wake-up
every write to a job's hash sends, and the read budget's per-process leases
(``shared.rate_leases``) with their stated bound.

Fast tier: the real redis-server; the cache's races are driven by hand."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis

from atelier.api.event_hub import EventHub
from atelier.api.job_cache import JobBodies, Shown
from atelier.shared import rate_leases
from atelier.shared.jobs import CheckpointRef, JobStore, JobType, LabelChange
from atelier.shared.rate_leases import ReadLeases
from atelier.shared.rate_limits import Budget
from atelier.shared.redis_keys import KEYS
from tests.conftest import wait_for

ROUTE = "http://x/v1/files/"


def _shown(state: str, owner: str = "alice", route: str = ROUTE) -> Shown:
    return Shown(owner, False, route, f'{{"status":"{state}"}}'.encode())


def _kept_after_read(bodies: JobBodies, job_id: str, state: str) -> Shown | None:
    bodies.keep(job_id, bodies.reading(job_id), _shown(state))
    return bodies.kept(job_id, ROUTE)


def test_a_kept_body_is_dropped_by_its_jobs_wake_up_and_by_a_flush() -> None:
    bodies = JobBodies(max_age=60)
    assert bodies.kept("job_a", ROUTE) is None
    assert _kept_after_read(bodies, "job_a", "queued") == _shown("queued")
    assert _kept_after_read(bodies, "job_b", "queued") is not None
    assert bodies.kept("job_a", "http://other.test/v1/files/") is None  # another host's links
    bodies.changed("job_a")
    assert bodies.kept("job_a", ROUTE) is None and bodies.kept("job_b", ROUTE) is not None
    bodies.flush()
    assert bodies.kept("job_b", ROUTE) is None and len(bodies) == 0


def test_a_read_that_a_wake_up_overtook_is_never_kept() -> None:
    """A slow read begun before a change must not put back the state before it, even after
    a later read kept the new one: no poll shows an older state than one shown before."""
    bodies = JobBodies(max_age=60)
    slow = bodies.reading("job_a")  # reads "queued"...
    bodies.changed("job_a")  # ...the job is claimed meanwhile
    fresh = bodies.reading("job_a")
    bodies.keep("job_a", fresh, _shown("running"))
    bodies.keep("job_a", slow, _shown("queued"))  # arrives last
    assert bodies.kept("job_a", ROUTE) == _shown("running")
    # Two overlapping reads keep neither: the one that began later may have read earlier
    # (the older state) while the other showed the newer.
    first, second = bodies.reading("job_b"), bodies.reading("job_b")
    assert first is not None and second is None
    bodies.keep("job_b", first, _shown("queued"))
    assert bodies.kept("job_b", ROUTE) is None
    alone = bodies.reading("job_b")  # no read under way now
    bodies.keep("job_b", alone, _shown("running"))
    assert bodies.kept("job_b", ROUTE) == _shown("running")
    # A flush while a read is under way: its result is not kept either.
    during = bodies.reading("job_c")
    bodies.flush()
    bodies.keep("job_c", during, _shown("queued"))
    assert bodies.kept("job_c", ROUTE) is None


def test_kept_bodies_expire_are_bounded_and_unused_while_not_live() -> None:
    live = threading.Event()
    bodies = JobBodies(max_age=60, live=live.is_set, max_entries=2)
    assert bodies.reading("job_a") is None  # not live: nothing kept, nothing served
    live.set()
    for job_id in ("job_a", "job_b"):
        assert _kept_after_read(bodies, job_id, "queued") is not None
    bodies.kept("job_a", ROUTE)  # used: job_b is now the least recently used
    _kept_after_read(bodies, "job_c", "queued")
    assert bodies.kept("job_b", ROUTE) is None and bodies.kept("job_a", ROUTE) is not None
    live.clear()
    assert bodies.kept("job_a", ROUTE) is None
    small = JobBodies(max_age=60, max_bytes=2 * _shown("queued").size + 1)
    for job_id in ("job_a", "job_b", "job_c"):
        _kept_after_read(small, job_id, "queued")
    assert [small.kept(j, ROUTE) is not None for j in ("job_a", "job_b", "job_c")] == [
        False,
        True,
        True,
    ]
    assert _kept_after_read(JobBodies(max_age=60, max_bytes=100), "job_a", "queued") is None
    expiring = JobBodies(max_age=0.05)
    assert _kept_after_read(expiring, "job_a", "queued") is not None
    wait_for(lambda: expiring.kept("job_a", ROUTE) is None, 2, "the kept body to expire")
    assert JobBodies(max_age=0).reading("job_a") is None  # 0: off


class _Recorder:
    def __init__(self) -> None:
        self.changed_jobs: list[str] = []
        self.flushes = 0

    def changed(self, job_id: str) -> None:
        self.changed_jobs.append(job_id)

    def flush(self) -> None:
        self.flushes += 1


def test_every_write_to_a_jobs_hash_wakes_the_hub_and_a_reconnect_flushes(
    redis_client: redis.Redis, redis_admin: redis.Redis
) -> None:
    """Writes with an event and without (a rename, a cancel flag, a checkpoint, a deletion)
    each tell the hub's listener which job changed; a dropped subscription flushes."""
    recorder = _Recorder()
    hub = EventHub(redis_client, listener=recorder)
    wait_for(hub.live, 5, "the subscription")  # asking starts the listener
    flushes = recorder.flushes
    store = JobStore(redis_client)
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    store.relabel(job.id, LabelChange(frozenset({"name"}), "renamed", None, None))
    claimed = store.claim(job.id, "w1", 30)
    assert claimed is not None and claimed.fence is not None
    fence = claimed.fence
    writes: list[Callable[[], object]] = [
        lambda: store.request_cancel(job.id),  # running: a flag, no event
        lambda: store.set_checkpoint(job.id, fence, CheckpointRef(step=3, key="k")),
        lambda: store.delete(claimed),
    ]
    wait_for(lambda: len(recorder.changed_jobs) >= 3, 5, "create, rename and claim wake-ups")
    for write in writes:
        seen = len(recorder.changed_jobs)
        write()

        def woken(seen: int = seen) -> bool:
            return len(recorder.changed_jobs) > seen

        wait_for(woken, 5, "the write's wake-up")
    assert set(recorder.changed_jobs) == {job.id}
    redis_admin.client_kill_filter(_type="pubsub")
    wait_for(lambda: recorder.flushes >= flushes + 1 and hub.live(), 10, "flush and resubscribe")


READS = Budget("reads", per_minute=6, burst=40)  # a read every 10 s: no refill in a test


def test_leases_of_two_processes_never_exceed_the_budget_within_the_bound(
    redis_client: redis.Redis,
) -> None:
    """Leases of N = 4 (a tenth of the burst): one process may be refused while the other
    holds up to N - 1 reads, never more; the two together never serve more than the
    budget, and every read it holds is served."""
    one, two = ReadLeases(redis_client, most=10), ReadLeases(redis_client, most=10)
    assert one.size(READS) == 4
    assert two.spend("alice", READS)[0].allowed  # takes 4, holds 3
    served_one = 0
    while one.spend("alice", READS)[0].allowed:
        served_one += 1
    assert served_one == READS.burst - one.size(READS)  # refused while two holds 3
    served_two = 1
    while two.spend("alice", READS)[0].allowed:
        served_two += 1
    assert served_two == one.size(READS) and served_one + served_two == READS.burst


def test_a_lapsed_lease_is_given_back_and_small_budgets_are_exact(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_leases, "LEASE_SECONDS", 0.05)
    leases = ReadLeases(redis_client, most=10)
    first = leases.spend("alice", READS)[0]
    assert first.remaining == READS.burst - 1  # 4 taken, 3 of them still held here
    threading.Event().wait(0.1)
    again = leases.spend("alice", READS)[0]  # the 3 lapsed: given back, 4 more taken
    assert again.remaining == READS.burst - 2
    tat = int(redis_client.get(KEYS.rate_limit("alice", "reads")) or 0)
    seconds, micros = redis_client.time()
    debt_ms = tat - (seconds * 1000 + micros // 1000)
    assert round(debt_ms / READS.interval_ms) == 5  # 1 spent + 4 held, not 8
    small = Budget("reads", per_minute=6, burst=19)
    assert leases.size(small) == 1  # every read asks Redis: exact
    denied, raw = leases.spend("bob", Budget("reads", per_minute=6, burst=1))
    assert denied.allowed and raw is None
    denied, raw = leases.spend("bob", Budget("reads", per_minute=6, burst=1), KEYS.job("job_x"))
    assert not denied.allowed and denied.retry_after >= 1 and raw is None
