"""Exports of trained models (``GET /v1/models/{id}/export``): the formats, and the state
of each model's export in each format. TensorFlow-free; a worker makes the bundle
(``workers.export``).

An export is made once, on first request, and kept with the model (deleted with it):

- the first request records the export as ``pending`` (WATCH/MULTI: of concurrent first
  requests exactly one writes it, and only that one sends the worker a message) and answers
  202; later requests answer 202 too until the worker records it ``ready`` with the
  object's key, then they get the file;
- a ``pending`` export older than ``PENDING_SECONDS`` (its message lost with a worker that
  died) is taken over by the next request, which sends the message again; a worker that
  finds the export ``ready`` already does nothing;
- a ``failed`` export is answered once as the failure and forgotten, so asking again
  retries.

Redis: ``{p}:model:{model_id}:exports`` (``shared.redis_keys``), a hash of format → state.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Literal, cast

import redis
from pydantic import BaseModel

from .redis_keys import KEYS, RedisKeys

PENDING_SECONDS = 900.0
"""How long an export may stay pending before a request sends its message again: far
longer than one takes (seconds for the default models) plus a busy generate queue."""


class ExportFormat(StrEnum):
    KERAS = "keras"
    """model.keras: ``keras.saving.load_model`` opens it (Keras 3, built-in layers only)."""
    SAVEDMODEL = "savedmodel"
    """saved_model/: a TensorFlow SavedModel with a ``serving_default`` signature, for TF
    Serving, ``tf.saved_model.load`` and converters (TFLite, TF.js), no Python class code."""


class ExportState(BaseModel):
    status: Literal["pending", "ready", "failed"]
    requested_at: float
    key: str | None = None
    """The bundle's object key, once ready."""
    size_bytes: int | None = None
    seconds: float | None = None
    """How long the worker took to make it."""
    error: str | None = None


class ExportStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    def get(self, model_id: str, export_format: ExportFormat) -> ExportState | None:
        raw = self._redis.hget(self._keys.model_exports(model_id), export_format.value)
        return ExportState.model_validate_json(cast(bytes, raw)) if raw else None

    def request(
        self, model_id: str, export_format: ExportFormat, now: float | None = None
    ) -> tuple[ExportState, bool]:
        """The export's state, recorded as pending if there was none (or a stale pending
        one); the second item says whether this call did so, and so must send its message."""
        now = time.time() if now is None else now
        key = self._keys.model_exports(model_id)
        pending = ExportState(status="pending", requested_at=now)
        with self._redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)  # type: ignore[no-untyped-call]
                raw = pipe.hget(key, export_format.value)
                current = ExportState.model_validate_json(cast(bytes, raw)) if raw else None
                if current is not None and not _stale(current, now):
                    return current, False
                pipe.multi()
                pipe.hset(key, export_format.value, pending.model_dump_json())
                pipe.execute()
                return pending, True
            except redis.WatchError:  # another request took it over first
                return self.get(model_id, export_format) or pending, False

    def finish(self, model_id: str, export_format: ExportFormat, state: ExportState) -> bool:
        """Record a ready or failed export, only while the model exists (a model deleted
        meanwhile keeps no state); False when it does not."""
        model_key = self._keys.model(model_id)
        with self._redis.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(model_key)  # type: ignore[no-untyped-call]
                if not pipe.exists(model_key):
                    return False
                pipe.multi()
                pipe.hset(
                    self._keys.model_exports(model_id), export_format.value, state.model_dump_json()
                )
                pipe.execute()
                return True
            except redis.WatchError:  # the model changed: deleted, most likely
                return bool(self._redis.exists(model_key)) and self.finish(
                    model_id, export_format, state
                )

    def forget(self, model_id: str, export_format: ExportFormat) -> None:
        """Drop a failed export's state, so the next request tries again."""
        self._redis.hdel(self._keys.model_exports(model_id), export_format.value)


def _stale(state: ExportState, now: float) -> bool:
    return state.status == "pending" and now - state.requested_at > PENDING_SECONDS
