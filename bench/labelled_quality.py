"""Does a labelled upload train a better GAN than the same images unlabelled? (issue 25,
point 5)

Two labelled datasets are made from scikit-learn's handwritten digits (public domain: the
UCI "Optical Recognition of Handwritten Digits" set, shipped inside the scikit-learn
wheel; nothing is downloaded), each in one of the upload formats:

- ``digits-folders``: all 1,797 digits as a ``.zip`` of 8x8 PNGs, one folder per digit
  (``0/0001.png`` … ``9/…``), which the API resizes to 28x28;
- ``four-names``: the 0s, 1s, 7s and 8s (720 images) as a ``.npz`` of 28x28 images
  (upscaled as the built-in ``digits`` are) with string labels ``"zero"``, ``"one"``,
  ``"seven"``, ``"eight"``: classes numbered by name (eight, one, seven, zero).

Each is read by the API's own upload check (``api.ingest.normalise_upload``: the layout and
labels checked, every image decoded and resized), scaled as a training job scales it, and
trained twice in this process by the kind's own trainer (``train_without_job``) with the
default recipe and the same steps: once with its labels (a conditional DCGAN, what an
upload trains by default now) and once without (``conditional: false``: the same images
unlabelled, what an upload trained before). 1,000 images of each generator a generation
job would use are read by ``workers.quality``'s digits classifier (a logistic regression
on the real 8x8 digits):

- **confident**: the share it reads with probability >= 0.7 (real digits: ~87%);
- **balance**: the rarest of the dataset's classes among the confident images, over an
  even share (1.0: even; 0: a class never drawn), and the confident images per class;
- **as asked** (conditional): the share of confident images read as the class they were
  drawn as (a generation job without labels draws every class in turn);
- **off-set**: the share of confident images read as a digit the dataset does not hold.

    python -m bench.labelled_quality --write   # both sets; writes results/labelled-uploads.md
    python -m bench.labelled_quality --only four-names --steps 600
"""

from __future__ import annotations

import argparse
import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.common import Result

SAMPLES = 1000
NAMES = {0: "zero", 1: "one", 7: "seven", 8: "eight"}
"""The second set's digits and the names its labels give them."""
STEPS = {"digits-folders": 1300, "four-names": 800}
"""Steps of both runs of a set: the default recipe's 1,300 on the full digits; fewer on the
smaller four-class set (720 images), to keep each run to a few CPU-minutes."""
RESULTS = Path(__file__).resolve().parent / "results" / "labelled-uploads.md"


@dataclass(frozen=True)
class LabelledSet:
    name: str
    filename: str
    data: bytes
    digit_of: tuple[int, ...]
    """The digit each class (by index) holds."""
    layout: str


@dataclass
class Run:
    dataset: str
    conditional: bool
    seed: int
    steps: int
    cpu_seconds: float
    seconds: float
    confident: float
    balance: float
    per_class: dict[str, int]
    as_asked: float | None
    off_set: float
    extra: dict[str, Any] = field(default_factory=dict)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    found = load_digits()
    return (found.images / 16.0 * 255.0).astype(np.uint8), found.target


def digits_folders() -> LabelledSet:
    """Every digit as an 8x8 PNG in its digit's folder (``7/0042.png``)."""
    images, targets = _digits()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (pixels, digit) in enumerate(zip(images, targets, strict=True)):
            png = io.BytesIO()
            Image.fromarray(pixels).save(png, format="PNG")
            archive.writestr(f"{digit}/{index:04d}.png", png.getvalue())
    return LabelledSet(
        "digits-folders", "digits.zip", buffer.getvalue(), tuple(range(10)), "zip, a folder a digit"
    )


def four_names() -> LabelledSet:
    """0s, 1s, 7s and 8s at 28x28 (bicubic, as the built-in) with their names as labels."""
    images, targets = _digits()
    chosen = np.isin(targets, list(NAMES))
    upscaled = np.stack(
        [
            np.asarray(Image.fromarray(p).resize((28, 28), Image.Resampling.BICUBIC))
            for p in images[chosen]
        ]
    )
    labels = np.array([NAMES[int(d)] for d in targets[chosen]])
    buffer = io.BytesIO()
    np.savez(buffer, images=upscaled, labels=labels)
    by_name = {name: digit for digit, name in NAMES.items()}
    digit_of = tuple(by_name[name] for name in sorted(by_name))  # classes sorted by name
    return LabelledSet("four-names", "four.npz", buffer.getvalue(), digit_of, "npz, string labels")


SETS: dict[str, Callable[[], LabelledSet]] = {
    "digits-folders": digits_folders,
    "four-names": four_names,
}


def uploaded(labelled: LabelledSet) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """The set as the API checks and stores it, scaled as a job reads it: [-1, 1] images,
    labels and class names."""
    from atelier.api.ingest import normalise_upload
    from atelier.api.upload_gate import UploadGate
    from atelier.shared.settings import Settings

    found = normalise_upload(labelled.filename, labelled.data, 28, 1, UploadGate(1), Settings())
    assert found.images is not None and found.classes is not None
    pixels = found.images.astype(np.float32) / 127.5 - 1.0
    return pixels, found.classes.labels, found.classes.names


