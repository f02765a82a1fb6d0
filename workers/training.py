"""The one training loop every kind shares.

``run_training`` owns what is the same for every kind: the seed, resuming from the job's
newest checkpoint, ``fit`` with the step hooks (progress, samples, checkpoints, cooperative
stopping on cancel, drain, deadline or a lost lease), the final samples, the weights upload
and the collection of the samples into the model record. A kind supplies a ``Trainer``,
made from the params and the data the job read: its model, its batches, what a checkpoint
and the weights hold, and what a sample shows.

``train_without_job`` runs the same trainer the same way (seed, build, batches, ``fit``)
with none of the job's hooks: what the benchmarks and tests train with, so that they train
exactly as a job does. When a step samples, checkpoints or stops is decided by
``workers.step_policy``; ``StepHooks`` carries it out.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import keras

from ..shared.errors import PermanentJobError
from ..shared.jobs import OutputRef
from ..shared.kinds import TrainParams
from ..shared.models import ModelRecord
from ..shared.storage import ObjectLayout
from .checkpoints import encode_checkpoint, read_checkpoint, restore_checkpoint
from .context import JobContext, is_sample
from .kinds.base import ModelKind, TrainResult
from .metrics import TRAINING_STEPS
from .preparation import NO_PREPARATION, Preparation
from .step_policy import Cadence, CheckpointLedger

Groups = dict[str, Sequence[Any]]
"""Named lists of variables, as a checkpoint stores them (``workers.checkpoints``)."""
P = TypeVar("P", bound=TrainParams)
D = TypeVar("D")
T = TypeVar("T")


@dataclass
class Sample:
    """What a kind shows of its model at a step: one object, plus measurements taken
    with it (e.g. validation loss) that join the step's metrics."""

    data: bytes
    extension: str
    content_type: str
    text: str | None = None
    """Shown inline in the job (small texts)."""
    metrics: dict[str, float] = field(default_factory=dict)


class Trainer(ABC, Generic[P, D]):
    """A kind's part of a training run, on ``data`` as the job read it (a corpus, tunes,
    images). ``build`` runs after the seed is set; the others may be called at any step."""

    preparation: Preparation = NO_PREPARATION
    """Where ``build`` reports slow data preparation (tokenising); a job sets it."""
    parent: ModelRecord | None = None
    """The model this run continues (``init_model``); a job sets it before ``build``,
    which takes from it what must stay the model's (a tokenizer, a vocabulary)."""

    def __init__(self, params: P, data: D) -> None:
        self.params = params
        self.data = data

    @abstractmethod
    def build(self) -> keras.Model:
        """Prepare the data, build and compile the model."""

    @abstractmethod
    def batches(self, start_step: int) -> Iterable[Any]:
        """Endless training batches; a resumed run (``start_step`` > 0) sees a new order."""

    @abstractmethod
    def state(self) -> Groups:
        """Everything a checkpoint holds: weights and optimizer state."""

    @abstractmethod
    def build_optimizers(self) -> None:
        """Create the optimizers' variables, so a checkpoint can be restored into them."""

    @abstractmethod
    def weights(self) -> Groups:
        """What generation needs: the model's weights file."""

    @abstractmethod
    def sample(self, step: int) -> Sample:
        """What the model makes at ``step`` (a grid, a text), written as an output."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """The model's configuration, kept in its record to rebuild it for generation."""

    def describe(self) -> str:
        """Names the run in the job's log."""
        return f"{self.config()} on {self.params.dataset}"

    def start_from(self, weights: bytes) -> str:
        """Load the weights file of the model this run continues into the built model (its
        optimizers start afresh); returns what was loaded, for the job's log."""
        restore_checkpoint(self.weights(), weights)
        return "its weights"


class TrainingKind(ModelKind, Generic[P]):
    """A kind whose training jobs run a ``Trainer`` in the shared loop: ``train``
    validates the params and runs the trainer the kind makes for the job."""

    train_params: type[P]

    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        p = self.train_params.model_validate(params)
        return run_training(self.trainer(p, ctx), ctx)

    @abstractmethod
    def trainer(self, params: P, ctx: JobContext) -> Trainer[P, Any]:
        """The job's trainer, given the data the job reads through ``ctx``."""


