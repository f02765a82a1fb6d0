"""Stored bytes reserved at admission from a job's estimate, released when it ends
(shared.reservations, shared.quotas, issue 23 point 6).

Fast tier: the app in this process against the real redis-server (the `atelier` user), and
the job store on its own for the terminal paths; no worker, no TensorFlow."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
import redis
import requests

from atelier.api.admission import estimate, facts_for
from atelier.shared.datasets import BUILTIN_DATASETS
from atelier.shared.errors import QuotaExceeded
from atelier.shared.jobs import (
    Job,
    JobErrorInfo,
    JobStatus,
    JobStore,
    JobType,
    RetryPolicy,
    new_id,
)
from atelier.shared.kinds import KINDS
from atelier.shared.limits import OwnerLimits
from atelier.shared.queue import queue_length
from atelier.shared.quotas import GRACE_MS, Quotas
from atelier.shared.settings import Settings
from atelier.shared.storage import make_object_store
from tests.conftest import InProcessApi

TRAIN = {"type": "train", "kind": "dcgan", "params": {"steps": 10}}
RESERVATIONS = "atelier:owner:alice:reservations"
RESERVED = "atelier:owner:alice:reserved-bytes"


def reserved_total(client: redis.Redis) -> int:
    """What the owner alice has reserved, as Redis holds it."""
    return int(cast(bytes, client.get(RESERVED) or b"0"))


def held_reservations(client: redis.Redis) -> dict[str, int]:
    raw = cast(dict[bytes, bytes], client.hgetall(RESERVATIONS))
    return {key.decode(): int(value) for key, value in raw.items()}


def estimated_output() -> int:
    """What admission estimates TRAIN will store (a couple of MB: checkpoint, samples)."""
    spec = KINDS["dcgan"]
    params = spec.train_params.model_validate(TRAIN["params"])
    facts = facts_for(Settings(), dataset=BUILTIN_DATASETS["digits"])
    found = estimate(spec, JobType.TRAIN, params, facts)
    assert found is not None and found.output_bytes > 1_000_000
    return found.output_bytes


E = estimated_output()


def auth(api: InProcessApi, owner: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {api.raw_key(owner)}"}


def submit(api: InProcessApi, headers: dict[str, str]) -> requests.Response:
    return api.http.post(api.url("/v1/jobs"), json=TRAIN, headers=headers, timeout=10)


def refused(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 403, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == "urn:atelier:problem:quota-exceeded"
    assert body["quota"] == "stored_bytes"
    return body


def stored_bytes_quota(api: InProcessApi, headers: dict[str, str]) -> dict[str, Any]:
    usage = api.http.get(api.url("/v1/usage"), headers=headers, timeout=10).json()
    found: dict[str, Any] = {q["name"]: q for q in usage["quotas"]}["stored_bytes"]
    return found


# --- at the API -----------------------------------------------------------------------------
def test_submits_whose_estimates_pass_the_quota_are_refused(
    make_api: Callable[..., InProcessApi],
) -> None:
    """Before reservations, every submit at 0 stored bytes was admitted: a fourth job
    whose outputs would pass the quota was queued."""
    api = make_api(max_stored_bytes=3 * E + E // 2)
    headers = auth(api)
    ids = [submit(api, headers).json()["id"] for _ in range(3)]
    body = refused(submit(api, headers))
    assert (body["usage"], body["limit"]) == (0, 3 * E + E // 2)
    assert f"{3 * E} more are reserved" in body["detail"] and f"this needs {E}" in body["detail"]
    assert queue_length(api.redis, api.settings.train_queue) == 3
    assert api.redis.zcard("atelier:owner:alice:jobs") == 3
    assert held_reservations(api.redis) == {job_id: E for job_id in ids}
    quota = stored_bytes_quota(api, headers)
    assert (quota["usage"], quota["reserved"], quota["limit"]) == (0, 3 * E, 3 * E + E // 2)
    assert submit(api, auth(api, "bob")).status_code == 202  # per owner


def test_canceling_a_queued_job_releases_its_reservation(
    make_api: Callable[..., InProcessApi],
) -> None:
    api = make_api(max_stored_bytes=2 * E + E // 2)
    headers = auth(api)
    first, _ = (submit(api, headers).json()["id"] for _ in range(2))
    refused(submit(api, headers))
    canceled = api.http.post(api.url(f"/v1/jobs/{first}/cancel"), headers=headers, timeout=10)
    assert canceled.json()["status"] == "canceled"
    assert reserved_total(api.redis) == E
    assert submit(api, headers).status_code == 202
    assert reserved_total(api.redis) == 2 * E


def test_a_finished_job_counts_its_real_bytes_instead(
    make_api: Callable[..., InProcessApi],
) -> None:
    """The worker's part played by hand: claim, write an output through the metered store
    (as the runner does), finish. The estimate is released; the 1000 bytes stay counted."""
    api = make_api(max_stored_bytes=2 * E + E // 2)
    headers = auth(api)
    first, _ = (submit(api, headers).json()["id"] for _ in range(2))
    refused(submit(api, headers))
    jobs = JobStore(api.redis)
    running = jobs.claim(first, "worker-1", 60)
    assert running is not None and running.fence
    objects = make_object_store(api.settings, meter_with=api.redis)
    objects.put_bytes(f"owners/alice/jobs/{first}/a1/out.bin", b"x" * 1000, "x")
    assert jobs.finish(first, JobStatus.SUCCEEDED, fence=running.fence)
    quota = stored_bytes_quota(api, headers)
    assert (quota["usage"], quota["reserved"]) == (1000, E)
    assert submit(api, headers).status_code == 202


def test_concurrent_submits_cannot_overspend(
    make_api: Callable[..., InProcessApi],
) -> None:
    api = make_api(max_stored_bytes=5 * E + E // 2)
    headers = auth(api)
    sessions = [api.session() for _ in range(16)]
    with ThreadPoolExecutor(16) as pool:
        answers = list(
            pool.map(lambda s: s.post(api.url("/v1/jobs"), json=TRAIN, headers=headers), sessions)
        )
    assert sorted(a.status_code for a in answers) == [202] * 5 + [403] * 11
    assert queue_length(api.redis, api.settings.train_queue) == 5
    assert reserved_total(api.redis) == 5 * E
    assert len(api.redis.hgetall(RESERVATIONS)) == 5


# --- every terminal path, in the job store --------------------------------------------------
LIMITS = OwnerLimits(max_running_jobs=1, share=1.0, max_stored_bytes=10 * E)


def admitted(quotas: Quotas, jobs: JobStore, **options: Any) -> Job:
    """A queued job of alice's, admitted (its estimate reserved) and created as the API does."""
    job_id = new_id("job")
    quotas.admit_job("alice", job_id, LIMITS, E)
    job = jobs.create("alice", JobType.TRAIN, "dcgan", {}, job_id=job_id, **options)
    quotas.job_created("alice", job_id)
    return job


