"""``atelier webhooks``: the signing secret of your webhooks, and a job's deliveries."""

from __future__ import annotations

import click

from atelier.client import Client


def _client() -> Client:
    from .main import _client as client

    return client()


@click.group("webhooks")
def webhooks() -> None:
    """Your webhooks (docs/api.md, "Webhooks"). Set one per job: `atelier submit --webhook URL`."""


@webhooks.command("secret")
@click.option("--rotate", is_flag=True, help="Make a new secret (the old one stops at once).")
def secret(rotate: bool) -> None:
    """Print the secret that signs your webhooks (verify with a Standard Webhooks library)."""
    from .terminal import call

    client = _client()
    click.echo(call(lambda: client.webhook_secret(rotate=rotate)))


@webhooks.command("list")
@click.argument("job_id")
def deliveries(job_id: str) -> None:
    """JOB_ID's webhook deliveries, newest first: id, event, status, attempts, last error."""
    from .terminal import call

    client = _client()
    for delivery in call(lambda: client.webhooks(job_id)):
        status = delivery["last_status_code"] or "-"
        error = delivery["last_error"] or ""
        click.echo(
            f"{delivery['id']}  {delivery['event']:<9} {delivery['status']:<9} "
            f"attempts={delivery['attempts']} http={status} {error}".rstrip()
        )