def run_training(trainer: Trainer[Any, Any], ctx: JobContext) -> TrainResult:
    """Steps ``ctx.first_step`` + 1 .. + ``steps``: a run continuing a model counts on from
    the model's last step, so its curves continue the model's."""
    params = trainer.params
    last_step = ctx.first_step + params.steps
    # Until step 1: building, then tracing and compiling the model (seconds to a minute).
    trainer.preparation, trainer.parent = ctx.preparation, ctx.parent
    ctx.preparation.phase("building the model", 1, "models")
    model = _seeded_build(trainer)
    start_step = _resume(trainer, ctx)
    hooks = StepHooks(
        ctx,
        Cadence(last_step, params.sample_every, params.checkpoint_every),
        start_step=start_step,
        checkpoint=lambda step: encode_checkpoint(trainer.state(), step),
        samples=lambda step: _write_sample(trainer, ctx, hooks, step),
    )
    ctx.log.info("training %s, steps %d..%d", trainer.describe(), start_step + 1, last_step)
    _fit(trainer, model, start_step, last_step, [hooks])
    hooks.finish_or_stop()
    if hooks.cadence.owes_final_sample(hooks.last_sample_step):
        hooks.write_samples(last_step)
    weights_key = ObjectLayout.model_weights(ctx.job.owner, ctx.model_id)
    weights = encode_checkpoint(trainer.weights(), last_step)
    ctx.uploader.put("weights", weights_key, weights, "application/zip")
    ctx.uploader.wait()  # also every sample's upload, so outputs_added is complete
    # Samples of earlier attempts are in the claimed record; this attempt's were added.
    listed = [o for o in [*ctx.job.outputs, *ctx.outputs_added] if is_sample(o)]
    samples = sorted([*listed, *ctx.unlisted_samples], key=lambda ref: ref.name)
    return TrainResult(
        config=trainer.config(),
        weights_key=weights_key,
        samples=spread(samples, ctx.settings.max_listed_samples),
        metrics=hooks.latest,
        dataset=params.dataset,
        steps=last_step,
    )


def train_without_job(
    trainer: Trainer[Any, Any], callbacks: Sequence[keras.callbacks.Callback] = ()
) -> keras.Model:
    """A whole run of ``trainer`` as a job trains it (the same seed, build, batches and
    ``fit``), without the job: no resuming, samples, checkpoints, progress or uploads.
    ``callbacks`` see every step, as the job's hooks do."""
    model = _seeded_build(trainer)
    _fit(trainer, model, 0, trainer.params.steps, callbacks)
    return model


def _seeded_build(trainer: Trainer[Any, Any]) -> keras.Model:
    keras.utils.set_random_seed(trainer.params.seed)
    return trainer.build()


def _fit(
    trainer: Trainer[Any, Any],
    model: keras.Model,
    start_step: int,
    last_step: int,
    callbacks: Sequence[keras.callbacks.Callback],
) -> None:
    """Steps ``start_step`` + 1 .. ``last_step`` in one ``fit``."""
    if start_step < last_step:
        model.fit(
            trainer.batches(start_step),
            steps_per_epoch=last_step - start_step,
            epochs=1,
            verbose=0,
            callbacks=list(callbacks),
        )


def spread(items: list[T], most: int) -> list[T]:
    """At most ``most`` of ``items``, evenly spaced, the first and the last always kept:
    a model's samples show its whole training, ending with what it makes now."""
    if len(items) <= most:
        return items
    if most <= 1:
        return items[-most:] if most else []
    last = len(items) - 1
    return [items[round(i * last / (most - 1))] for i in range(most)]


def _resume(trainer: Trainer[Any, Any], ctx: JobContext) -> int:
    """Load the job's newest checkpoint, if it has one, else the weights of the model it
    continues, if any; returns the step to continue from."""
    checkpoint = ctx.job.checkpoint
    data = None
    if checkpoint is not None:
        trainer.build_optimizers()
        job_prefix = ObjectLayout.job_prefix(ctx.job.owner, ctx.job.id)
        data = read_checkpoint(ctx.objects, job_prefix, checkpoint, ctx.log)
    if data is not None:
        step = restore_checkpoint(trainer.state(), data)
        ctx.log.info("resuming from the checkpoint at step %d (attempt %d)", step, ctx.job.attempt)
        return step
    if checkpoint is not None:
        ctx.log.warning("training from the start (attempt %d)", ctx.job.attempt)
    if ctx.parent is not None:
        loaded = trainer.start_from(ctx.objects.get_bytes(ctx.parent.weights_key))
        ctx.log.info("continuing %s from step %d: %s", ctx.parent.id, ctx.first_step, loaded)
    return ctx.first_step


