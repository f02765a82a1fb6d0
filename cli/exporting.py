"""``atelier export MODEL``: what ``GET /v1/models/{id}/export`` answers, saved to a file."""

from __future__ import annotations

from pathlib import Path

import click

from atelier.client_models import EXPORT_FORMATS

from .terminal import call


@click.command("export")
@click.argument("model_ref")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(EXPORT_FORMATS),
    default="keras",
    show_default=True,
    help="keras: model.keras for keras.saving.load_model; savedmodel: a TF SavedModel "
    "for TF Serving.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The zip to write (default: MODEL-FORMAT.zip here).",
)
@click.option("--timeout", type=float, default=600.0, show_default=True)
def export(model_ref: str, export_format: str, output: Path | None, timeout: float) -> None:
    """Save a model (an id, NAME:N or NAME:latest) as a zip that loads without Atelier:
    the network, its tokenizer or vocabulary, generate.py and a README. The first export
    of a model waits while a worker makes it."""
    from .main import _client

    client = _client()
    path = call(lambda: client.export_model(model_ref, export_format, output, timeout=timeout))
    click.echo(f"{path} ({path.stat().st_size:,} bytes)")
