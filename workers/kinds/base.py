"""What a model kind implements, and what a running job hands it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from atelier.shared.jobs import OutputRef
from atelier.shared.models import ModelRecord
from atelier.shared.settings import Settings
from atelier.workers.context import JobContext

__all__ = ["GenerateResult", "JobContext", "ModelKind", "TrainResult", "timing_metrics"]


@dataclass
class TrainResult:
    """What a finished training run hands back; the runner turns it into a model record."""

    config: dict[str, Any]
    weights_key: str
    samples: list[OutputRef]
    metrics: dict[str, float]
    dataset: str
    steps: int


@dataclass
class GenerateResult:
    outputs: list[OutputRef]
    metrics: dict[str, float] = field(default_factory=dict)


def timing_metrics(
    cached: bool, started: float, loaded: float, finished: float
) -> dict[str, float]:
    """The measurements every generation reports (perf_counter stamps in, seconds out)."""
    return {
        "model_cache_hit": float(cached),
        "load_time": round(loaded - started, 4),
        "predict_time": round(finished - loaded, 4),
    }


class ModelKind(ABC):
    """A plug-in: ``setup`` once per process, then ``train`` and ``generate`` per job.

    ``train`` calls ``ctx.report`` after each step and ``ctx.stop_reason()`` at step
    boundaries; when it returns a reason, the kind saves what it must (a checkpoint when
    the worker is draining) and calls ``ctx.raise_for_stop()``. A re-run of a job finds
    its last stored checkpoint in ``ctx.job.checkpoint``.
    """

    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load what every job of this kind needs (once per worker process)."""

    @abstractmethod
    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult: ...

    @abstractmethod
    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult: ...
