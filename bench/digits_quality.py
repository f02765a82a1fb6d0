"""Are the default ``dcgan`` recipe's digits close to real ones, and at what CPU cost?
(issue 16, point 4)

The default training params (or ``--params``) are trained on the built-in digits in this
process by the kind's own trainer (``train_without_job``: what a job runs, without its
storage and progress writes), timed in wall and CPU seconds (CPU: this process's user +
system time, every thread; the wall time on a shared 2-core machine is pessimistic).
1,000 images of the generator a generation job would use are judged by
``workers.quality``'s classifier, each figure beside the real digits' own:

- the share it reads with confidence >= 0.7;
- the rarest class's share of those, over uniform's (>= 0.5: no class under half of it);
- the Fréchet distance between its class scores of the images and of the real digits;
- for a conditional generator, the share of those read as the digit they were drawn as.

At full size the previous default recipe (``PREVIOUS_DEFAULT``) is trained too, side by
side in the same process, and the CPU times are compared as a ratio.

    python -m bench.digits_quality                         # the default recipe
    python -m bench.digits_quality --params '{"steps": 600}' --every 200
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from atelier.workers.quality import DigitReport, digit_report, real_digits_report
from bench.common import Result

SAMPLES = 1000
QUICK_STEPS = 500


@dataclass
class DigitsRun:
    report: DigitReport
    seconds: float
    cpu_seconds: float
    steps: int


class Judge:
    """Judges the generator every ``every`` steps and at the end, off the clock."""

    def __init__(self, steps: int, every: int, latent_dim: int, conditional: bool) -> None:
        from atelier.workers.kinds.dcgan.inference import labels_in_turn

        self.steps, self.every = steps, every
        rng = np.random.default_rng(12345)
        self.z = rng.standard_normal((SAMPLES, latent_dim)).astype("float32")
        # What a generation job with no labels draws: every digit in turn (unconditional: none).
        self.drawn_as = labels_in_turn(SAMPLES, 10) if conditional else None
        self.runs: list[DigitsRun] = []
        self.seconds, self.cpu = 0.0, 0.0

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def step(self, done: int, gan: Any, ema: bool) -> None:
        from atelier.workers.kinds.dcgan.inference import generate_images

        if done % self.every and done != self.steps:
            return
        self.seconds += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu
        report = digit_report(generate_images(gan.averaged, self.z, self.drawn_as), self.drawn_as)
        self.runs.append(DigitsRun(report, self.seconds, self.cpu, done))
        raw = report
        if ema:
            raw = digit_report(generate_images(gan.generator, self.z, self.drawn_as), self.drawn_as)
        figures = {"steps": done, "seconds": round(self.seconds), "cpu": round(self.cpu)}
        print(json.dumps({**figures, "averaged": report.model_dump(), "raw": raw.model_dump()}))
        self.start()


def train_and_judge(params: dict[str, Any], every: int | None = None) -> list[DigitsRun]:
    """Train the recipe with the job's trainer; judge its generator every ``every`` steps
    (and at the end)."""
    import keras

    from atelier.shared.kinds.dcgan import DcganTrainParams
    from atelier.workers.datasets import load_builtin, load_labels
    from atelier.workers.kinds.dcgan.training import DcganTrainer, TrainingImages
    from atelier.workers.training import train_without_job

    p = DcganTrainParams.model_validate(params)
    conditional = p.conditional is not False  # default (None): the digits are labelled
    labels = load_labels("digits") if conditional else None
    trainer = DcganTrainer(p, TrainingImages(load_builtin("digits"), labels))
    judge = Judge(p.steps, every or p.steps, p.latent_dim, conditional)
    callback = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: judge.start(),
        on_train_batch_end=lambda batch, logs: judge.step(batch + 1, trainer.gan, p.ema_decay > 0),
    )
    train_without_job(trainer, [callback])
    return judge.runs


PREVIOUS_DEFAULT = {"conditional": False, "mode_seeking": 0.0, "ema_decay": 0.0, "steps": 1500}
"""The recipe before issue 16: unconditional, no mode seeking, no average, 1,500 steps."""


def digits_quality(size: str, params: dict[str, Any] | None = None) -> list[Result]:
    """The default recipe's figures beside real digits; at full size also its CPU time
    beside the previous default's, trained side by side in this process."""
    if size == "quick" and not params:
        params = {"steps": QUICK_STEPS}  # a third of the default run: its figures only
    run = train_and_judge(params or {})[-1]
    real, made = real_digits_report(SAMPLES), run.report
    cost = f"{run.steps} steps: {run.seconds:.0f} s wall, {run.cpu_seconds:.0f} s CPU"
    results = quality_results(made, real, cost)
    if size != "quick":
        before = train_and_judge(PREVIOUS_DEFAULT)[-1]
        results.append(
            Result(
                name="digits-cpu",
                value=run.cpu_seconds,
                baseline=before.cpu_seconds,
                baseline_name="previous default (unconditional, 1,500 steps)",
                unit="s CPU",
                ratio=run.cpu_seconds / before.cpu_seconds,
                goal="<= 1.0",
                met=run.cpu_seconds <= before.cpu_seconds,
                notes=(
                    f"previous default: {before.report.confident_fraction:.0%} confident, "
                    f"rarest class {before.report.rarest_class_share:.2f}, Fréchet "
                    f"{before.report.frechet_distance:.2f}, {before.seconds:.0f} s wall"
                ),
            )
        )
    return results


def quality_results(made: DigitReport, real: DigitReport, cost: str) -> list[Result]:
    def beside_real(name: str, value: float, of_real: float, unit: str) -> dict[str, Any]:
        ratio = value / max(of_real, 1e-9)
        return dict(name=name, value=value, baseline=of_real, unit=unit, ratio=ratio)

    results = [
        Result(
            **beside_real(
                "digits-confident", made.confident_fraction, real.confident_fraction, "share"
            ),
            baseline_name="real digits",
            goal="closer to real than the previous default (0.42-0.44)",
            met=made.confident_fraction > 0.44,
            notes=f"default dcgan recipe, {cost}",
        ),
        Result(
            **beside_real(
                "digits-rarest-class",
                made.rarest_class_share,
                real.rarest_class_share,
                "of uniform",
            ),
            baseline_name="real digits",
            goal=">= 0.5",
            met=made.rarest_class_share >= 0.5,
            notes=f"confident samples per class {made.class_counts}",
        ),
        Result(
            **beside_real("digits-frechet", made.frechet_distance, real.frechet_distance, ""),
            baseline_name=f"{SAMPLES} real digits",
            goal="below the previous default's (1.21-1.42)",
            met=made.frechet_distance < 1.21,
            notes="Fréchet distance between the classifier's class scores, to all real digits",
        ),
    ]
    if made.agreement is not None and real.agreement is not None:
        results.append(
            Result(
                **beside_real("digits-as-asked", made.agreement, real.agreement, "share"),
                baseline_name="real digits read as their label",
                goal=">= 0.9",
                met=made.agreement >= 0.9,
                notes="confident samples read as the digit they were drawn as",
            )
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="{}", help="dcgan train params (JSON) to try")
    parser.add_argument("--every", type=int, default=None, help="judge every N steps too")
    args = parser.parse_args(argv)
    train_and_judge(json.loads(args.params), args.every)
    print(json.dumps({"real": real_digits_report(SAMPLES).model_dump()}))


if __name__ == "__main__":
    main()
