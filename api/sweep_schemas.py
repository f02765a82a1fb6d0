"""Request and response bodies of ``/v1/sweeps`` (``api.views.sweeps``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..shared.job_search import SORT_PATTERN
from ..shared.jobs import JobStatus
from ..shared.sweep_space import RandomSpace, check_keys
from ..shared.sweep_stopping import EarlyStopping
from .event_schemas import ProgressOut
from .schemas import NAME, PAGE_LIMIT, JobCreate


class SweepCreate(BaseModel):
    """A base job and exactly one of ``grid`` and ``random``."""

    model_config = ConfigDict(extra="forbid")
    base: JobCreate = Field(
        description="The job every trial starts from: the body of `POST /v1/jobs`."
    )
    grid: dict[str, list[Any]] | None = Field(
        None,
        min_length=1,
        description="Dotted key into `base.params` -> the values to try; the trials are "
        "every combination, the first key varying slowest.",
        examples=[{"learning_rate": [0.0001, 0.0002, 0.0004], "batch_size": [32, 64]}],
    )
    random: RandomSpace | None = Field(
        None,
        description="`count` trials drawn with `seed`, each key from `choice`, `uniform` or "
        "`log_uniform` (`integer` rounds).",
        examples=[
            {"count": 8, "seed": 1, "params": {"learning_rate": {"log_uniform": [1e-5, 1e-3]}}}
        ],
    )
    name: str | None = NAME
    early_stopping: EarlyStopping | None = Field(
        None,
        description="Stop clearly losing trials by the median rule: a running trial whose "
        "best `metric` so far is worse than the median of the other trials' best by the same "
        "step is canceled (after `min_fraction` of its steps, with `min_trials` to compare).",
    )

    @field_validator("grid")
    @classmethod
    def _grid_keys(cls, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if grid is not None:
            check_keys(grid)
            empty = [key for key, values in grid.items() if not values]
            if empty:
                raise ValueError(f"{empty[0]!r} has no values to try")
        return grid

    @model_validator(mode="after")
    def _one_space(self) -> Self:
        if (self.grid is None) == (self.random is None):
            raise ValueError("give exactly one of grid and random")
        if self.random is not None:
            check_keys(self.random.params)
        return self

    def space(self) -> dict[str, Any]:
        if self.grid is not None:
            return {"grid": self.grid}
        assert self.random is not None
        return {"random": self.random.model_dump(mode="json", exclude_defaults=True)}


class SweepQuery(BaseModel):
    metric: str | None = Field(
        None,
        pattern=SORT_PATTERN,
        description="Rank the trials by this final metric: `val_loss` smallest first, "
        "`-val_loss` largest first; trials without it last. Without: in trial order.",
        examples=["val_loss"],
    )


class SweepListQuery(BaseModel):
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")
    limit: int = PAGE_LIMIT


class SweepTrialOut(BaseModel):
    index: int = Field(description="The trial's place in the space's order, from 0.")
    job_id: str
    values: dict[str, Any] = Field(description="The swept values, by dotted key.")
    params: dict[str, Any] | None = Field(
        description="The job's params as it runs with them; null once the job is deleted."
    )
    status: JobStatus | None = Field(description="The job's status; null once deleted.")
    metrics: dict[str, float] = Field(description="The job's final metrics.")
    progress_metrics: dict[str, float] = Field(
        description="The latest progress report's metrics (a running job has no final ones)."
    )
    progress: ProgressOut | None = Field(
        description="The job's progress (its steps, or its data being prepared); null once deleted."
    )
    stopped_early: str | None = Field(
        description="Why the median rule stopped the trial (`early_stopping`); else null."
    )


class SweepOut(BaseModel):
    id: str
    name: str | None
    created_at: datetime
    base: dict[str, Any] = Field(description="The base job as submitted.")
    space: dict[str, Any] = Field(description='`{"grid": ...}` or `{"random": ...}`.')
    trial_count: int
    status_counts: dict[str, int] = Field(
        description="Trials in each status (`deleted`: the job is gone)."
    )
    early_stopping: EarlyStopping | None = Field(description="The median rule, if asked for.")
    metric: str | None = Field(description="What the trials are ranked by.")
    trials: list[SweepTrialOut] = Field(description="Ranked by `metric`, else in trial order.")


class SweepSummary(BaseModel):
    id: str
    name: str | None
    created_at: datetime
    trial_count: int
    status_counts: dict[str, int]


class SweepList(BaseModel):
    data: list[SweepSummary] = Field(description="Newest first.")
    next_cursor: str | None
