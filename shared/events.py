"""Job events: what happened to a job, in order, for streams (SSE), waits and webhooks.

Every event is appended to Redis streams in the same atomic step as the change it reports
(the transition's MULTI, the claim's script, or the fenced Lua script of a progress or log
write):

- ``{p}:job:{id}:events``      the job's own events from its first claim or cancel on
  (capped; expires a day after the job ends), read by ``GET /v1/jobs/{id}/events``;
- ``{p}:owner:{owner}:events`` all of one owner's events (capped), ``GET /v1/events``;
- ``{p}:events``               every event (capped), read by consumers that act on events
  (webhook delivery) through a consumer group, so none is missed across restarts;

and a ``PUBLISH`` on ``{p}:events:wake`` (payload ``owner job_id``) tells listening API
processes to read the streams now, so no client polls a record (``EventHub``). A write to a
job's hash that makes no event (a rename, a cancel flag, a checkpoint, a deletion) sends the
wake-up alone: it also tells the API processes to drop the job's kept body.

An event is ``type`` (``EventType``), ``job`` (id) and ``data`` (JSON), plus ``owner`` in
the global stream. The creation event (``status`` queued) is in the owner's stream only.

=========  ====================================================================
status     ``{status, type, kind, attempt, error?, model_id?}`` on every status change
progress   ``{step, total, fraction, eta_seconds, metrics, updated_at, phase, label,
           items_done, items_total, unit}`` (``shared.job_records.Progress``), at most
           every ``progress_interval_seconds`` per running job: ``phase`` ``preparing``
           (with its label and count) until step 1, then ``training``
output     an ``OutputRef`` (name, key, content_type, size_bytes, text?)
log        ``{line}``
end        the same body as ``status``, once, when the job is terminal
=========  ====================================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any, NamedTuple, cast

import redis
from redis.client import Pipeline

from .job_records import Job, OutputRef
from .redis_keys import KEYS, RedisKeys

JOB_STREAM_CAP = 2000
"""Events kept per job (approximate trim); a reconnect older than this restarts the job's
stream from the oldest kept event (``status`` of the record is always current)."""
FINISHED_STREAM_SECONDS = 86_400
"""A finished job's own stream is kept this long after its ``end`` (its record, log, curves
and outputs stay); a replay after that gets the final status from the record."""
OWNER_STREAM_CAP = 10_000
ALL_STREAM_CAP = 100_000


SERIES = ("train", "validation")
"""Metric history series (``shared.metric_history``): validation metrics are named ``val_*``."""


class EventType(StrEnum):
    STATUS = "status"
    PROGRESS = "progress"
    OUTPUT = "output"
    LOG = "log"
    END = "end"


class Event(NamedTuple):
    id: str
    type: EventType
    job: str
    owner: str
    data: dict[str, Any]


# A Lua function the fenced scripts (progress, logs) share: the same appends and wake-up as
# ``JobEvents.queue``. It reads the owner from the job's record and builds the stream names
# from the prefix: one Redis, no cluster slots to declare.
EMIT_LUA = f"""
local function emit(job_hash, prefix, job_id, kind, data)
  local owner = cjson.decode(redis.call('HGET', job_hash, 'record'))['owner']
  redis.call('XADD', prefix .. ':job:' .. job_id .. ':events', 'MAXLEN', '~', {JOB_STREAM_CAP},
             '*', 'type', kind, 'job', job_id, 'data', data)
  redis.call('XADD', prefix .. ':owner:' .. owner .. ':events', 'MAXLEN', '~',
             {OWNER_STREAM_CAP}, '*', 'type', kind, 'job', job_id, 'data', data)
  redis.call('XADD', prefix .. ':events', 'MAXLEN', '~', {ALL_STREAM_CAP}, '*',
             'type', kind, 'job', job_id, 'data', data, 'owner', owner)
  redis.call('PUBLISH', prefix .. ':events:wake', owner .. ' ' .. job_id)