def train_and_judge(labelled: LabelledSet, conditional: bool, steps: int, seed: int = 0) -> Run:
    from atelier.shared.kinds.dcgan import DcganTrainParams
    from atelier.workers.kinds.dcgan.inference import generate_images, labels_in_turn
    from atelier.workers.kinds.dcgan.training import DcganTrainer, TrainingImages
    from atelier.workers.training import train_without_job

    pixels, labels, names = uploaded(labelled)
    params = DcganTrainParams.model_validate(
        {"dataset": labelled.name, "steps": steps, "conditional": conditional, "seed": seed}
    )
    data = TrainingImages(pixels, labels, names) if conditional else TrainingImages(pixels)
    trainer = DcganTrainer(params, data)
    wall, cpu = time.perf_counter(), time.process_time()
    train_without_job(trainer)
    assert trainer.gan.config.classes == (len(names) if conditional else 0)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    z = np.random.default_rng(12345).standard_normal((SAMPLES, params.latent_dim))
    drawn = labels_in_turn(SAMPLES, len(names)) if conditional else None
    images = generate_images(trainer.gan.averaged, z.astype(np.float32), drawn)
    return judged(labelled, images, drawn, params, cpu, wall)


def judged(
    labelled: LabelledSet,
    images: np.ndarray,
    drawn: np.ndarray | None,
    params: Any,
    cpu: float,
    wall: float,
) -> Run:
    """The figures of ``images`` (drawn as the classes ``drawn``, if any) of a run of
    ``params`` (its dataset, conditional, seed and steps)."""
    from atelier.workers.quality import digit_report

    digit_of = np.array(labelled.digit_of)
    report = digit_report(images, digit_of[drawn] if drawn is not None else None)
    confident = sum(report.class_counts.values())
    held = {d: report.class_counts[d] for d in labelled.digit_of}
    even = sum(held.values()) / len(held)
    return Run(
        dataset=labelled.name,
        conditional=bool(params.conditional),
        seed=params.seed,
        steps=params.steps,
        cpu_seconds=round(cpu, 1),
        seconds=round(wall, 1),
        confident=round(report.confident_fraction, 3),
        balance=round(min(held.values()) / even, 3) if even else 0.0,
        per_class={str(d): held[d] for d in sorted(held)},
        as_asked=None if report.agreement is None else round(report.agreement, 3),
        off_set=round(1 - sum(held.values()) / confident, 3) if confident else 0.0,
        extra={"frechet": round(report.frechet_distance, 3)},
    )


def results(runs: list[Run]) -> list[Result]:
    """Per set, the labelled run beside the unlabelled one (the baseline), of the first seed."""
    found = []
    first = runs[0].seed if runs else 0
    for name in dict.fromkeys(run.dataset for run in runs):
        pair = {r.conditional: r for r in runs if r.dataset == name and r.seed == first}
        if len(pair) < 2:
            continue
        made, before = pair[True], pair[False]
        found += [
            Result(
                name=f"{name}-confident",
                value=made.confident,
                baseline=before.confident,
                baseline_name="the same images unlabelled",
                unit="share",
                ratio=made.confident / max(before.confident, 1e-9),
                goal="> the unlabelled run's",
                met=made.confident > before.confident,
                notes=f"{made.steps} steps each; as asked {made.as_asked}",
            ),
            Result(
                name=f"{name}-balance",
                value=made.balance,
                baseline=before.balance,
                baseline_name="the same images unlabelled",
                unit="of even",
                ratio=made.balance / max(before.balance, 1e-9),
                goal=">= 0.5",
                met=made.balance >= 0.5,
                notes=f"per class {made.per_class} against {before.per_class}",
            ),
        ]
    return found


def labelled_quality(size: str) -> list[Result]:
    """``./dev bench --only labelled-uploads``: both sets, labelled and not (``quick``: 200
    steps a run, to see it work, not to judge)."""
    return results(run_all(None, 200 if size == "quick" else None))


def run_all(only: list[str] | None, steps: int | None, seeds: tuple[int, ...] = (0,)) -> list[Run]:
    runs = []
    for seed in seeds:
        for name in only or list(SETS):
            labelled = SETS[name]()
            for conditional in (True, False):
                run = train_and_judge(labelled, conditional, steps or STEPS[name], seed)
                print(json.dumps(run.__dict__), flush=True)
                runs.append(run)
    return runs


def table(runs: list[Run]) -> str:
    lines = [
        "| Set | Labels | Seed | Steps | CPU s | Confident | Balance (rarest / even) "
        "| Per class (confident) | As asked | Off-set | Fréchet |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        asked = "—" if r.as_asked is None else f"{r.as_asked:.1%}"
        lines.append(
            f"| {r.dataset} | {'yes (conditional)' if r.conditional else 'no (unconditional)'} "
            f"| {r.seed} | {r.steps} | {r.cpu_seconds:.0f} | {r.confident:.1%} | {r.balance:.2f} "
            f"| {r.per_class} | {asked} | {r.off_set:.1%} | {r.extra['frechet']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=sorted(SETS))
    parser.add_argument("--steps", type=int, default=None, help="steps of every run")
    parser.add_argument("--seeds", default="0", help="comma list of seeds, each a full round")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.name}")
    args = parser.parse_args(argv)
    runs = run_all(args.only, args.steps, tuple(int(s) for s in args.seeds.split(",")))
    print(table(runs))
    if args.write:
        from bench.run import machine, markdown

        RESULTS.write_text(
            "# Labelled uploads: conditional against unlabelled\n\n"
            + "`python -m bench.labelled_quality --write` (bench/labelled_quality.py).\n\n"
            + markdown(results(runs), machine(), "full")
            + "\nEvery run (the table above is the first seed's). Fréchet is the distance between "
            + "the classifier's class scores of the images and of all ten real digits' (as in "
            + "digits-quality.md): comparable on digits-folders only.\n\n"
            + table(runs)
        )


if __name__ == "__main__":
    main()
