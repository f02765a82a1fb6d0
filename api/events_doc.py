"""The OpenAPI description of the event streams. Their views are not SpecTree's: its
response validation reads a response's whole body, which a stream never ends."""

from __future__ import annotations

from typing import Any

from ..shared.events import EventType

_EVENT_STREAM = {
    # OpenAPI 3.1 has no stream schema: for text/event-stream, `schema` describes one event.
    "text/event-stream": {
        "schema": {
            "type": "object",
            "description": "One server-sent event. Resume with its `id` as Last-Event-ID. "
            "`data` is JSON naming its `job`: status/end {status, type, kind, attempt?, "
            "error?, model_id?}; progress {step, total, fraction, eta_seconds, metrics, "
            "updated_at, phase, label, items_done, items_total, unit}; "
            "output {name, content_type, size_bytes, text?, url}; log {line}. "
            "Comment lines are heartbeats.",
            "properties": {
                "id": {"type": "string", "pattern": r"^\d+-\d+$"},
                "event": {"enum": [t.value for t in EventType]},
                "data": {"type": "string", "contentMediaType": "application/json"},
                "retry": {"type": "integer"},
            },
            "required": ["event", "data"],
        }
    }
}


EVENT_ID_OR_EMPTY = r"^(\d{1,20}-\d{1,20})?$"
"""An event id, or nothing: an EventSource whose last id was reset sends none, and a proxy
may pass an empty header on; both start as if no id had been sent."""


def _parameters(with_job: bool) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "description": "Resume after this event id (empty: as if not sent).",
            "schema": {"type": "string", "pattern": EVENT_ID_OR_EMPTY},
        },
        {
            "name": "last_event_id",
            "in": "query",
            "required": False,
            "description": "As Last-Event-ID, for clients that cannot set headers.",
            "schema": {"type": "string", "pattern": EVENT_ID_OR_EMPTY},
        },
    ]
    if with_job:
        found.insert(
            0, {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    return found


def _stream(summary: str, with_job: bool) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "tags": ["events"],
            "parameters": _parameters(with_job),
            "responses": {
                "200": {"description": "An event stream.", "content": _EVENT_STREAM},
                "400": {"description": "Last-Event-ID is not an event id."},
                "503": {"description": "This API process holds its most long requests."},
            },
        }
    }


def event_routes() -> dict[str, Any]:
    return {
        "/v1/jobs/{job_id}/events": _stream(
            "One job's events, replayed from its first (or after Last-Event-ID); closes after "
            "`end`.",
            with_job=True,
        ),
        "/v1/events": _stream(
            "Every event of the caller's jobs from now on (or after Last-Event-ID).",
            with_job=False,
        ),
    }
