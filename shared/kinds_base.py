"""The parameter classes every kind's schemas extend (``shared.kinds`` re-exports them;
a kind whose params live in their own module imports them from here)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class StrictParams(BaseModel):
    """Unknown parameters are errors, not silently ignored typos."""

    model_config = ConfigDict(extra="forbid")


class TrainParams(StrictParams):
    """What every kind's training takes; the shared training loop reads these."""

    dataset: str = Field(description="Dataset name; see GET /v1/datasets.")
    steps: int = Field(1000, ge=1, le=1_000_000, description="Optimizer steps.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    sample_every: int = Field(
        250, ge=1, le=1_000_000, description="Steps between samples written as outputs."
    )
    checkpoint_every: int = Field(250, ge=1, le=1_000_000, description="Steps between checkpoints.")


MODEL_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""What a model id can look like (``model_`` and hex today): an empty or odd one is refused by
the schema, before anything looks for it."""


def model_id_field(kind: str) -> Any:
    """The ``model_id`` of a kind's generate params."""
    return Field(
        description=f"A model produced by a {kind} training job.",
        min_length=1,
        max_length=64,
        pattern=MODEL_ID_PATTERN,
    )
