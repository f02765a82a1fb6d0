"""What a model kind implements, and what a running job hands it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...shared.errors import PermanentJobError
from ...shared.jobs import OutputRef
from ...shared.models import ModelRecord
from ...shared.settings import Settings
from ..context import JobContext

__all__ = [
    "Exportable",
    "GenerateResult",
    "JobContext",
    "ModelKind",
    "TrainResult",
    "timing_metrics",
]


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


@dataclass
class Exportable:
    """A model as an export carries it (``workers.export``): its generating network built
    from Keras's own layers with the trained weights, the files generating with it needs
    (a tokenizer, a vocabulary) and what ``atelier.json`` tells a reader of the bundle."""

    network: Any
    """A ``keras.Model`` of built-in layers only: it loads without Atelier."""
    files: dict[str, bytes] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


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

    A kind that trains a Keras model is a ``workers.training.TrainingKind``: it makes a
    ``Trainer`` from the params and the data it reads through ``ctx``, and the shared loop
    handles progress, samples, checkpoints, resuming and cooperative stopping. ``generate``
    loads a trained model's weights (cached per process) and writes outputs through
    ``ctx.uploader``.
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

    def exportable(self, model: ModelRecord, weights: bytes) -> Exportable:
        """``model`` (its weights file ``weights``) as an export carries it."""
        raise PermanentJobError(f"{self.name} models cannot be exported")
