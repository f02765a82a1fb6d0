"""Trained models: what a training job leaves behind for generation jobs to name."""

from __future__ import annotations

from typing import Any, cast

import redis
from pydantic import BaseModel, Field
from redis.client import Pipeline

from .job_records import Metrics
from .jobs import OutputRef, new_id
from .redis_keys import KEYS, RedisKeys

LINEAGE_MAX = 64
"""Ancestors a model's record lists (its parent first); older ones are left out."""


class ModelAncestor(BaseModel):
    """A model another was trained from (``init_model``), as the child recorded it: it
    reads the same after the ancestor is deleted."""

    model_id: str
    job_id: str
    """The training job that made it."""
    steps: int
    """Its final step: where the next model's step numbers went on from."""
    name: str | None = None


class ModelRecord(BaseModel):
    id: str
    owner: str
    kind: str
    config: dict[str, Any]
    """Everything the kind needs to rebuild the network before loading weights."""
    weights_key: str
    samples: list[OutputRef] = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=dict)
    source_job_id: str
    dataset: str
    steps: int
    created_at: float
    name: str | None = None
    """The ``model_name`` it was trained under: it is that name's next version."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The params its training job ran with (empty in records from before they were kept):
    what a job continuing it inherits."""
    lineage: list[ModelAncestor] = Field(default_factory=list)
    """The models it was trained from: its parent first, then the parent's parent, ..."""

    def as_ancestor(self) -> ModelAncestor:
        return ModelAncestor(
            model_id=self.id, job_id=self.source_job_id, steps=self.steps, name=self.name
        )

    def child_lineage(self) -> list[ModelAncestor]:
        """The lineage of a model trained from this one."""
        return [self.as_ancestor(), *self.lineage][:LINEAGE_MAX]


class ModelStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    @staticmethod
    def new_id() -> str:
        return new_id("model")

    def save(self, model: ModelRecord) -> ModelRecord:
        pipe = self._redis.pipeline(transaction=True)
        self.save_in(pipe, model)
        pipe.execute()
        return model

    def save_in(self, pipe: Pipeline, model: ModelRecord) -> None:
        """Queue the record's writes in ``pipe``: a training job's model is stored in the
        same MULTI as the job's success, so a fenced-off attempt leaves no model behind."""
        pipe.set(self._keys.model(model.id), model.model_dump_json())
        pipe.zadd(self._keys.owner_models(model.owner), {model.id: 0})
        if model.name is not None:
            # In the same MULTI: versions are numbered in the order models are recorded,
            # with no gap, and only a recorded model takes a number.
            pipe.rpush(self._keys.model_versions(model.owner, model.name), model.id)

    def delete(self, model: ModelRecord) -> None:
        """The record, whatever needs it; the API deletes through ``shared.model_users``,
        which refuses while unfinished jobs need the model."""
        pipe = self._redis.pipeline(transaction=True)
        self.delete_in(pipe, model, self.version_of(model))
        pipe.execute()

    def delete_in(self, pipe: Pipeline, model: ModelRecord, version: int | None) -> None:
        """Queue the record's removal in ``pipe``; ``version``: ``version_of(model)``."""
        pipe.delete(self._keys.model(model.id), self._keys.model_exports(model.id))
        pipe.zrem(self._keys.owner_models(model.owner), model.id)
        if model.name is not None and version is not None:
            # Emptied, not removed: the later versions keep their numbers.
            pipe.lset(self._keys.model_versions(model.owner, model.name), version - 1, "")

    def version_of(self, model: ModelRecord) -> int | None:
        """The model's version under its name (1 for the first); None if it has no name."""
        return self.versions_of([model])[0]

    def versions_of(self, models: list[ModelRecord]) -> list[int | None]:
        pipe = self._redis.pipeline(transaction=False)
        named = [m for m in models if m.name is not None]
        for model in named:
            pipe.lpos(self._keys.model_versions(model.owner, cast(str, model.name)), model.id)
        found = dict(zip([m.id for m in named], pipe.execute() if named else [], strict=True))
        return [None if found.get(m.id) is None else int(found[m.id]) + 1 for m in models]

    def resolve(self, ref: str, owner: str) -> ModelRecord | None:
        """The owner's model that ``ref`` names: an id, ``name:N`` or ``name:latest`` (the
        newest version not deleted). None when there is none, or it is someone else's."""
        name, colon, version = ref.rpartition(":")
        if not colon:
            return self.get_for_owner(ref, owner)
        key = self._keys.model_versions(owner, name)
        if version == "latest":
            model_id = self._newest_version(key)
        else:
            raw = cast(bytes | None, self._redis.lindex(key, int(version) - 1))
            model_id = raw.decode() if raw else None
        return self.get_for_owner(model_id, owner) if model_id else None

    def _newest_version(self, key: str, chunk: int = 64) -> str | None:
        """The last non-empty entry, read from the end a chunk at a time."""
        end = -1
        while True:
            ids = cast(list[bytes], self._redis.lrange(key, end - chunk + 1, end))
            for raw in reversed(ids):
                if raw:
                    return raw.decode()
            if len(ids) < chunk:
                return None
            end -= chunk

    def get(self, model_id: str) -> ModelRecord | None:
        raw = self._redis.get(self._keys.model(model_id))
        return ModelRecord.model_validate_json(raw) if raw else None

    def get_for_owner(self, model_id: str, owner: str) -> ModelRecord | None:
        """None for a model that does not exist *or* belongs to someone else."""
        model = self.get(model_id)
        return model if model is not None and model.owner == owner else None

    def list_for_owner(
        self, owner: str, *, limit: int, cursor: str | None = None
    ) -> tuple[list[ModelRecord], str | None]:
        upper = f"({cursor}" if cursor else "+"
        ids = cast(
            list[bytes],
            self._redis.zrevrangebylex(self._keys.owner_models(owner), upper, "-", 0, limit + 1),
        )
        pipe = self._redis.pipeline(transaction=False)
        for model_id in ids[:limit]:
            pipe.get(self._keys.model(model_id.decode()))
        models = [ModelRecord.model_validate_json(raw) for raw in pipe.execute() if raw]
        next_cursor = models[-1].id if len(ids) > limit and models else None
        return models, next_cursor