def _write_sample(trainer: Trainer[Any, Any], ctx: JobContext, hooks: StepHooks, step: int) -> None:
    sample = trainer.sample(step)
    hooks.latest.update(sample.metrics)
    text = sample.text
    ctx.uploader.put_best_effort(
        f"samples/step-{step:07d}.{sample.extension}",
        ctx.sample_key(step, sample.extension),
        sample.data,
        sample.content_type,
        on_stored=lambda ref: ctx.add_output(ref.model_copy(update={"text": text})),
    )


class StepHooks(keras.callbacks.Callback):  # type: ignore[misc]
    """Carries out the ``cadence`` at every step. ``start_step`` offsets the steps of a
    resumed run. ``checkpoint`` encodes the training state at a step; ``samples`` writes
    whatever the kind shows as it learns."""

    def __init__(
        self,
        ctx: JobContext,
        cadence: Cadence,
        *,
        start_step: int,
        checkpoint: Callable[[int], bytes],
        samples: Callable[[int], None],
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.cadence = cadence
        self.start_step = start_step
        self._checkpoint = checkpoint
        self._samples = samples
        self.latest: dict[str, float] = {}
        self.last_sample_step = 0
        self.stopped_at: int | None = None
        # The checkpoint this run resumed from was written by an earlier attempt, under
        # its own prefix; retention counts it with this run's.
        resumed = ctx.job.checkpoint
        self.ledger = CheckpointLedger(
            start_step,
            (resumed.step, resumed.key) if resumed else None,
            ctx.settings.checkpoints_kept,
        )

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self.start_step + batch + 1
        total = self.cadence.total_steps
        self.latest.update({k: float(v) for k, v in (logs or {}).items()})
        diverged = [k for k, v in self.latest.items() if "loss" in k and not math.isfinite(v)]
        if diverged:
            # Fails the job (a run again from its checkpoint would diverge again); the
            # checkpoints stored so far stay.
            raise PermanentJobError(
                f"training diverged at step {step}: {', '.join(sorted(diverged))} is "
                f"{self.latest[diverged[0]]}; a lower learning rate may help"
            )
        self.ctx.report(step, total, self.latest)
        TRAINING_STEPS.labels(self.ctx.job.kind).inc()
        actions = self.cadence.at(step, self.ctx.stop_reason())
        if actions.sample:
            self.write_samples(step)
        if actions.log:
            metrics = " ".join(f"{k}={v:.4f}" for k, v in self.latest.items())
            self.ctx.log.info("step %d/%d %s", step, total, metrics)
        if actions.checkpoint:
            self.ctx.uploader.put_best_effort(
                f"checkpoint-{step}",
                self.ctx.checkpoint_key(step),
                self._checkpoint(step),
                "application/zip",
                on_stored=functools.partial(self._stored, step=step),
            )
        if actions.checkpoint_and_wait:
            self.checkpoint_now(step)
        if actions.stop:
            self.stopped_at = step
            self.model.stop_training = True

    def write_samples(self, step: int) -> None:
        self._samples(step)
        self.last_sample_step = step

    def checkpoint_now(self, step: int) -> None:
        """Store a checkpoint and wait for it: the job is about to move to another worker."""
        key = self.ctx.checkpoint_key(step)
        self.ctx.uploader.put(f"checkpoint-{step}", key, self._checkpoint(step), "application/zip")
        self.ctx.uploader.wait()
        self._stored(
            OutputRef(
                name=f"checkpoint-{step}", key=key, content_type="application/zip", size_bytes=0
            ),
            step,
        )

    def _stored(self, ref: OutputRef, step: int) -> None:
        stale = self.ledger.stored(step, ref.key, lambda: self.ctx.record_checkpoint(ref, step))
        for key in stale:
            self.ctx.delete_object(key)

    def finish_or_stop(self) -> None:
        """After ``fit``: wait for uploads; raise if the run was stopped early."""
        if self.stopped_at is not None:
            self.ctx.uploader.wait()
            self.ctx.raise_for_stop(self.stopped_at)
