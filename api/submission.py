"""What makes a job submission valid, beyond the envelope's schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..shared.datasets import DatasetInfo
from ..shared.errors import (
    UnknownDataset,
    UnknownKind,
    UnknownModel,
    ValidationFailed,
    WebhookRefused,
)
from ..shared.estimates import JobFacts
from ..shared.jobs import Job, JobType
from ..shared.kinds import KINDS
from ..shared.models import ModelRecord
from ..shared.webhook_urls import check_webhook_url
from .admission import check_fits, check_periods, default_max_run_seconds, estimate, facts_for
from .continuation import check_continues, continued
from .schemas import JobCreate
from .services import Services
from .spec import validation_problem


@dataclass(frozen=True)
class ValidSubmit:
    params: dict[str, Any]
    """The kind's params with defaults filled in."""
    output_bytes: int
    """The job's estimated output, reserved against the stored-bytes quota until it ends
    (``shared.reservations``); 0 when its kind does not estimate."""


def validated_params(body: JobCreate, owner: str, svc: Services) -> ValidSubmit:
    """The kind's params with defaults filled in and the job's estimated output, or a 422
    naming what is wrong (including a job too large to admit: ``api.admission``)."""
    spec = KINDS.get(body.kind)
    if spec is None:
        raise UnknownKind(
            f"Unknown kind {body.kind!r}; available kinds: {', '.join(sorted(KINDS))}.",
            errors=[{"field": "kind", "message": f"one of {sorted(KINDS)}"}],
        )
    if body.webhook is not None:
        _check_webhook(body.webhook, svc.settings.webhook_allow_private)
    train = body.type is JobType.TRAIN
    schema = spec.train_params if train else spec.generate_params
    # A training job continuing a model takes what it leaves out from the model.
    raw, parent = continued(body.params, spec, owner, svc.models) if train else (body.params, None)
    try:
        # Strict, as the document's JSON Schema is: true is not 1, "5" is not 5. Validated as
        # the JSON it came as: in Python mode strict pydantic refuses a list for a tuple field
        # (dcgan's `augment`), where JSON has only arrays.
        params = schema.model_validate_json(json.dumps(raw), strict=True)
    except ValidationError as exc:
        raise validation_problem(exc, prefix="params.", model=schema) from exc
    values = params.model_dump()
    if train:
        check_periods(values)
        dataset = _check_dataset(values["dataset"], spec.modality, owner, svc)
        facts = facts_for(svc.settings, dataset=dataset)
        if parent is not None:
            check_continues(spec, params, facts, parent)
            values["init_model"] = parent.id  # the job keeps the version it was given, by id
        _check_fits_dataset(spec.check_train, params, facts)
    else:
        model = _check_model(values["model_id"], body.kind, owner, svc)
        values["model_id"] = model.id  # the job keeps the version it was given, by id
        _check_fits_model(spec.check_generate, params, model)
        facts = facts_for(svc.settings, model=model)
    found = estimate(spec, body.type, params, facts)
    check_fits(found, svc.settings)
    return ValidSubmit(values, found.output_bytes if found is not None else 0)


def create_record(
    svc: Services, owner: str, body: JobCreate, params: dict[str, Any], job_id: str, **extra: Any
) -> Job:
    """The admitted job's record, queued (its place among the admitted given back in the
    same MULTI), and the dataset it reads told; ``extra``: more record fields (``sweep_id``).
    A 422 ``unknown-model`` and no job if its model was deleted since it was validated
    (``shared.model_users``)."""
    job = svc.jobs.create(
        owner,
        body.type,
        body.kind,
        params,
        job_id=job_id,
        start_before=body.start_before.timestamp() if body.start_before else None,
        max_run_seconds=body.max_run_seconds or default_max_run_seconds(svc.settings, body.type),
        priority=body.priority,
        webhook=body.webhook,
        webhook_events_filter=body.webhook_events_filter,
        name=body.name,
        tags=body.tags,
        notes=body.notes,
        also=lambda pipe, created: svc.quotas.job_created(owner, created.id, pipe),
        **extra,
    )
    if "dataset" in params:
        svc.datasets.add_user(params["dataset"], job.id)
    return job


def _check_webhook(url: str, allow_private: bool) -> None:
    """422 for a URL the webhooks worker would refuse anyway: better told now than never
    (the address a name resolves to is checked again at each delivery)."""
    try:
        check_webhook_url(url, allow_private)
    except WebhookRefused as exc:
        raise ValidationFailed(
            f"webhook: {exc}", errors=[{"field": "webhook", "message": str(exc)}]
        ) from exc


def _check_dataset(name: str, modality: str, owner: str, svc: Services) -> DatasetInfo:
    dataset = svc.datasets.get_for_owner(name, owner)
    if dataset is None:
        names = [d.name for d in svc.datasets.list_for_owner(owner) if d.modality == modality]
        raise UnknownDataset(
            f"Unknown dataset {name!r} in params.dataset; {modality} datasets you can use: "
            f"{', '.join(names)} (see GET /v1/datasets).",
            errors=[{"field": "params.dataset", "message": "no such dataset"}],
        )
    if dataset.modality != modality:
        raise UnknownDataset(
            f"Dataset {name!r} holds {dataset.modality}; this kind trains on {modality}.",
            errors=[{"field": "params.dataset", "message": f"needs a {modality} dataset"}],
        )
    return dataset


def _check_model(model_id: str, kind: str, owner: str, svc: Services) -> ModelRecord:
    model = svc.models.resolve(model_id, owner)
    if model is None:
        raise UnknownModel(
            f"No model {model_id!r} in params.model_id; list yours with GET /v1/models.",
            errors=[{"field": "params.model_id", "message": "no such model"}],
        )
    if model.kind != kind:
        raise UnknownModel(
            f"Model {model_id!r} is a {model.kind!r} model; submit kind {model.kind!r}.",
            errors=[{"field": "params.model_id", "message": f"model kind is {model.kind}"}],
        )
    return model


def _check_fits_dataset(
    check: Callable[[Any, JobFacts], list[tuple[str, str]]] | None, params: Any, facts: JobFacts
) -> None:
    """Refuse now what the dataset cannot give (a conditional dcgan on unlabelled images)."""
    problems = check(params, facts) if check else []
    if problems:
        raise ValidationFailed(
            f"params.{problems[0][0]}: {'; '.join(message for _, message in problems)}.",
            errors=[{"field": f"params.{field}", "message": m} for field, m in problems],
        )


def _check_fits_model(
    check: Callable[[Any, dict[str, Any]], list[tuple[str, str]]] | None,
    params: Any,
    model: ModelRecord,
) -> None:
    """Refuse now what would fail at run time: params this model cannot serve (a record it
    cannot rebuild is the model's fault; anything else is the named param's)."""
    problems = check(params, model.config) if check else []
    if not problems:
        return
    errors = [{"field": f"params.{field}", "message": message} for field, message in problems]
    detail = f"Model {model.id!r} cannot serve this job: {'; '.join(m for _, m in problems)}."
    if any(field == "model_id" for field, _ in problems):
        raise UnknownModel(detail, errors=errors)
    raise ValidationFailed(detail, errors=errors)
