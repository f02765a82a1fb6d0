"""A sweep's search space and the trials it makes (``POST /v1/sweeps``, ``shared.sweeps``).

A space names parameters by dotted keys into a job's ``params`` (``learning_rate``,
``optimizer.beta1``) and is one of:

- **grid**: a list of values per key; the trials are every combination, the first key
  varying slowest (``{"a": [1, 2], "b": [3, 4]}``: a=1 b=3, a=1 b=4, a=2 b=3, a=2 b=4);
- **random**: ``count`` trials drawn with ``seed`` (the same seed, the same trials), each
  key from one distribution: ``choice`` (one of the values), ``uniform`` (``[low, high]``)
  or ``log_uniform`` (``[low, high]``, both above 0, uniform in the logarithm); with
  ``integer``, a drawn number is rounded to an integer.

Drawn floats keep 6 significant digits: a trial's values read as a person would write them.
Plain Python, no Redis: the API counts the trials before it makes any.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import re
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

DOTTED_KEY = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
Overrides = dict[str, Any]
"""One trial's values: dotted key -> value."""


class Distribution(BaseModel):
    """Exactly one of ``choice``, ``uniform`` and ``log_uniform``."""

    model_config = ConfigDict(extra="forbid")
    choice: list[Any] | None = Field(None, min_length=1, description="Values to pick from.")
    uniform: list[float] | None = Field(
        None, min_length=2, max_length=2, description="`[low, high]`, uniform between."
    )
    log_uniform: list[float] | None = Field(
        None, min_length=2, max_length=2, description="`[low, high]`, both > 0, uniform in log."
    )
    integer: bool = Field(False, description="Round a drawn number to an integer.")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [k for k in ("choice", "uniform", "log_uniform") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of choice, uniform, log_uniform")
        bounds = self.uniform or self.log_uniform
        if bounds is not None and not bounds[0] <= bounds[1]:
            raise ValueError("low must not be above high")
        if self.log_uniform is not None and self.log_uniform[0] <= 0:
            raise ValueError("log_uniform bounds must be above 0")
        return self

    def draw(self, rng: random.Random) -> Any:
        if self.choice is not None:
            return copy.deepcopy(rng.choice(self.choice))
        if self.uniform is not None:
            value = rng.uniform(*self.uniform)
        else:
            low, high = self.log_uniform or (1.0, 1.0)
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        return round(value) if self.integer else float(f"{value:.6g}")


class RandomSpace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Distribution] = Field(
        min_length=1, description="Dotted key into the job's `params` -> its distribution."
    )
    count: int = Field(ge=1, description="Trials to draw.")
    seed: int = Field(0, description="The same seed draws the same trials.")


def check_keys(keys: Mapping[str, Any]) -> None:
    """A ``ValueError`` naming a key that is not a dotted name."""
    for key in keys:
        if not re.fullmatch(DOTTED_KEY, key):
            raise ValueError(f"{key[:60]!r} is not a dotted key into params (`a` or `a.b`)")
        if key.startswith("params."):
            # The body's shape invites it; without this the trial's 422 named
            # `params.params`, which does not say what to change.
            raise ValueError(
                f"{key[:60]!r}: keys name the job's params themselves, so "
                f"{key.removeprefix('params.')[:60]!r}, not {key[:60]!r}"
            )


def grid_count(grid: Mapping[str, list[Any]]) -> int:
    return math.prod(len(values) for values in grid.values())


def grid_trials(grid: Mapping[str, list[Any]]) -> list[Overrides]:
    keys = list(grid)
    combos = itertools.product(*(grid[key] for key in keys))
    return [copy.deepcopy(dict(zip(keys, combo, strict=True))) for combo in combos]


def random_trials(space: RandomSpace) -> list[Overrides]:
    rng = random.Random(space.seed)
    return [{key: dist.draw(rng) for key, dist in space.params.items()} for _ in range(space.count)]


def with_overrides(params: Mapping[str, Any], overrides: Overrides) -> dict[str, Any]:
    """``params`` with each dotted key set (missing objects on the way are made); a
    ``KeyError`` naming a key whose path runs through a value that is not an object."""
    out = copy.deepcopy(dict(params))
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise KeyError(key)
        node[last] = copy.deepcopy(value)
    return out
