"""A training job that continues a model (``params.init_model``): its params completed
from the model's, or a 422 that names the difference, before anything is enqueued.

- The model must be the caller's, exist and be of the job's kind.
- The params that shape the network (``Continuation.shape``) are the model's: left out,
  they are taken from it; given otherwise, refused.
- Every other param left out is the model's too (its dataset and recipe), except what is
  each run's own (``RUN_PARAMS``), which takes its default.
- Once validated, the kind checks the dataset against the model (``Continuation.check``):
  a DCGAN's image size, channels and classes.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from ..shared.errors import UnknownModel, ValidationFailed
from ..shared.estimates import JobFacts
from ..shared.kinds import KindSpec, StrictParams
from ..shared.kinds.base import MODEL_REF_PATTERN, Continuation
from ..shared.models import ModelRecord, ModelStore

RUN_PARAMS = frozenset(
    {"steps", "seed", "sample_every", "checkpoint_every", "model_name", "init_model"}
)
"""What a continuing job never takes from the model: each run's own."""


def continued(
    params: dict[str, Any], spec: KindSpec, owner: str, models: ModelStore
) -> tuple[dict[str, Any], ModelRecord | None]:
    """``params`` completed from the model ``params.init_model`` names, and that model;
    unchanged and None when they name none (or name it so badly the schema refuses it)."""
    ref = params.get("init_model")
    if not isinstance(ref, str) or not re.fullmatch(MODEL_REF_PATTERN, ref):
        return params, None
    parent = _parent(ref, spec, owner, models)
    continuation = spec.continuation
    assert continuation is not None  # checked by _parent
    shape = _shape_of(parent, continuation)
    conflicts = [(name, value) for name, value in shape.items() if params.get(name, value) != value]
    if conflicts:
        errors = [
            {
                "field": f"params.{name}",
                "message": f"the model has {name}={_json(value)}; leave it out or give that",
            }
            for name, value in conflicts
        ]
        differences = ", ".join(f"{n} {_json(params[n])} against {_json(v)}" for n, v in conflicts)
        raise ValidationFailed(
            f"params.init_model: {parent.id} has another network shape ({differences}); a "
            "job continuing it keeps its shape.",
            errors=errors,
        )
    inherited = {"dataset": parent.dataset, **_recipe_of(parent, spec.train_params), **shape}
    return {**inherited, **params}, parent


def check_continues(
    spec: KindSpec, params: StrictParams, facts: JobFacts, parent: ModelRecord
) -> None:
    """422 when the job's dataset cannot continue the model (the kind says why)."""
    check = spec.continuation.check if spec.continuation else None
    problems = check(params, facts, parent.config) if check else []
    if problems:
        raise ValidationFailed(
            f"params.init_model: {parent.id} cannot continue on this dataset: "
            f"{'; '.join(message for _, message in problems)}.",
            errors=[{"field": f"params.{f}", "message": m} for f, m in problems],
        )


def _parent(ref: str, spec: KindSpec, owner: str, models: ModelStore) -> ModelRecord:
    parent = models.resolve(ref, owner)
    if parent is None:
        raise UnknownModel(
            f"No model {ref!r} in params.init_model; list yours with GET /v1/models.",
            errors=[{"field": "params.init_model", "message": "no such model"}],
        )
    if parent.kind != spec.name:
        raise UnknownModel(
            f"Model {ref!r} in params.init_model is a {parent.kind!r} model; a {spec.name} "
            f"job cannot continue it (submit kind {parent.kind!r}).",
            errors=[{"field": "params.init_model", "message": f"model kind is {parent.kind}"}],
        )
    if spec.continuation is None:
        raise ValidationFailed(
            f"params.init_model: {spec.name} training cannot continue a model.",
            errors=[{"field": "params.init_model", "message": f"not supported by {spec.name}"}],
        )
    return parent


def _shape_of(parent: ModelRecord, continuation: Continuation) -> dict[str, Any]:
    shape = continuation.shape(parent.config, parent.params)
    return {name: value for name, value in shape.items() if value is not None}


def _recipe_of(parent: ModelRecord, schema: type[StrictParams]) -> dict[str, Any]:
    """The model's other params, as this version of its kind reads them (a tuple stays a
    tuple); nothing when they no longer validate (an older version's)."""
    try:
        recipe = schema.model_validate(parent.params).model_dump() if parent.params else {}
    except ValidationError:
        return {}
    return {k: v for k, v in recipe.items() if k in parent.params and k not in RUN_PARAMS}


def _json(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)
