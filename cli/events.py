"""``atelier events``: follow a job (or all of yours) live, as the dashboard does."""

from __future__ import annotations

import json
import time
from typing import cast

import click

from atelier.client import Client, Event, Progress

from .terminal import preparing_line


def describe(event: Event) -> str:
    """One line a person reads: time, job, what happened."""
    data = event["data"]
    what = event["event"]
    if what == "progress" and (preparing := preparing_line(cast(Progress, data))):
        detail = preparing
    elif what == "progress":
        metrics = " ".join(f"{k}={v:.4g}" for k, v in data.get("metrics", {}).items())
        detail = f"step {data['step']}/{data['total']} {metrics}".rstrip()
    elif what == "output":
        detail = f"{data['name']} ({data['content_type']}, {data['size_bytes']} bytes)"
    elif what == "log":
        detail = data["line"]
    else:
        detail = data["status"] + (f": {data['error']['message']}" if data.get("error") else "")
    return f"{time.strftime('%H:%M:%S')} {data['job']} {what:<8} {detail}"


@click.command("events")
@click.argument("job_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--last-event-id", default=None, help="Resume after this event id.")
def events(job_id: str | None, as_json: bool, last_event_id: str | None) -> None:
    """Follow JOB_ID's events until it ends, or every job's events (Ctrl-C stops)."""
    from .main import _client

    client: Client = _client()
    for event in client.events(job_id, last_event_id=last_event_id):
        click.echo(json.dumps(event) if as_json else describe(event))