end
"""


CREATION_DATA: dict[str, Any] = {}
"""A creation event's stored data: empty. One is kept for every queued job, and each byte
counts against a queued job's 2 KB (bench `scale`); readers know a ``status`` event without
a status as the creation (``queued``) and take ``type`` and ``kind`` from the record."""


def status_data(job: Job) -> dict[str, Any]:
    data: dict[str, Any] = {"status": job.status.value, "type": job.type.value, "kind": job.kind}
    if job.attempt:  # left out before the first claim: every queued job's event is kept
        data["attempt"] = job.attempt
    if job.error is not None:
        data["error"] = job.error.model_dump(mode="json")
    if job.model_id:
        data["model_id"] = job.model_id
    return data


EventHook = Callable[[Pipeline, Job, EventType, dict[str, Any]], None]
EVENT_HOOKS: list[EventHook] = []
"""Called for each event a transition queues, inside its MULTI (e.g. to write an outbox
entry atomically with the change). Events written by Lua scripts (a claim's ``status``,
progress, logs) do not pass here; consumers that need every event read ``{p}:events``."""


class JobEvents:
    PAGE = 500
    """Events one read returns at most."""

    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    # --- writes -----------------------------------------------------------------------------
    def queue(
        self,
        pipe: Pipeline,
        job: Job,
        kind: EventType,
        data: dict[str, Any],
        *,
        creation: bool = False,
    ) -> None:
        """Queue one event's appends and wake-up in ``pipe`` (a transition's MULTI).

        The ``creation`` event (queued) goes to the owner's stream only: a queued job has no
        stream of its own yet (an empty Redis stream costs ~4.7 KB, twice a queued job's
        record and indexes), and nothing acts on creations through the global stream."""
        fields: dict[Any, Any] = {"type": kind.value, "job": job.id, "data": _dumps(data)}
        if not creation:
            job_stream = self._keys.job_events(job.id)
            pipe.xadd(job_stream, fields, maxlen=JOB_STREAM_CAP, approximate=True)
            if kind is EventType.END:
                pipe.expire(job_stream, FINISHED_STREAM_SECONDS)
        pipe.xadd(
            self._keys.owner_events(job.owner), fields, maxlen=OWNER_STREAM_CAP, approximate=True
        )
        if not creation:
            pipe.xadd(
                self._keys.all_events,
                {**fields, "owner": job.owner},
                maxlen=ALL_STREAM_CAP,
                approximate=True,
            )
        self.wake(pipe, job)
        for hook in EVENT_HOOKS:
            hook(pipe, job, kind, data)

    def wake(self, pipe: Pipeline, job: Job) -> None:
        """Queue the job's wake-up in ``pipe``, once per MULTI: the listener wakes the job's
        and its owner's streams, which read every entry the MULTI appended (a finish queues
        two events), and drops the job's kept body (``api.job_cache``). Every write to a
        job's hash sends one, with an event or without (a rename, a cancel flag)."""
        wake = ("PUBLISH", self._keys.events_wake, f"{job.owner} {job.id}")
        if not any(args == wake for args, _ in pipe.command_stack):
            pipe.publish(wake[1], wake[2])

    def queue_changes(self, pipe: Pipeline, before: Job, after: Job) -> None:
        """The events a transition from ``before`` to ``after`` makes: new outputs, then
        the status change, then ``end`` if it became terminal; the wake-up with or
        without them (a rename, a cancel flag)."""
        known = {output.key for output in before.outputs}
        for output in after.outputs:
            if output.key not in known:
                self.queue(pipe, after, EventType.OUTPUT, output.model_dump(mode="json"))
        if after.status is not before.status or after.attempt != before.attempt:
            self.queue(pipe, after, EventType.STATUS, status_data(after))
            if after.status.is_terminal():
                self.queue(pipe, after, EventType.END, status_data(after))
        self.wake(pipe, after)

    def forget(self, pipe: Pipeline, job: Job) -> None:
        """Queue the removal of a deleted job's stream and metric history (its entries in
        the owner's and the global stream age out with the caps), and its wake-up."""
        job_id = job.id
        self.wake(pipe, job)
        pipe.delete(
            self._keys.job_events(job_id),
            self._keys.job_metrics_meta(job_id),
            *(self._keys.job_metrics(job_id, series) for series in SERIES),
        )

    # --- reads ------------------------------------------------------------------------------
    def for_job(self, job_id: str, after: str = "0", count: int = PAGE) -> list[Event]:
        return self._range(self._keys.job_events(job_id), after, count)

    def for_owner(self, owner: str, after: str = "0", count: int = PAGE) -> list[Event]:
        return self._range(self._keys.owner_events(owner), after, count)

    def last_id_for_job(self, job_id: str) -> str:
        return self._last_id(self._keys.job_events(job_id))

    def last_id_for_owner(self, owner: str) -> str:
        return self._last_id(self._keys.owner_events(owner))

    def _last_id(self, stream: str) -> str:
        newest = cast(list[Any], self._redis.xrevrange(stream, count=1))
        return _text(newest[0][0]) if newest else "0-0"

    def _range(self, stream: str, after: str, count: int) -> list[Event]:
        start = f"({after}" if after not in ("0", "0-0", "-") else "-"
        raw = cast(list[Any], self._redis.xrange(stream, min=start, count=count))
        return [parse_entry(entry_id, fields) for entry_id, fields in raw]


def parse_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Event:
    return Event(
        id=_text(entry_id),
        type=EventType(_text(fields[b"type"])),
        job=_text(fields[b"job"]),
        owner=_text(fields.get(b"owner", b"")),
        data=json.loads(fields[b"data"]),
    )


def output_of(event: Event) -> OutputRef:
    return OutputRef.model_validate(event.data)


def valid_event_id(value: str) -> bool:
    """A Redis stream id (``ms-seq``), as ``Last-Event-ID`` must be."""
    ms, _, seq = value.partition("-")
    return ms.isdigit() and seq.isdigit() and len(value) <= 41


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
