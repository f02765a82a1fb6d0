"""A training job's loss and validation curves, kept small however long it runs.

Each progress write (``JobIndexes.set_progress``) is one Lua step: the fenced progress field,
a ``progress`` event (``shared.events``) and a point in the job's metric history. Metrics
named ``val_*`` go to the ``validation`` series, the others to ``train``; each series is a
Redis list of JSON points ``{"step", "time", "metrics"}``.

Down-sampling: a series takes a point only ``stride`` steps after its last one. When it
grows past ``cap`` points, every other point is dropped and the stride becomes the kept
points' spacing, so a series always spans the whole run with cap/2 to cap evenly spaced
points: a million-step
job keeps at most ``cap`` points per series (a few tens of KB). A resumed attempt that
restarts from an earlier checkpoint rewinds the series to that step first.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis
from redis.client import Pipeline

from .events import EMIT_LUA, SERIES
from .job_records import Progress
from .redis_keys import RedisKeys

HISTORY_CAP = 512
"""Points kept per series at most."""

# KEYS[1] job hash, KEYS[2] meta hash, KEYS[3] train list, KEYS[4] validation list.
# ARGV fence token, progress JSON, prefix, job id, step, time, train metrics JSON (or ""),
# validation metrics JSON (or ""), cap.
_PROGRESS = (
    EMIT_LUA
    + """
local function add_point(meta, list, series, step, point, cap)
  local stride = tonumber(redis.call('HGET', meta, series .. ':stride') or '1')
  local last = tonumber(redis.call('HGET', meta, series .. ':last') or '-1')
  if last >= 0 and step <= last then
    -- an attempt resumed from an earlier checkpoint: forget the steps it will redo
    while true do
      local tail = redis.call('LINDEX', list, -1)
      if not tail or cjson.decode(tail)['step'] < step then break end
      redis.call('RPOP', list)
    end
    local tail = redis.call('LINDEX', list, -1)
    last = tail and cjson.decode(tail)['step'] or -1
  end
  if last >= 0 and step - last < stride then return end
  redis.call('RPUSH', list, point)
  redis.call('HSET', meta, series .. ':last', step)
  if redis.call('LLEN', list) > cap then
    local all = redis.call('LRANGE', list, 0, -1)
    redis.call('DEL', list)
    local kept = 0
    for i = 1, #all, 2 do redis.call('RPUSH', list, all[i]); kept = kept + 1 end
    -- the new stride is the kept points' mean spacing (not just twice the old one: writes
    -- come every few hundred steps, whatever the stride), so later points keep that spacing
    local first = cjson.decode(redis.call('LINDEX', list, 0))['step']
    local newest = cjson.decode(redis.call('LINDEX', list, -1))['step']
    local spacing = math.floor((newest - first) / math.max(kept - 1, 1))
    redis.call('HSET', meta, series .. ':stride', math.max(stride * 2, spacing))
    redis.call('HSET', meta, series .. ':last', newest)
  end
end

if redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[2])
emit(KEYS[1], ARGV[3], ARGV[4], 'progress', ARGV[2])
local step = tonumber(ARGV[5])
local cap = tonumber(ARGV[9])
if ARGV[7] ~= '' then
  add_point(KEYS[2], KEYS[3], 'train', step,
            '{"step":' .. ARGV[5] .. ',"time":' .. ARGV[6] .. ',"metrics":' .. ARGV[7] .. '}', cap)
end
if ARGV[8] ~= '' then
  add_point(KEYS[2], KEYS[4], 'validation', step,
            '{"step":' .. ARGV[5] .. ',"time":' .. ARGV[6] .. ',"metrics":' .. ARGV[8] .. '}', cap)
end
return 1
"""
)


def split_metrics(metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """(train, validation): validation metrics are the ones named ``val_*``."""
    validation = {k: v for k, v in metrics.items() if k.startswith("val_")}
    train = {k: v for k, v in metrics.items() if k not in validation}
    return train, validation


class MetricHistory:
    def __init__(self, client: redis.Redis, keys: RedisKeys, cap: int = HISTORY_CAP) -> None:
        self._redis = client
        self._keys = keys
        self._cap = cap
        self._progress = client.register_script(_PROGRESS)

    def write_progress(
        self, job_id: str, fence: str, progress: Progress, *, validation_fresh: bool = True
    ) -> bool:
        """Fenced: the progress field, its event and the history points in one step; False
        (nothing written) once ``fence`` is not the job's. ``validation_fresh=False`` keeps
        a repeated, already-recorded validation figure out of the validation series."""
        train, validation = split_metrics(progress.metrics)
        if not validation_fresh:
            validation = {}
        keys = [
            self._keys.job(job_id),
            self._keys.job_metrics_meta(job_id),
            self._keys.job_metrics(job_id, "train"),
            self._keys.job_metrics(job_id, "validation"),
        ]
        args: list[str | int | float] = [
            fence,
            progress.model_dump_json(),
            self._keys.prefix,
            job_id,
            progress.step,
            round(progress.updated_at, 3),
            json.dumps(train) if train else "",
            json.dumps(validation) if validation else "",
            self._cap,
        ]
        return bool(self._progress(keys=keys, args=args))

    def read(self, job_id: str) -> dict[str, list[dict[str, Any]]]:
        pipe = self._redis.pipeline(transaction=False)
        self.queue_read(pipe, job_id)
        return self.parse(cast(list[list[bytes]], pipe.execute()))

    def queue_read(self, pipe: Pipeline, job_id: str) -> None:
        """Queue in ``pipe`` the reads of the job's series (``len(SERIES)`` replies, which
        ``parse`` reads): several jobs' curves in one round trip (``shared.job_compare``)."""
        for series in SERIES:
            pipe.lrange(self._keys.job_metrics(job_id, series), 0, -1)

    @staticmethod
    def parse(replies: list[list[bytes]]) -> dict[str, list[dict[str, Any]]]:
        return {
            series: [json.loads(point) for point in points]
            for series, points in zip(SERIES, replies, strict=True)
        }
