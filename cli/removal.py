"""``atelier delete job|model ID``: what ``DELETE /v1/jobs/{id}`` and ``/v1/models/{id}`` do."""

from __future__ import annotations

import click

from .terminal import call


@click.group("delete")
def delete() -> None:
    """Delete a finished job or a model, and what it stored."""


@delete.command("job")
@click.argument("job_id")
def delete_job(job_id: str) -> None:
    """Delete a finished job: its record, events, logs and outputs (a running one: cancel
    it first)."""
    from .main import _client

    client = _client()
    call(lambda: client.delete_job(job_id))
    click.echo(f"{job_id}: deleted")


@delete.command("model")
@click.argument("model_id")
def delete_model(model_id: str) -> None:
    """Delete a model and its weights."""
    from .main import _client

    client = _client()
    call(lambda: client.delete_model(model_id))
    click.echo(f"{model_id}: deleted")
