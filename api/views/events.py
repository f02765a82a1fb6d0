"""Live events (server-sent events) and a training job's metric history."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from flask import Response as FlaskResponse
from flask import request, stream_with_context
from spectree import Response

from ...shared.errors import MalformedRequest
from ...shared.events import Event, EventType, output_of, status_data, valid_event_id
from ...shared.jobs import Job
from ..auth import credentials_check, current_owner
from ..event_schemas import JobMetricsOut, MetricPoint
from ..metrics import EVENTS_SENT
from ..present import present_output
from ..services import services
from ..spec import spec
from . import v1
from .jobs import owned_job

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and similar proxies buffer responses unless told not to: events would arrive late.
    "X-Accel-Buffering": "no",
}
RETRY_MS = 2000
"""How long a disconnected browser's EventSource waits before reconnecting."""


# The streams are not SpecTree views (its response validation reads the whole body, which
# a stream never ends): api.events_doc describes them in the document.
@v1.get("/jobs/<job_id>/events")
def job_events(job_id: str) -> FlaskResponse:
    """Server-sent events of one job: ``status``, ``progress``, ``output``, ``log``, then
    ``end`` when it is terminal (the stream closes). Without ``Last-Event-ID`` the job's
    events are replayed from its first; with it, from the event after."""
    job = owned_job(job_id)
    after = _last_event_id()
    return _stream(job.owner, job, after or "0")


@v1.get("/events")
def owner_events() -> FlaskResponse:
    """Server-sent events of all the caller's jobs, from now on (or after
    ``Last-Event-ID``); the stream stays open."""
    owner = current_owner()
    after = _last_event_id() or services().jobs.events.last_id_for_owner(owner)
    return _stream(owner, None, after)


@v1.get("/jobs/<job_id>/metrics")
@spec.validate(resp=Response(HTTP_200=JobMetricsOut), tags=["jobs"])
def job_metrics(job_id: str) -> JobMetricsOut:
    """A training job's loss and validation curves (down-sampled to at most 512 points
    each, evenly spread over the whole run)."""
    owned_job(job_id)
    history = services().jobs.history.read(job_id)
    series = {name: [MetricPoint(**p) for p in points] for name, points in history.items()}
    return JobMetricsOut(job_id=job_id, series=series)


def _last_event_id() -> str | None:
    value = request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
    if value is None or value == "":
        return None
    if not valid_event_id(value):
        raise MalformedRequest(
            f"Last-Event-ID {value[:50]!r} is not an event id (ids look like 1732867200000-0)."
        )
    return value


def _stream(owner: str, job: Job | None, after: str) -> FlaskResponse:
    if request.method == "HEAD":
        # A HEAD gets the headers and no body: it never runs the stream, so it must not
        # take a slot (one taken would be given back only by the stream's end).
        return FlaskResponse(b"", mimetype="text/event-stream", headers=SSE_HEADERS)
    svc = services()
    svc.long_requests.acquire(owner)  # 429/503 when the owner's or the process's are held
    slot = _Slot(owner)
    try:
        body = stream_with_context(_events(owner, job, after, slot, credentials_check()))
    except BaseException:
        slot.release()
        raise
    response = FlaskResponse(body, mimetype="text/event-stream", headers=SSE_HEADERS)
    # A client gone before the first chunk leaves the generator unstarted, so its own
    # ``finally`` never runs; the server's close of the body gives the slot back then.
    response.call_on_close(slot.release)
    return response


class _Slot:
    """A long-request slot given back once, by whichever of the stream's end and the
    body's close comes first."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._pool = services().long_requests  # the close may come after the app context
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._pool.release(self.owner)


def _events(
    owner: str, job: Job | None, after: str, slot: _Slot, still_valid: Callable[[], bool]
) -> Iterator[str]:
    svc = services()
    settings = svc.settings
    store = svc.jobs.events
    lifetime = _Lifetime(settings.event_stream_max_seconds, settings.event_heartbeat_seconds)
    # A job already over replays what is left and closes; one still going closes on its
    # ``end`` event, which the transition to a terminal status writes in the same step.
    over = job is not None and job.status.is_terminal()
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        with svc.hub.watch(owner, job.id if job else None) as waiter:
            while True:
                # Read after every wake-up; a wake-up that comes while reading is kept by
                # the waiter, so no event slips between the read and the wait.
                events = store.for_job(job.id, after) if job else store.for_owner(owner, after)
                if job is not None and after == "0" and not events:
                    # A job not yet claimed has no stream of its own, and a finished job's
                    # expires a day after its end: its record says where it stands.
                    yield from _snapshot(job, over)
                    if over:
                        return
                    after = "0-0"
                for event in events:
                    yield _format(event)
                    EVENTS_SENT.labels(event.type.value).inc()
                    after = event.id
                    over = over or (job is not None and event.type is EventType.END)
                if over and len(events) < store.PAGE:
                    return
                if events and len(events) == store.PAGE:
                    continue  # more to catch up on before waiting
                if svc.hub.closing or lifetime.over(still_valid):
                    return
                if not waiter.wait(settings.event_heartbeat_seconds):
                    yield ": heartbeat\n\n"
    finally:
        slot.release()


class _Lifetime:
    """When a stream ends by itself: at its time limit, or once the key (or session) it
    was opened with is no longer valid, checked at most once a heartbeat."""

    def __init__(self, max_seconds: float, check_every: float) -> None:
        self.deadline = time.monotonic() + max_seconds
        self.check_every = check_every
        self.checked = time.monotonic()

    def over(self, still_valid: Callable[[], bool]) -> bool:
        now = time.monotonic()
        if now >= self.deadline:
            return True
        if now - self.checked < self.check_every:
            return False
        self.checked = now
        return not still_valid()


def _created(event: Event) -> dict[str, Any]:
    """A creation event is stored without data (``shared.events.CREATION_DATA``): it says
    ``queued``, and the job's type and kind come from its record (one read per creation
    for this client)."""
    job = services().jobs.get(event.job)
    found = {"type": job.type.value, "kind": job.kind} if job is not None else {}
    return {"status": "queued", **found}


def _snapshot(job: Job, over: bool) -> Iterator[str]:
    """The job's status as read from its record, as events with id 0-0 (before any of the
    job's own; a client resuming from it gets every event the job has)."""
    kinds = (EventType.STATUS, EventType.END) if over else (EventType.STATUS,)
    for kind in kinds:
        yield _format(Event("0-0", kind, job.id, job.owner, status_data(job)))


def _format(event: Event) -> str:
    data: dict[str, Any] = {"job": event.job}
    if event.type is EventType.OUTPUT:
        data.update(present_output(output_of(event)).model_dump(mode="json"))
    elif event.type is EventType.STATUS and "status" not in event.data:
        data.update(_created(event))
    else:
        data.update(event.data)
    return f"id: {event.id}\nevent: {event.type.value}\ndata: {json.dumps(data)}\n\n"
