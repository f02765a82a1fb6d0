"""What the CLI and the demo print: API errors as usage errors, a live progress bar, the
end of a job. Both import it, so neither imports the other."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import click

from atelier.client import ApiError, Client, Job

T = TypeVar("T")


def call(fn: Callable[[], T]) -> T:
    """Run one client call; an API error becomes a one-line CLI error (exit 1)."""
    try:
        return fn()
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc


def wait_with_bar(client: Client, job_id: str) -> Job:
    """Wait for a job with a tqdm bar of its steps and latest metrics (on stderr)."""
    from tqdm import tqdm

    with tqdm(total=1, unit="step", desc=job_id, dynamic_ncols=True) as bar:

        def update(job: Job) -> None:
            progress = job["progress"]
            if progress["total"] and bar.total != progress["total"]:
                bar.reset(total=progress["total"])
            bar.n = progress["step"] if progress["total"] else bar.n
            metrics = {k: f"{v:.3f}" for k, v in progress["metrics"].items()}
            bar.set_postfix(status=job["status"], **metrics, refresh=False)
            bar.refresh()

        return call(lambda: client.wait(job_id, on_update=update))


def finish(job: Job) -> None:
    """Print how a job ended; exit 1 unless it succeeded."""
    click.echo(f"{job['id']}: {job['status']}")
    error = job.get("error")
    if error:
        click.echo(f"  {error['type']}: {error['message']}")
    if job.get("model_id"):
        click.echo(f"  model: {job['model_id']}")
    if job["status"] != "succeeded":
        sys.exit(1)
