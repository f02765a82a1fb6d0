"""Response bodies of the model routes (``api.schemas`` re-exports them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ModelAncestorOut(BaseModel):
    model_id: str
    job_id: str = Field(description="The training job that made it.")
    steps: int = Field(description="Its final step, where its child's step numbers go on from.")
    name: str | None


class ModelOut(BaseModel):
    id: str
    name: str | None = Field(description="The `model_name` it was trained under, if any.")
    version: int | None = Field(
        description="Its version under that name (1, 2, ...): `name:N` names it, and "
        "`name:latest` the newest version."
    )
    kind: str
    config: dict[str, Any]
    params: dict[str, Any] = Field(
        description="The params its training job ran with (empty for models trained before "
        "they were kept): what a job continuing it (`init_model`) inherits."
    )
    dataset: str
    steps: int = Field(
        description="Its final step: a model trained from another counts on from its parent's."
    )
    metrics: dict[str, float]
    sample_grid_url: str | None
    source_job_id: str
    parent: ModelAncestorOut | None = Field(
        description="The model its training continued (`init_model`), if any."
    )
    lineage: list[ModelAncestorOut] = Field(
        description="Every model it descends from: its parent first, then the parent's parent, "
        "... (as recorded when it was trained: deleted ancestors stay listed)."
    )
    created_at: datetime


class ModelList(BaseModel):
    data: list[ModelOut]
    next_cursor: str | None
