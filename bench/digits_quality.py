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
- the Fréchet distance between its class scores of the images and of the real digits.

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
    import tensorflow as tf

    from atelier.shared.kinds import DcganTrainParams
    from atelier.workers.datasets import load_builtin
    from atelier.workers.kinds.dcgan_model import generate_images
    from atelier.workers.kinds.dcgan_training import build_gan

    p = DcganTrainParams.model_validate(params)
    keras.utils.set_random_seed(p.seed)
    images = load_builtin("digits")
    gan = build_gan(p, images.shape[1], images.shape[3])
    batches = (
        tf.data.Dataset.from_tensor_slices(images)
        .shuffle(len(images), seed=p.seed)
        .repeat()
        .batch(p.batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    z = np.random.default_rng(12345).standard_normal((SAMPLES, p.latent_dim)).astype("float32")
    runs: list[DigitsRun] = []
    done, seconds, cpu = 0, 0.0, 0.0
    while done < p.steps:
        chunk = min(every or p.steps, p.steps - done)
        started, cpu_started = time.perf_counter(), time.process_time()
        gan.fit(batches, steps_per_epoch=chunk, epochs=1, verbose=0)
        seconds += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        done += chunk
        report = digit_report(generate_images(gan.averaged, z))
        runs.append(DigitsRun(report, seconds, cpu, done))
        raw = digit_report(generate_images(gan.generator, z)) if p.ema_decay else report
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


def digits_quality(size: str, params: dict[str, Any] | None = None) -> list[Result]:
    if size == "quick" and not params:
        params = {"steps": QUICK_STEPS}  # a third of the default run: its figures only
    run = train_and_judge(params or {})[-1]
    real, made = real_digits_report(SAMPLES), run.report
    cost = (
        f"default dcgan recipe, {run.steps} steps: {run.seconds:.0f} s wall, "
        f"{run.cpu_seconds:.0f} s CPU"
    )
    return [
        Result(
            name="digits-confident",
            value=made.confident_fraction,
            baseline=real.confident_fraction,
            baseline_name="real digits",
            unit="share",
            ratio=made.confident_fraction / real.confident_fraction,
            goal="closer to real than before (0.43-0.48)",
            met=made.confident_fraction > 0.48,
            notes=cost,
        ),
        Result(
            name="digits-rarest-class",
            value=made.rarest_class_share,
            baseline=real.rarest_class_share,
            baseline_name="real digits",
            unit="of uniform",
            ratio=made.rarest_class_share / real.rarest_class_share,
            goal=">= 0.5",
            met=made.rarest_class_share >= 0.5,
            notes=f"confident samples per class {made.class_counts}",
        ),
        Result(
            name="digits-frechet",
            value=made.frechet_distance,
            baseline=real.frechet_distance,
            baseline_name=f"{SAMPLES} real digits",
            unit="",
            ratio=made.frechet_distance / max(real.frechet_distance, 1e-9),
            goal="lower is closer to real",
            met=True,
            notes="Fréchet distance between the classifier's class scores, to all real digits",
        ),
    ]


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
