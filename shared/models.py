"""Trained models: what a training job leaves behind for generation jobs to name."""

from __future__ import annotations

from typing import Any, cast

import redis
from pydantic import BaseModel, Field
from redis.client import Pipeline

from .job_records import Metrics
from .jobs import OutputRef, new_id
from .redis_keys import KEYS, RedisKeys


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

    def delete(self, model: ModelRecord) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.model(model.id))
        pipe.zrem(self._keys.owner_models(model.owner), model.id)
        pipe.execute()

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
