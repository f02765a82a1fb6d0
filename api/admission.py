"""Admission control: a job that cannot run well is refused at submit, before anything is
enqueued, instead of killing a worker three times (issue 12).

- Its kind's estimate (``shared.estimates``) of peak memory must fit ``worker_memory_bytes``
  (or, where jobs run on GPUs, its device memory ``worker_gpu_memory_bytes``) and of output
  volume ``max_job_output_bytes``: else 422 ``too-large`` with the estimate and the limits.
- ``checkpoint_every`` and ``sample_every`` may not write more than ``MAX_PERIODIC_WRITES``
  objects per job: else 422 naming the field and its smallest allowed value.
"""

from __future__ import annotations

import math
from typing import Any

from ..shared.datasets import DatasetInfo
from ..shared.errors import TooLarge, ValidationFailed
from ..shared.estimates import Estimate, JobFacts, device_memory
from ..shared.jobs import JobType
from ..shared.kinds import KindSpec, StrictParams
from ..shared.models import ModelRecord
from ..shared.settings import Settings

MAX_PERIODIC_WRITES = 1000
"""Checkpoints, and samples, one training job may write: each is an object and an upload,
and each sample a line in the job's listing."""
PERIODIC_FIELDS = ("checkpoint_every", "sample_every")


def smallest_period(steps: int) -> int:
    """The smallest ``*_every`` that writes at most ``MAX_PERIODIC_WRITES`` times."""
    return max(1, math.ceil(steps / MAX_PERIODIC_WRITES))


def check_periods(params: dict[str, Any]) -> None:
    """422 naming each ``*_every`` below its floor for ``steps``."""
    floor = smallest_period(params["steps"])
    errors = [
        {
            "field": f"params.{name}",
            "message": (
                f"at least {floor} for steps={params['steps']} (at most "
                f"{MAX_PERIODIC_WRITES} per job)"
            ),
        }
        for name in PERIODIC_FIELDS
        if name in params and params[name] < floor
    ]
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise ValidationFailed(detail, errors=errors)


def facts_for(
    settings: Settings, dataset: DatasetInfo | None = None, model: ModelRecord | None = None
) -> JobFacts:
    """What the estimate needs beyond the params: the dataset's geometry and size (train),
    or the trained model's config (generate)."""
    facts = JobFacts(checkpoints_kept=settings.checkpoints_kept)
    if dataset is not None:
        facts = JobFacts(
            image_size=dataset.image_size or facts.image_size,
            channels=dataset.channels or facts.channels,
            dataset_count=dataset.count,
            classes=dataset.classes,
            checkpoints_kept=settings.checkpoints_kept,
        )
    if model is not None:
        facts = JobFacts(model_config=model.config, checkpoints_kept=settings.checkpoints_kept)
    return facts


def estimate(
    spec: KindSpec, job_type: JobType, params: StrictParams, facts: JobFacts
) -> Estimate | None:
    """The kind's estimate for this job; None when the kind does not estimate."""
    estimator = spec.estimate_train if job_type is JobType.TRAIN else spec.estimate_generate
    return None if estimator is None else estimator(params, facts)


def check_fits(found: Estimate | None, settings: Settings) -> None:
    """422 ``too-large`` when the estimate passes a worker's memory or the output bound."""
    if found is None:
        return
    needs = {"output_bytes": found.output_bytes}
    if settings.worker_gpu_memory_bytes > 0:
        limits = {"gpu_memory_bytes": settings.worker_gpu_memory_bytes}
        needs["gpu_memory_bytes"] = device_memory(found)
    else:
        limits = {"memory_bytes": settings.worker_memory_bytes}
        needs["memory_bytes"] = found.memory_bytes
    limits["output_bytes"] = settings.max_job_output_bytes
    over = [name for name, limit in limits.items() if limit > 0 and needs[name] > limit]
    if not over:
        return
    reasons = [
        f"estimated {name.removesuffix('_bytes').replace('_', ' ')} {_gib(needs[name])} over "
        f"the limit of {_gib(limits[name])}"
        for name in over
    ]
    raise TooLarge(
        f"This job cannot fit a worker: {'; '.join(reasons)} ({found.parameters:,} "
        "parameters). Use a smaller batch, sequence, width or depth.",
        estimate={**found.to_dict(), **needs},
        limits=limits,
        exceeded=over,
    )


def default_max_run_seconds(settings: Settings, job_type: JobType) -> float:
    """What a submit without ``max_run_seconds`` gets: days for training, minutes for
    generation (``train_max_run_seconds``, ``generate_max_run_seconds``)."""
    if job_type is JobType.TRAIN:
        return settings.train_max_run_seconds
    return settings.generate_max_run_seconds


def _gib(n: int) -> str:
    return f"{n / (1 << 30):,.2f} GiB"