def _succeed(jobs: JobStore, job: Job) -> None:
    running = jobs.claim(job.id, "w", 60)
    assert running is not None
    jobs.finish(job.id, JobStatus.SUCCEEDED, fence=running.fence)


def _fail(jobs: JobStore, job: Job) -> None:
    jobs.finish(job.id, JobStatus.FAILED, error=JobErrorInfo(type="Boom", message="boom"))


def _give_up(jobs: JobStore, job: Job) -> None:
    running = jobs.claim(job.id, "w", 60)
    assert running is not None and running.fence
    after = jobs.attempt_failed(job.id, JobErrorInfo(type="W", message="lost"), fence=running.fence)
    assert after is not None and after.status is JobStatus.FAILED


def _cancel_queued(jobs: JobStore, job: Job) -> None:
    jobs.request_cancel(job.id)


def _cancel_running(jobs: JobStore, job: Job) -> None:
    running = jobs.claim(job.id, "w", 60)
    assert running is not None
    jobs.request_cancel(job.id)
    assert jobs.reservations.held("alice") == 2 * E  # still running: still reserved
    jobs.finish(job.id, JobStatus.CANCELED, fence=running.fence)


def _expire(jobs: JobStore, job: Job) -> None:
    assert jobs.expire(job.id, "start_before passed")


def _delete_unsent(jobs: JobStore, job: Job) -> None:
    jobs.delete(job)  # a create whose enqueue failed


@pytest.mark.parametrize(
    "end",
    [_succeed, _fail, _give_up, _cancel_queued, _cancel_running, _expire, _delete_unsent],
)
def test_every_way_a_job_ends_releases_its_reservation_once(
    redis_client: redis.Redis, end: Callable[[JobStore, Job], None]
) -> None:
    jobs = JobStore(redis_client, retry=RetryPolicy(max_attempts=1))
    quotas = Quotas(redis_client)
    admitted(quotas, jobs)  # another, still queued: its E stays
    job = admitted(quotas, jobs, priority=1)
    assert jobs.reservations.held("alice") == 2 * E
    end(jobs, job)
    assert jobs.reservations.held("alice") == E
    assert redis_client.hget(RESERVATIONS, job.id) is None
    # Released again (and the job deleted once over): nothing more is subtracted.
    jobs.reservations.release(redis_client, "alice", [job.id])
    over = jobs.get(job.id)
    if over is not None:
        jobs.delete(over)
    assert jobs.reservations.held("alice") == E


# --- the sweep ------------------------------------------------------------------------------
def test_the_sweep_releases_what_terminal_or_lost_jobs_left_behind(
    redis_client: redis.Redis, redis_admin: redis.Redis
) -> None:
    """A leak: a terminal job whose release was lost (written here by hand, as a crash or a
    failover could leave it), and a submit whose API process died before creating its job.
    Refused at first, the next submit sweeps them and is admitted; the reservations of a
    queued job and of a submit being admitted right now stay."""
    jobs = JobStore(redis_client)
    quotas = Quotas(redis_client)
    queued = admitted(quotas, jobs)
    ended = admitted(quotas, jobs, priority=1)
    jobs.request_cancel(ended.id)
    quotas.admit_job("alice", "job_lost", LIMITS, E)  # its API process died here
    quotas.admit_job("alice", "job_coming", LIMITS, E)  # being created right now
    redis_admin.zadd("atelier:owner:alice:admitting", {"job_lost": 1})  # long ago
    redis_admin.hset(RESERVATIONS, ended.id, E)  # the release the crash lost
    redis_admin.incrby(RESERVED, E)
    assert reserved_total(redis_client) == 4 * E
    tight = OwnerLimits(max_running_jobs=1, share=1.0, max_stored_bytes=3 * E + E // 2)
    quotas.admit_job("alice", "job_next", tight, E)  # 4E + E over 3.5E: swept, then fits
    held = held_reservations(redis_client)
    assert held == {queued.id: E, "job_coming": E, "job_next": E}
    assert reserved_total(redis_client) == 3 * E
    with pytest.raises(QuotaExceeded):  # nothing left to sweep: a real refusal
        quotas.admit_job("alice", "job_more", tight, E)
    assert jobs.reservations.sweep("alice", GRACE_MS) == 0
