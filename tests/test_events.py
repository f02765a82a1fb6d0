"""Job events, metric history, server-sent event streams and ``Prefer: wait`` against a
real Redis and the app in this process (no worker: the tests play the worker's part with
the job store, as a worker would write)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from flask.testing import FlaskClient

from atelier.api.prefer import preferred_wait
from atelier.cli.events import describe
from atelier.client import parse_sse
from atelier.shared.events import FINISHED_STREAM_SECONDS, EventType
from atelier.shared.job_logs import JobLogs
from atelier.shared.jobs import Job, JobErrorInfo, JobStatus, JobStore, JobType, OutputRef, Progress
from atelier.shared.metric_history import MetricHistory
from atelier.shared.redis_keys import KEYS
from tests.conftest import InProcessApi, inprocess_api_for, inprocess_settings

SAMPLE = OutputRef(
    name="sample.png", key="owners/alice/x.png", content_type="image/png", size_bytes=3
)


@pytest.fixture()
def store(redis_client: redis.Redis) -> JobStore:
    return JobStore(redis_client)


def _claim(store: JobStore, job_id: str, worker: str = "w1") -> str:
    """Claim the job; its fencing token."""
    claimed = store.claim(job_id, worker, 30)
    assert claimed is not None and claimed.fence is not None
    return claimed.fence


def _run_a_job(store: JobStore, owner: str = "alice") -> Job:
    """A job through its whole life: claimed, progress, a log line, a sample, succeeded."""
    job = store.create(owner, JobType.TRAIN, "dcgan", {})
    fence = _claim(store, job.id)
    assert store.set_progress(job.id, fence, Progress(step=5, total=10, metrics={"loss": 0.5}))
    assert JobLogs(store._redis, 100).append(job.id, fence, "step 5/10")
    assert store.add_outputs(job.id, fence, [SAMPLE])
    done = store.finish(job.id, JobStatus.SUCCEEDED, fence=fence, model_id="mdl_1")
    assert done is not None
    return done


def test_a_jobs_life_is_its_events_in_order(store: JobStore) -> None:
    job = _run_a_job(store)
    events = store.events.for_job(job.id)
    kinds = [(e.type, e.data.get("status")) for e in events]
    assert kinds == [
        (EventType.STATUS, "running"),
        (EventType.PROGRESS, None),
        (EventType.LOG, None),
        (EventType.OUTPUT, None),
        (EventType.STATUS, "succeeded"),
        (EventType.END, "succeeded"),
    ]
    assert events[1].data["metrics"] == {"loss": 0.5}
    assert events[2].data == {"line": "step 5/10"}
    assert events[3].data["key"] == SAMPLE.key
    assert events[-1].data["model_id"] == "mdl_1"
    assert [e.id for e in events] == sorted(e.id for e in events)
    # The owner's stream has the creation too; the global one, read by webhook delivery,
    # has the rest with the owner named.
    owner_events = store.events.for_owner("alice")
    assert (owner_events[0].type, owner_events[0].data) == (EventType.STATUS, {})  # creation
    assert [e.type for e in owner_events[1:]] == [e.type for e in events]
    everything = cast(list[tuple[bytes, dict[bytes, bytes]]], store._redis.xrange(KEYS.all_events))
    assert len(everything) == len(events)
    assert {fields[b"owner"] for _, fields in everything} == {b"alice"}


def test_a_queued_job_has_no_stream_of_its_own_and_a_finished_ones_expires(
    store: JobStore, redis_admin: redis.Redis
) -> None:
    queued = store.create("alice", JobType.TRAIN, "dcgan", {})
    assert not store._redis.exists(KEYS.job_events(queued.id))
    finished = _run_a_job(store)
    ttl = redis_admin.ttl(KEYS.job_events(finished.id))
    assert 0 < ttl <= FINISHED_STREAM_SECONDS


def test_resuming_after_an_id_gives_only_what_came_after(store: JobStore) -> None:
    job = _run_a_job(store)
    events = store.events.for_job(job.id)
    rest = store.events.for_job(job.id, after=events[2].id)
    assert [e.id for e in rest] == [e.id for e in events[3:]]


def test_a_fenced_off_attempt_writes_no_event(store: JobStore) -> None:
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    fence = _claim(store, job.id)
    store.attempt_failed(job.id, JobErrorInfo(type="WorkerLost", message="gone"), fence=fence)
    store._redis.zadd(KEYS.requeued, {job.id: 0})
    assert store.claim(job.id, "w2", 30) is not None  # attempt 2 holds the fence
    before = len(store.events.for_job(job.id))
    assert not store.set_progress(job.id, fence, Progress(step=9, total=10))
    assert not JobLogs(store._redis, 100).append(job.id, fence, "a paused worker wakes")
    assert len(store.events.for_job(job.id)) == before


def test_another_owner_sees_none_of_the_events(store: JobStore) -> None:
    _run_a_job(store, owner="alice")
    assert store.events.for_owner("mallory") == []


def test_deleting_a_job_deletes_its_stream_and_history(store: JobStore) -> None:
    job = _run_a_job(store)
    store.delete(job)
    assert store.events.for_job(job.id) == []
    assert store.history.read(job.id) == {"train": [], "validation": []}


# --- metric history -----------------------------------------------------------------------


def _progress(step: int, **metrics: float) -> Progress:
    return Progress(step=step, total=10**6, metrics=metrics, updated_at=time.time())


def test_a_million_step_curve_stays_small_and_spans_the_run(redis_client: redis.Redis) -> None:
    store = JobStore(redis_client)
    history = MetricHistory(redis_client, KEYS, cap=64)
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    fence = _claim(store, job.id)
    for step in range(1, 1_000_001, 997):  # ~1,000 writes over a million steps
        assert history.write_progress(job.id, fence, _progress(step, loss=1 / step))
    train = history.read(job.id)["train"]
    steps = [point["step"] for point in train]
    assert 32 <= len(train) <= 64
    assert steps == sorted(steps)
    assert steps[0] == 1 and steps[-1] > 900_000
    gaps = {b - a for a, b in itertools.pairwise(steps)}
    assert max(gaps) <= 2 * min(gaps)  # evenly spread, not front-loaded


def test_validation_points_are_their_own_series(store: JobStore) -> None:
    job = store.create("alice", JobType.TRAIN, "textgen", {})
    fence = _claim(store, job.id)
    store.history.write_progress(job.id, fence, _progress(10, loss=2.0, val_loss=2.5))
    store.history.write_progress(
        job.id, fence, _progress(20, loss=1.5, val_loss=2.5), validation_fresh=False
    )
    series = store.history.read(job.id)
    assert [p["metrics"] for p in series["train"]] == [{"loss": 2.0}, {"loss": 1.5}]
    assert [(p["step"], p["metrics"]) for p in series["validation"]] == [(10, {"val_loss": 2.5})]


def test_a_resumed_attempt_rewinds_the_curve_to_its_checkpoint(store: JobStore) -> None:
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    fence = _claim(store, job.id)
    for step in (100, 200, 300, 400):
        store.set_progress(job.id, fence, _progress(step, loss=1.0))
    store.attempt_failed(job.id, JobErrorInfo(type="WorkerLost", message="gone"), fence=fence)
    store._redis.zadd(KEYS.requeued, {job.id: 0})
    second = _claim(store, job.id, "w2")
    store.set_progress(job.id, second, _progress(250, loss=0.9))  # resumed from step 200
    steps = [p["step"] for p in store.history.read(job.id)["train"]]
    assert steps == [100, 200, 250]


# --- Prefer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (["wait=5"], 5.0),
        (["respond-async, wait=10"], 10.0),
        (["wait"], 60.0),
        (["wait=600"], 60.0),
        (['wait="3"; foo=bar'], 3.0),
        (["wait=soon"], None),
        (["return=minimal"], None),
        ([], None),
    ],
)
def test_prefer_wait_is_parsed_as_rfc_7240_says(headers: list[str], expected: float | None) -> None:
    assert preferred_wait(headers, 60.0) == expected


# --- the HTTP side --------------------------------------------------------------------------


def _bearer(api: InProcessApi, owner: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {api.raw_key(owner)}"}


def _read_sse(chunks: Iterator[bytes]) -> list[dict[str, Any]]:
    """Every event of a stream, once it closes."""
    return list(_read_sse_each(chunks))


def _stream(client: FlaskClient, path: str, headers: dict[str, str]) -> Iterator[bytes]:
    response = client.get(path, headers=headers, buffered=False)
    assert response.status_code == 200, response.get_data()
    assert response.mimetype == "text/event-stream"
    return response.response  # type: ignore[return-value]


def test_a_finished_jobs_stream_replays_its_life_and_closes(inprocess_api: InProcessApi) -> None:
    store = JobStore(inprocess_api.redis)
    job = _run_a_job(store)
    client = inprocess_api.app.test_client()
    headers = _bearer(inprocess_api)
    events = _read_sse(_stream(client, f"/v1/jobs/{job.id}/events", headers))
    assert [e["event"] for e in events] == ["status", "progress", "log", "output", "status", "end"]
    assert all(e["data"]["job"] == job.id for e in events)
    output = events[3]["data"]
    assert output["url"].endswith(SAMPLE.key) and "key" not in output
    resumed = _read_sse(
        _stream(client, f"/v1/jobs/{job.id}/events", {**headers, "Last-Event-ID": events[3]["id"]})
    )
    assert [e["id"] for e in resumed] == [e["id"] for e in events[4:]]


def test_a_stream_without_events_of_its_own_starts_from_the_record(
    inprocess_api: InProcessApi,
) -> None:
    """A queued job (no stream yet) and a finished one whose stream expired: the record's
    status comes first, with id 0-0, and the finished one's stream closes after ``end``."""
    store = JobStore(inprocess_api.redis)
    finished = _run_a_job(store)
    inprocess_api.redis.delete(KEYS.job_events(finished.id))  # as after its day of retention
    client = inprocess_api.app.test_client()
    events = _read_sse(_stream(client, f"/v1/jobs/{finished.id}/events", _bearer(inprocess_api)))
    assert [(e["event"], e["id"], e["data"]["status"]) for e in events] == [
        ("status", "0-0", "succeeded"),
        ("end", "0-0", "succeeded"),
    ]
    queued = store.create("alice", JobType.TRAIN, "dcgan", {})
    chunks = _stream(client, f"/v1/jobs/{queued.id}/events", _bearer(inprocess_api))
    first = next(_read_sse_each(chunks))
    assert (first["event"], first["id"], first["data"]["status"]) == ("status", "0-0", "queued")


