"""Runs side by side (``GET /v1/jobs/compare`` and the dashboard's compare page): which jobs
a comparison may name, their records and curves read in one pipelined round trip, the
parameters that differ between them and each run's latest samples.

A job's curves are its metric history (``shared.metric_history``): at most ``HISTORY_CAP``
points per series, so eight runs' answer stays a few hundred KB at most.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from .events import SERIES
from .job_indexes import JobIndexes
from .job_records import Job, OutputRef, decode
from .redis_keys import KEYS, RedisKeys

MIN_RUNS = 2
MAX_RUNS = 8
LATEST_SAMPLES = 4
"""Samples shown per run: the newest ones its record lists."""
JOB_ID = r"job_[0-9a-f]{22}"
"""A job id as ``job_records.new_id`` makes it: 14 hex digits of time, 8 of randomness."""
IDS_PATTERN = rf"^{JOB_ID}(,{JOB_ID}){{{MIN_RUNS - 1},{MAX_RUNS - 1}}}$"
"""``ids`` as the OpenAPI document states it (repeats are refused by ``parse_ids``)."""
SAMPLE_PREFIX = "samples/"
History = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Run:
    job: Job
    history: History
    """``train`` and ``validation`` series of ``{"step", "time", "metrics"}`` points."""


def parse_ids(text: str) -> list[str]:
    """The job ids of ``ids=a,b,...``, in the order given; a ``ValueError`` naming what is
    wrong: too few or too many, one not a job id, one given twice."""
    ids = [part.strip() for part in text.split(",")] if text.strip() else []
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        raise ValueError(f"give {MIN_RUNS} to {MAX_RUNS} job ids, comma-separated; got {len(ids)}")
    for job_id in ids:
        if not re.fullmatch(JOB_ID, job_id):
            raise ValueError(f"{job_id[:40]!r} is not a job id (job_ and 22 hex digits)")
    repeated = sorted({job_id for job_id in ids if ids.count(job_id) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} given more than once")
    return ids


def read_runs(
    client: redis.Redis, store: JobIndexes, job_ids: Sequence[str], keys: RedisKeys = KEYS
) -> list[Run | None]:
    """Each job with its curves (None where no job has the id), from one round trip."""
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hgetall(keys.job(job_id))
        store.history.queue_read(pipe, job_id)
    replies = pipe.execute()
    width = 1 + len(SERIES)  # the record, then its series
    runs: list[Run | None] = []
    for at in range(0, len(replies), width):
        record, *series = replies[at : at + width]
        runs.append(Run(decode(record), store.history.parse(series)) if record else None)
    return runs


def owned_runs(
    client: redis.Redis, store: JobIndexes, job_ids: Sequence[str], owner: str
) -> list[Run]:
    """The runs, all of them ``owner``'s; else a ``LookupError`` naming the first id that
    is not (another owner's job is indistinguishable from none)."""
    runs = read_runs(client, store, job_ids)
    for job_id, run in zip(job_ids, runs, strict=True):
        if run is None or run.job.owner != owner:
            raise LookupError(job_id)
    return [run for run in runs if run is not None]


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (``{"opt": {"lr": 1}}`` → ``{"opt.lr": 1}``); lists
    and other values as they are; an empty object stays a value."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


_ABSENT = object()


def differing_params(params: Sequence[Mapping[str, Any]]) -> list[str]:
    """The dotted keys whose values are not the same in every run (a key some runs lack
    differs), sorted."""
    flat = [flatten(p) for p in params]
    keys = sorted({key for f in flat for key in f})
    first = flat[0]
    return [
        k for k in keys if any(not _same(f.get(k, _ABSENT), first.get(k, _ABSENT)) for f in flat)
    ]


def _same(a: Any, b: Any) -> bool:
    # ``True == 1`` in Python, but a JSON true is no 1: a parameter that changed type differs.
    return type(a) is type(b) and a == b


def latest_samples(job: Job, count: int = LATEST_SAMPLES) -> list[OutputRef]:
    """The newest ``count`` samples the job's record lists, oldest first (their names,
    ``samples/step-NNNNNNN.ext``, sort in step order)."""
    samples = sorted(
        (o for o in job.outputs if o.name.startswith(SAMPLE_PREFIX)), key=lambda o: o.name
    )
    return samples[-count:] if count else []
