"""What every kind's TF-free half is made of: the parameter classes its schemas extend and
the ``KindSpec`` that is its row in the table (``shared.kinds`` re-exports them). A kind's
module imports them from here, never from ``shared.kinds``, which imports the kinds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from ..estimates import Estimate, JobFacts

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A model name: 1-64 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit."""


MODEL_REF_PATTERN = (
    r"^(?:[A-Za-z0-9_-]{1,64}|[A-Za-z0-9][A-Za-z0-9._-]{0,63}:(?:latest|[1-9][0-9]{0,8}))$"
)
"""What names a model: its id (``model_`` and hex), or ``name:latest`` / ``name:N``. An
empty or odd one is refused by the schema, before anything looks for it."""


NAMES_KEYWORD = "x-atelier-names"
"""Added to a param's JSON Schema when its value names something the owner has:
``"dataset"`` (a training's ``dataset``) or ``"model"`` (any param that takes a model
reference, by ``MODEL_REF_PATTERN``), so a form can offer the owner's datasets or models."""


def _mark_names(schema: JsonDict) -> None:
    """``json_schema_extra`` of every kind's params: marks the params that name a dataset or
    a model, a param added later included (``NAMES_KEYWORD``)."""
    properties = schema.get("properties")
    for name, prop in (properties if isinstance(properties, dict) else {}).items():
        if not isinstance(prop, dict):
            continue
        any_of = prop.get("anyOf")
        branches = [prop, *(any_of if isinstance(any_of, list) else [])]
        if any(isinstance(b, dict) and b.get("pattern") == MODEL_REF_PATTERN for b in branches):
            prop[NAMES_KEYWORD] = "model"
        elif name == "dataset":
            prop[NAMES_KEYWORD] = "dataset"


class StrictParams(BaseModel):
    """Unknown parameters are errors, not silently ignored typos."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_mark_names)


class TrainParams(StrictParams):
    """What every kind's training takes; the shared training loop reads these."""

    dataset: str = Field(description="Dataset name; see GET /v1/datasets.")
    steps: int = Field(1000, ge=1, le=1_000_000, description="Optimizer steps.")
    seed: int = Field(
        0, ge=0, le=2**31 - 1, description="Weight init, data order and sample noise."
    )
    sample_every: int = Field(
        250, ge=1, le=1_000_000, description="Steps between samples written as outputs."
    )
    checkpoint_every: int = Field(250, ge=1, le=1_000_000, description="Steps between checkpoints.")
    model_name: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        description=(
            "Name the trained model: each training with the same name makes its next version "
            "(1, 2, ...), which `name:latest` or `name:N` refers to wherever a model id goes."
        ),
    )
    init_model: str | None = Field(
        None,
        min_length=1,
        max_length=74,
        pattern=MODEL_REF_PATTERN,
        description=(
            "Continue training this model of the same kind (its id, `name:latest` or "
            "`name:N`): its weights are the start, `steps` more steps are counted on from its "
            "own, on this `dataset` (default: the model's). Parameters left out are the "
            "model's; ones that shape the network must be the model's."
        ),
    )


def model_id_field(kind: str) -> Any:
    """The ``model_id`` of a kind's generate params: an id or a name and version."""
    return Field(
        description=(
            f"A model produced by a {kind} training job: its id, or `name:latest` or "
            "`name:N` for a named model's newest or Nth version."
        ),
        min_length=1,
        max_length=74,
        pattern=MODEL_REF_PATTERN,
    )


Estimator = Callable[[Any, JobFacts], Estimate]
"""``(validated params, facts) -> Estimate``: a job's cost before it runs (``api.admission``)."""


@dataclass(frozen=True)
class Continuation:
    """What a kind's training needs of a model it continues (``init_model``), checked at
    submit (``api.continuation``) so that a mismatch is a 422, never a failed job."""

    shape: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
    """``(config, params) -> {param: value}``: the train params that shape a model's
    network, from its record's config and params (empty in records from before models
    kept them). A continuing job has these values: left out, they are taken; given
    otherwise, refused."""
    check: Callable[[Any, JobFacts, dict[str, Any]], list[tuple[str, str]]] | None = None
    """Why validated params and their dataset (``JobFacts``) cannot continue a model of
    this config: (param, message) pairs; empty when they can."""


@dataclass(frozen=True)
class KindSpec:
    """A kind's row in the table: what the API validates and estimates with, and where the
    worker finds the plug-in (imported only in a worker process)."""

    name: str
    description: str
    train_params: type[StrictParams]
    generate_params: type[StrictParams]
    implementation: str
    """``module:Class`` of the worker-side plug-in."""
    modality: str
    estimate_train: Estimator | None = None
    """Peak memory and output volume of a training job; None: not estimated (admitted)."""
    estimate_generate: Estimator | None = None
    check_generate: Callable[[Any, dict[str, Any]], list[tuple[str, str]]] | None = None
    """Why validated generation params cannot work with a model of this config: (param,
    message) pairs for a 422 at submit, never a failure at run time ("model_id" when the
    record itself cannot serve); empty when they can."""
    check_train: Callable[[Any, JobFacts], list[tuple[str, str]]] | None = None
    """Why validated training params cannot train on their dataset (``JobFacts``): (param,
    message) pairs for a 422 at submit; empty when they can."""
    continuation: Continuation | None = None
    """How a training job continues a model of this kind (``init_model``); None: it
    cannot."""
    exportable: bool = False
    """Its worker plug-in makes export bundles (``ModelKind.exportable``); the API refuses
    an export of any other kind's model up front (422) instead of failing on a worker."""
