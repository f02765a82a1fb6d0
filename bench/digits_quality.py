"""Are the default ``dcgan`` recipe's digits close to real ones, and at what CPU cost?
(issue 16, point 4)

The default training params (or ``--params``) are trained on the built-in digits in this
process with the kind's own builders (what a job runs, without its storage and progress
writes), timed in wall and CPU seconds (CPU: this process's user + system time, every
thread; the wall time on a shared 2-core machine is pessimistic). 1,000 images of the
generator a generation job would use are judged by ``workers.quality``'s classifier, each
figure beside the real digits' own:

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


def train_and_judge(params: dict[str, Any], every: int | None = None) -> list[DigitsRun]:
    """Train the recipe; judge its generator every ``every`` steps (and at the end)."""
    import keras

    from atelier.shared.dcgan_params import DcganTrainParams
    from atelier.workers.datasets import load_builtin, load_labels
    from atelier.workers.kinds.dcgan_inference import generate_images, labels_in_turn
    from atelier.workers.kinds.dcgan_training import build_gan, image_batches

    p = DcganTrainParams.model_validate(params)
    keras.utils.set_random_seed(p.seed)
    images = load_builtin("digits")
    labels = load_labels("digits") if p.conditional else None
    gan = build_gan(p, images.shape[1], images.shape[3], 10 if p.conditional else 0)
    batches = image_batches(images, labels, p.batch_size, p.seed)
    z = np.random.default_rng(12345).standard_normal((SAMPLES, p.latent_dim)).astype("float32")
    # What a generation job with no labels draws: every digit in turn (unconditional: none).
    drawn_as = labels_in_turn(SAMPLES, 10) if p.conditional else None
    runs: list[DigitsRun] = []
    done, seconds, cpu = 0, 0.0, 0.0
    while done < p.steps:
        chunk = min(every or p.steps, p.steps - done)
        started, cpu_started = time.perf_counter(), time.process_time()
        gan.fit(batches, steps_per_epoch=chunk, epochs=1, verbose=0)
        seconds += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        done += chunk
        report = digit_report(generate_images(gan.averaged, z, drawn_as), drawn_as)
        runs.append(DigitsRun(report, seconds, cpu, done))
        raw = report
        if p.ema_decay:
            raw = digit_report(generate_images(gan.generator, z, drawn_as), drawn_as)
        print(
            json.dumps(
                {
                    "steps": done,
                    "seconds": round(seconds),
                    "cpu": round(cpu),
                    "averaged": report.model_dump(),
                    "raw": raw.model_dump(),
                }
            )
        )
    return runs


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