def test_a_running_jobs_stream_delivers_events_as_they_happen(inprocess_api: InProcessApi) -> None:
    store = JobStore(inprocess_api.redis)
    job = store.create("alice", JobType.TRAIN, "dcgan", {})
    seen_at: dict[str, float] = {}

    def work() -> None:
        time.sleep(0.3)
        fence = _claim(store, job.id)
        for step in (1, 2, 3):
            store.set_progress(job.id, fence, Progress(step=step, total=3, updated_at=time.time()))
            time.sleep(0.1)
        store.finish(job.id, JobStatus.SUCCEEDED, fence=fence)

    worker = threading.Thread(target=work)
    worker.start()
    client = inprocess_api.app.test_client()
    chunks = _stream(client, f"/v1/jobs/{job.id}/events", _bearer(inprocess_api))
    events = []
    for event in _read_sse_live(chunks, seen_at):
        events.append(event)
    worker.join()
    assert [e["event"] for e in events][-1] == "end"
    progress = [e for e in events if e["event"] == "progress"]
    assert [p["data"]["step"] for p in progress] == [1, 2, 3]
    lags = [seen_at[p["id"]] - p["data"]["updated_at"] for p in progress]
    assert max(lags) < 1.0, lags


def _read_sse_live(chunks: Iterator[bytes], seen_at: dict[str, float]) -> Iterator[dict[str, Any]]:
    for event in _read_sse_each(chunks):
        seen_at[event["id"]] = time.time()
        yield event


