"""The parameter classes every kind's schemas extend (``shared.kinds`` re-exports them;
a kind whose params live in their own module imports them from here)."""

from __future__ import annotations

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
