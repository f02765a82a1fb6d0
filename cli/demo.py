"""The demo ``atelier up --demo`` runs: train a DCGAN on the built-in digits, generate
from it, download the images and say whether they read as digits."""

from __future__ import annotations

import zipfile
from pathlib import Path

import click
import numpy as np
from PIL import Image

from atelier.client import Client, Job, Json

from .terminal import wait_with_bar


def run_demo(client: Client, out_dir: Path, steps: int | None) -> Job:
    params: Json = {"dataset": "digits"}
    if steps:
        params["steps"] = steps
    train = client.submit("train", "dcgan", params)
    click.echo(f"training job {train['id']} (dcgan on digits)")
    train = wait_with_bar(client, train["id"])
    if train["status"] != "succeeded" or train["model_id"] is None:
        raise click.ClickException(f"training ended {train['status']}: {train['error']}")
    model = client.model(train["model_id"])
    click.echo(
        f"model {model['id']}: " + ", ".join(f"{k}={v:.3f}" for k, v in model["metrics"].items())
    )

    generate = client.submit("generate", "dcgan", {"model_id": model["id"], "n": 100, "seed": 7})
    generate = client.wait(generate["id"])
    if generate["status"] != "succeeded":
        raise click.ClickException(f"generation ended {generate['status']}")
    paths = client.download(generate, out_dir / generate["id"])
    grid = next(p for p in paths if p.name == "grid.png")
    # Past 64 images the job stores one images.zip; unpack it beside the grid.
    for archive in [p for p in paths if p.name == "images.zip"]:
        with zipfile.ZipFile(archive) as images:
            images.extractall(archive.parent)
            paths += [archive.parent / name for name in images.namelist()]
        paths.remove(archive)
    click.echo(f"generated {len(paths) - 1} images in {grid.parent}")
    click.echo(f"  grid: {grid}")
    click.echo(
        f"  grid URL: {next(o['url'] for o in generate['outputs'] if o['name'] == 'grid.png')}"
    )
    classes = int((model.get("config") or {}).get("classes", 0))
    _report_quality(sorted(p for p in paths if p.name != "grid.png"), classes)
    return generate


def _report_quality(paths: list[Path], classes: int) -> None:
    """What the classifier reads; for a conditional model (images drawn every class in
    turn: 0000.png a 0, 0001.png a 1, …) also whether each is the digit it was asked for."""
    from ..workers.quality import digit_report

    images = np.stack([np.asarray(Image.open(p), dtype=np.float32) for p in paths])
    drawn_as = np.array([int(p.stem) % classes for p in paths]) if classes else None
    report = digit_report(images[..., np.newaxis] / 127.5 - 1.0, drawn_as)
    click.echo(
        f"  a digits classifier reads {report.confident_fraction:.0%} of them confidently, "
        f"covering {report.classes_seen}/10 classes: {report.class_counts}"
    )
    if report.agreement is not None:
        click.echo(f"  {report.agreement:.0%} of those are the digit they were drawn as")