def _read_sse_each(chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    buffer = ""
    for chunk in chunks:
        buffer += chunk.decode()
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(
                line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
            )
            if "event" in fields:
                yield {**fields, "data": json.loads(fields["data"])}


def test_the_owner_stream_starts_now_and_sees_only_the_owners_jobs(
    inprocess_api: InProcessApi,
) -> None:
    store = JobStore(inprocess_api.redis)
    _run_a_job(store)  # before the stream opens: not replayed
    client = inprocess_api.app.test_client()
    chunks = _stream(client, "/v1/events", _bearer(inprocess_api))

    def later() -> None:
        time.sleep(0.3)
        store.create("mallory", JobType.TRAIN, "dcgan", {})
        store.create("alice", JobType.GENERATE, "dcgan", {})

    threading.Thread(target=later).start()
    first = next(_read_sse_each(chunks))
    assert first["event"] == "status" and first["data"]["type"] == "generate"


def test_stream_errors_are_problems(inprocess_api: InProcessApi) -> None:
    job = _run_a_job(JobStore(inprocess_api.redis))
    http = inprocess_api.http
    for headers, status in (
        ({**_bearer(inprocess_api), "Last-Event-ID": "not-an-id"}, 400),
        (_bearer(inprocess_api, "mallory"), 404),
        ({}, 401),
    ):
        answer = http.get(inprocess_api.url(f"/v1/jobs/{job.id}/events"), headers=headers)
        assert answer.status_code == status
        assert answer.headers["Content-Type"] == "application/problem+json"


def test_long_requests_past_the_owners_or_the_process_limit_are_refused(
    redis_base_url: str, tmp_path: Any
) -> None:
    """One owner holds at most its share of a process's stream slots (429), the process at
    most its own (503); both say when to retry, and a closed stream frees its slot."""
    settings = inprocess_settings(
        redis_base_url, tmp_path, api_long_requests=2, api_long_requests_per_owner=1
    )
    for api in inprocess_api_for(settings):
        client = api.app.test_client()
        alice, bob, carol = _bearer(api, "alice"), _bearer(api, "bob"), _bearer(api, "carol")
        held = client.get("/v1/events", headers=alice, buffered=False)
        assert held.status_code == 200
        greedy = client.get("/v1/events", headers=alice)
        assert greedy.status_code == 429
        assert greedy.headers["Retry-After"] == "2"
        other = client.get("/v1/events", headers=bob, buffered=False)
        assert other.status_code == 200  # alice's streams did not take bob's turn
        full = client.get("/v1/events", headers=carol)
        assert full.status_code == 503
        assert full.headers["Retry-After"] == "2"
        # Closed streams give their slots back (closed newest first: the test client
        # keeps each open stream's request context on one stack).
        other.close()
        held.close()
        again = client.get("/v1/events", headers=alice, buffered=False)
        assert again.status_code == 200
        again.close()


def test_get_with_prefer_wait_answers_when_the_job_ends(inprocess_api: InProcessApi) -> None:
    store = JobStore(inprocess_api.redis)
    job = store.create("alice", JobType.GENERATE, "dcgan", {})

    def work() -> None:
        time.sleep(0.4)
        store.finish(job.id, JobStatus.SUCCEEDED, fence=_claim(store, job.id))

    threading.Thread(target=work).start()
    started = time.monotonic()
    answer = inprocess_api.http.get(
        inprocess_api.url(f"/v1/jobs/{job.id}"),
        headers={**_bearer(inprocess_api), "Prefer": "wait=10"},
    )
    took = time.monotonic() - started
    assert answer.status_code == 200
    assert answer.json()["status"] == "succeeded"
    assert answer.headers["Preference-Applied"] == "wait=10"
    assert 0.3 < took < 3.0


def test_prefer_wait_gives_up_after_n_seconds(inprocess_api: InProcessApi) -> None:
    job = JobStore(inprocess_api.redis).create("alice", JobType.GENERATE, "dcgan", {})
    started = time.monotonic()
    answer = inprocess_api.http.get(
        inprocess_api.url(f"/v1/jobs/{job.id}"),
        headers={**_bearer(inprocess_api), "Prefer": "wait=1"},
    )
    assert 0.9 < time.monotonic() - started < 3.0
    assert answer.json()["status"] == "queued"
    plain = inprocess_api.http.get(
        inprocess_api.url(f"/v1/jobs/{job.id}"), headers=_bearer(inprocess_api)
    )
    assert "Preference-Applied" not in plain.headers


def test_metric_history_endpoint(inprocess_api: InProcessApi) -> None:
    store = JobStore(inprocess_api.redis)
    job = store.create("alice", JobType.TRAIN, "textgen", {})
    fence = _claim(store, job.id)
    store.set_progress(job.id, fence, _progress(10, loss=2.0, val_loss=2.4))
    store.set_progress(job.id, fence, _progress(20, loss=1.0))
    body = inprocess_api.http.get(
        inprocess_api.url(f"/v1/jobs/{job.id}/metrics"), headers=_bearer(inprocess_api)
    ).json()
    assert [p["step"] for p in body["series"]["train"]] == [10, 20]
    assert body["series"]["validation"][0]["metrics"] == {"val_loss": 2.4}
    other = inprocess_api.http.get(
        inprocess_api.url(f"/v1/jobs/{job.id}/metrics"), headers=_bearer(inprocess_api, "mallory")
    )
    assert other.status_code == 404


def test_the_clients_sse_parser_and_the_clis_lines() -> None:
    lines = [
        "retry: 2000",
        ": connected",
        "",
        "id: 5-0",
        "event: progress",
        'data: {"job": "job_1", "step": 3, "total": 10, "metrics": {"loss": 0.25}}',
        "",
        ": heartbeat",
        "",
        "id: 6-0",
        "event: log",
        'data: {"job": "job_1", "line": "step 3/10"}',
        "",
        "id: 7-0",
        "event: end",
        'data: {"job": "job_1", "status": "failed", "error": {"type": "X", "message": "boom"}}',
        "",
    ]
    events = list(parse_sse(lines))
    assert [(e["id"], e["event"]) for e in events] == [
        ("5-0", "progress"),
        ("6-0", "log"),
        ("7-0", "end"),
    ]
    described = [describe(e).split(" ", 1)[1] for e in events]
    assert described == [
        "job_1 progress step 3/10 loss=0.25",
        "job_1 log      step 3/10",
        "job_1 end      failed: boom",
    ]
