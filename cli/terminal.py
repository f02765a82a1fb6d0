"""What the CLI and the demo print: API errors as usage errors, a live progress bar, the
end of a job. Both import it, so neither imports the other."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import click

from atelier.client import ApiError, Client, Job, Progress

T = TypeVar("T")


def call(fn: Callable[[], T]) -> T:
    """Run one client call; an API error becomes a one-line CLI error (exit 1)."""
    try:
        return fn()
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc


def format_eta(seconds: float | None) -> str:
    """``1m10s``, ``2h05m``, ``45s``; empty when unknown."""
    if seconds is None:
        return ""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def preparing_line(progress: Progress) -> str | None:
    """``preparing: building the folk corpus 120/400 tunes, ETA 1m10s`` while the job
    prepares its data; None otherwise (a record or server without phases too)."""
    detail = preparing_detail(progress)
    return f"preparing: {detail}" if detail is not None else None


def preparing_detail(progress: Progress) -> str | None:
    """``building the folk corpus 1,200/4,000 tunes, ETA 1m10s``: the phase, its count and
    its ETA while the job prepares its data; None otherwise."""
    if progress.get("phase") != "preparing":
        return None
    line = progress.get("label") or "the data"
    if progress.get("items_total"):
        line += f" {progress.get('items_done') or 0:,}/{progress['items_total']:,}"
        line += f" {progress.get('unit') or ''}".rstrip()
    eta = format_eta(progress.get("eta_seconds"))
    return f"{line}, ETA {eta}" if eta else line


def wait_with_bar(client: Client, job_id: str) -> Job:
    """Wait for a job with a tqdm bar (on stderr): its preparation's count while it
    prepares its data, then its steps and latest metrics."""
    from tqdm import tqdm

    with tqdm(total=1, unit="step", desc=job_id, dynamic_ncols=True) as bar:

        def update(job: Job) -> None:
            progress = job["progress"]
            preparing = preparing_line(progress)
            if preparing is not None:
                bar.total = progress.get("items_total") or 1
                bar.n = progress.get("items_done") or 0
                bar.set_description_str(f"{job_id} {preparing}", refresh=False)
                bar.set_postfix(status=job["status"], refresh=False)
                bar.refresh()
                return
            bar.set_description_str(job_id, refresh=False)
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
