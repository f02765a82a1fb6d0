"""Which unfinished jobs need a model, so that a model cannot be deleted from under them.

A generation job needs its ``model_id``; a training job that continues a model needs its
``init_model``. Each model has a set of the ids of its unfinished users
(``model:{id}:users``): a job joins it in the MULTI that creates it (``JobStore.create``)
and leaves it in the MULTI that makes it terminal, whatever the path (``record_end``), or
that deletes it (``forget_end``). So the set changes only with the job's own status.

A delete WATCHes the set, reads it, and deletes the model's record in a MULTI only while
the set is empty: a job joining between the read and the delete aborts the MULTI, and the
delete looks again (409 now). A job created after the delete finds the model gone: its
create's MULTI ends by looking for the model (``execute_create``), and a model gone by
then takes the job back, a 422 as if the model had never been there. Both orders end with
no job that needs a deleted model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import redis
from redis.client import Pipeline

from .errors import Conflict, UnknownModel
from .job_records import Job, JobType, decode
from .redis_keys import KEYS, RedisKeys

if TYPE_CHECKING:  # models imports jobs, which builds on this module (job_indexes)
    from .models import ModelRecord, ModelStore

NAMED_USERS = 10
"""Jobs a refused delete names (its ``job_count`` says how many there are)."""


def needed_model(job: Job) -> str | None:
    """The id of the model ``job`` needs while it is unfinished; None if it needs none."""
    field = "model_id" if job.type is JobType.GENERATE else "init_model"
    value = job.params.get(field)
    return value if isinstance(value, str) and value else None


class ModelUsers:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    def execute_create(self, pipe: Pipeline, job: Job, undo: Callable[[Job], None]) -> None:
        """Run ``pipe``, the MULTI that creates ``job``, with the job joining its model's
        users and, last, a look at the model (no round trip of its own). A model deleted
        since the submit found it: ``undo(job)`` (the job's delete) and a 422."""
        model_id = needed_model(job)
        if model_id is None:
            pipe.execute()
            return
        pipe.sadd(self._keys.model_users(model_id), job.id)
        pipe.exists(self._keys.model(model_id))
        if pipe.execute()[-1]:
            return
        undo(job)
        field = "model_id" if job.type is JobType.GENERATE else "init_model"
        raise UnknownModel(
            f"Model {model_id} in params.{field} was deleted as this job was submitted; "
            "nothing was queued.",
            errors=[{"field": f"params.{field}", "message": "no such model"}],
        )

    def leave(self, pipe: Pipeline, job: Job) -> None:
        """Queue in ``pipe`` (the job's end or deletion): it no longer needs its model."""
        model_id = needed_model(job)
        if model_id is not None:
            pipe.srem(self._keys.model_users(model_id), job.id)

    def of(self, model_id: str) -> list[str]:
        members = cast(set[bytes], self._redis.smembers(self._keys.model_users(model_id)))
        return sorted(m.decode() for m in members)

    def delete_unused(self, models: ModelStore, model: ModelRecord) -> None:
        """Delete the model's record, or Conflict (409) naming the unfinished jobs that
        need it; atomic with their creation and their end (the module's docstring)."""
        users = self._keys.model_users(model.id)
        version = models.version_of(model)
        with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(users)  # type: ignore[no-untyped-call]
                    members = cast(set[bytes], pipe.smembers(users))
                    if members:
                        pipe.unwatch()
                        self._refuse(model, sorted(m.decode() for m in members))
                        continue  # only stale members, dropped: look again
                    pipe.multi()
                    models.delete_in(pipe, model, version)
                    pipe.delete(users)
                    pipe.execute()
                    return
                except redis.WatchError:
                    continue

    def _refuse(self, model: ModelRecord, ids: list[str]) -> None:
        """Conflict naming the unfinished jobs among ``ids``; a member whose job is over
        or gone (it never should be: its end left the set) is dropped instead."""
        pipe = self._redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self._keys.job(job_id))
        jobs = [decode(raw) if raw else None for raw in pipe.execute()]
        busy = [j for j in jobs if j is not None and not j.status.is_terminal()]
        stale = [i for i, j in zip(ids, jobs, strict=True) if j is None or j.status.is_terminal()]
        if stale:
            self._redis.srem(self._keys.model_users(model.id), *stale)
        if not busy:
            return
        named = busy[:NAMED_USERS]
        shown = ", ".join(f"{j.id} ({j.type.value}, {j.status.value})" for j in named)
        more = f" and {len(busy) - len(named)} more" if len(busy) > len(named) else ""
        raise Conflict(
            f"Model {model.id} is needed by {len(busy)} unfinished job(s): {shown}{more}; "
            "cancel them or wait for them to finish, then delete it.",
            jobs=[j.id for j in named],
            job_count=len(busy),
        )
