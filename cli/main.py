"""The ``atelier`` command."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from atelier.client import ApiError, Client, Json

from ..shared.job_records import WebhookEvent
from ..shared.settings import Settings
from .compare import compare
from .events import events
from .exporting import export
from .job_labels import jobs, label
from .keys import keys
from .processes import api_argv, child_env, worker_argv
from .removal import delete
from .sweeps import sweep
from .terminal import call, finish, wait_with_bar
from .usage import usage_table
from .webhooks import webhooks


def _settings() -> Settings:
    """The settings from the environment; a bad variable is one clear line naming it (and
    exit 1), not a traceback."""
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


def _client() -> Client:
    settings = _settings()
    if not settings.api_key:
        raise click.UsageError("Set ATELIER_API_KEY (printed by `atelier up` or `keys create`).")
    return Client(settings.api_url, settings.api_key)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group()
def main() -> None:
    """Atelier: durable generative-AI jobs."""


# --- servers ----------------------------------------------------------------------------------
@main.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
def api(bind: str, workers: int) -> None:
    """Run the HTTP API under gunicorn."""
    settings = _settings()
    argv = api_argv(bind, workers, settings.api_metrics_bind)
    os.execvpe(argv[0], argv, child_env(_own_metrics(settings, "api", 0)))


@main.command()
@click.option(
    "--queues",
    default="train,generate",
    show_default=True,
    help="Comma list of queue roles (train, generate, webhooks) or queue names.",
)
@click.option("--name", default=None, help="Celery node name prefix (default: the queues).")
@click.option(
    "--once", is_flag=True, help="Exit after one job (one Kubernetes Job per training job)."
)
@click.option(
    "--concurrency",
    default=1,
    show_default=True,
    help="Job processes per worker on CPU (GPUs always get one process each).",
)
def worker(queues: str, name: str | None, once: bool, concurrency: int) -> None:
    """Run Celery workers: one process per GPU when GPUs are present, else CPU."""
    from ..workers.gpu import visible_gpus

    settings = _settings()
    if once:
        settings = settings.replace(exit_after_job=True)
    roles = {
        "train": settings.train_queue,
        "generate": settings.generate_queue,
        "webhooks": settings.webhook_queue,
    }
    names = ",".join(roles.get(q.strip(), q.strip()) for q in queues.split(","))
    tag = name or queues.replace(",", "-")
    if settings.webhook_queue in names.split(","):
        _webhooks_worker(settings, names, tag)
    gpus = visible_gpus(settings.gpus)
    if not gpus:
        argv = worker_argv(names, f"{tag}-cpu", concurrency)
        own = _own_metrics(settings, f"worker-{tag}", settings.worker_metrics_port)
        os.execvpe(argv[0], argv, child_env(own, {"CUDA_VISIBLE_DEVICES": ""}))
    # One Celery worker per GPU, each with its own metrics port (base + index), under the
    # CLI's supervisor: a crashed one is restarted, a finished one (--once) is left.
    from .processes import ManagedProcess
    from .supervisor import RestartPolicy, run_supervised

    workers = [
        ManagedProcess(
            f"worker-{tag}-gpu{gpu}",
            worker_argv(names, f"{tag}-gpu{gpu}", 1),
            child_env(
                _own_metrics(
                    settings,
                    f"worker-{tag}-gpu{gpu}",
                    settings.worker_metrics_port + index if settings.worker_metrics_port else 0,
                ),
                {"CUDA_VISIBLE_DEVICES": gpu},
            ),
            log=None,
        )
        for index, gpu in enumerate(gpus)
    ]
    sys.exit(run_supervised(workers, RestartPolicy(clean_exit_is_done=True), click.echo))


def _webhooks_worker(settings: Settings, names: str, tag: str) -> None:
    """The webhooks queue gets a worker of its own: sending is waiting on receivers, so it
    runs on threads (``webhook_concurrency``), never in a job process, never on a GPU."""
    if names != settings.webhook_queue:
        raise click.UsageError("the webhooks queue runs in a worker of its own: --queues webhooks")
    argv = worker_argv(names, f"{tag}-threads", settings.webhook_concurrency, pool="threads")
    own = _own_metrics(settings, f"worker-{tag}", settings.worker_metrics_port)
    os.execvpe(argv[0], argv, child_env(own, {"CUDA_VISIBLE_DEVICES": ""}))


def _own_metrics(settings: Settings, name: str, port: int) -> Settings:
    """The multiprocess-metrics directory of one server process tree. Counters and
    histograms of its earlier processes stay, so a restarted worker's or API's totals go on
    instead of resetting (the soak compares them with its own ledger); live gauges of
    processes that are gone would read as still running, so those files go."""
    import tempfile

    base = Path(settings.metrics_dir or Path(tempfile.gettempdir()) / "atelier-metrics")
    directory = base / name
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("gauge_live*.db"):
        stale.unlink(missing_ok=True)
    return settings.replace(metrics_dir=str(directory), worker_metrics_port=port)


@main.command()
@click.option("--port", default=8000, show_default=True)
@click.option("--demo/--no-demo", default=False, help="Train a digits GAN and generate from it.")
@click.option("--demo-steps", default=None, type=int, help="Training steps for the demo.")
@click.option("--exit-after-demo", is_flag=True, help="Stop the stack when the demo is done.")
def up(port: int, demo: bool, demo_steps: int | None, exit_after_demo: bool) -> None:
    """Start Redis, workers and the API under ATELIER_DATA_DIR, restarting any that crash;
    Ctrl-C stops them all."""
    from .stack import EmbeddedStack
    from .up import run_up

    run_up(EmbeddedStack(_settings(), port=port), demo, demo_steps, exit_after_demo)


# --- jobs -------------------------------------------------------------------------------------
def _parse_params(pairs: tuple[str, ...]) -> Json:
    params: Json = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@main.command()
@click.argument("job_type", type=click.Choice(["train", "generate"]))
@click.option("--kind", default="dcgan", show_default=True)
@click.option("--param", "-p", "pairs", multiple=True, help="key=value (JSON values allowed)")
@click.option(
    "--init-model",
    default=None,
    metavar="REF",
    help="Training: continue this model (id, name:latest or name:N); same as -p init_model=REF.",
)
@click.option("--wait", "wait_for_it", is_flag=True, help="Wait with a progress bar.")
@click.option("--name", default=None, help="What to call the run (to find it by).")
@click.option("--tag", "tags", multiple=True, help="A tag to find it by (repeat it).")
@click.option("--notes", default=None, help="Free-text notes.")
@click.option("--webhook", default=None, help="URL told about the job's events (signed POSTs).")
@click.option(
    "--webhook-event",
    "webhook_events",
    multiple=True,
    type=click.Choice([e.value for e in WebhookEvent]),
    help="An event the webhook hears (repeat it); default: all.",
)
def submit(
    job_type: str,
    kind: str,
    pairs: tuple[str, ...],
    init_model: str | None,
    wait_for_it: bool,
    webhook: str | None,
    webhook_events: tuple[str, ...],
    **labels: Any,
) -> None:
    """Submit a job and print its id; ``labels``: its name, tags and notes."""
    client = _client()
    if webhook_events and not webhook:
        raise click.UsageError("--webhook-event needs --webhook")
    hooks: dict[str, Any] = {"webhook": webhook} if webhook else {}
    if webhook and webhook_events:
        hooks["webhook_events_filter"] = list(webhook_events)
    labels["tags"] = list(labels["tags"]) or None
    params = _parse_params(pairs)
    if init_model is not None:
        if job_type != "train":
            raise click.UsageError("--init-model continues a model: it needs a train job")
        params["init_model"] = init_model
    job = call(lambda: client.submit(job_type, kind, params, **labels, **hooks))
    click.echo(job["id"])
    if wait_for_it:
        finish(wait_with_bar(client, job["id"]))


@main.command()
@click.argument("job_id")
def status(job_id: str) -> None:
    """Print a job as JSON."""
    client = _client()
    _echo_json(call(lambda: client.get(job_id)))


@main.command("wait")
@click.argument("job_id")
def wait_cmd(job_id: str) -> None:
    """Wait for a job with a live progress bar; exit 1 unless it succeeded."""
    finish(wait_with_bar(_client(), job_id))


@main.command()
@click.argument("job_id")
def cancel(job_id: str) -> None:
    """Cancel a queued or running job."""
    client = _client()
    job = call(lambda: client.cancel(job_id))
    click.echo(
        f"{job['id']}: {job['status']}" + (" (stopping)" if job["status"] == "running" else "")
    )


@main.command()
@click.argument("job_id")
@click.option("--out", "-o", default=".", show_default=True, type=click.Path(file_okay=False))
def download(job_id: str, out: str) -> None:
    """Download every output of a job into a directory."""
    client = _client()
    job = call(lambda: client.get(job_id))
    for path in client.download(job, Path(out) / job_id):
        click.echo(str(path))


@main.group()
def datasets() -> None:
    """Upload, list and delete datasets."""


@datasets.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--title", default="", help="A name to show (default: the file name).")
@click.option(
    "--image-size",
    type=click.Choice(["28", "32", "64"]),
    default="28",
    show_default=True,
    help="Images are resized to this.",
)
@click.option(
    "--channels",
    type=click.Choice(["1", "3"]),
    default="1",
    show_default=True,
    help="1 = grayscale, 3 = RGB.",
)
def datasets_upload(path: str, title: str, image_size: str, channels: str) -> None:
    """Upload a .zip of images (a folder per class labels them), a .npz of images (a
    `labels` array labels them), a UTF-8 .txt corpus or ABC tunes; prints its id."""
    from tqdm import tqdm

    client = _client()
    with tqdm(
        total=Path(path).stat().st_size, unit="B", unit_scale=True, desc=Path(path).name
    ) as bar:

        def progress(sent: int, total: int) -> None:
            bar.total = total
            bar.update(sent - bar.n)

        dataset = call(
            lambda: client.upload_dataset(
                path,
                title=title,
                image_size=int(image_size),
                channels=int(channels),
                on_progress=progress,
            )
        )
    click.echo(dataset["name"])


@datasets.command("list")
def datasets_list() -> None:
    """Built-in datasets and yours."""
    for d in call(_client().datasets):
        shape = f"{d['image_size']}px x{d['channels']}" if d["modality"] == "image" else ""
        classes = f"  ({d['classes']} classes)" if d.get("classes") else ""
        click.echo(
            f"{d['name']:<28} {d['modality']:<6} {d['count']:>9} {shape:<10} {d['title']}{classes}"
        )


@datasets.command("delete")
@click.argument("name")
def datasets_delete(name: str) -> None:
    """Delete one of your uploads (refused while a queued or running job reads it)."""
    try:
        _client().delete_dataset(name)
    except ApiError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"deleted {name}")


@main.command()
@click.argument("job_id")
def logs(job_id: str) -> None:
    """Print a job's log lines."""
    client = _client()
    for line in call(lambda: client.logs(job_id)):
        click.echo(line)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The API's answer as JSON.")
def usage(as_json: bool) -> None:
    """Your quotas (use and limit), rate budgets (what is left) and share of the workers."""
    answer = call(_client().usage)
    click.echo(json.dumps(answer, indent=2) if as_json else usage_table(answer))


@main.command()
def models() -> None:
    """The caller's trained models."""
    client = _client()
    for model in call(client.models):
        metrics = " ".join(f"{k}={v:.3f}" for k, v in model["metrics"].items())
        parent = model.get("parent")
        origin = f"  from {parent['model_id']}" if parent else ""
        click.echo(
            f"{model['id']}  {model['kind']}  {model['dataset']}  {model['steps']} steps  "
            f"{metrics}{origin}"
        )


@main.command()
@click.option("--limit", default=50, show_default=True, help="Newest events to show.")
def audit(limit: int) -> None:
    """Your audit trail, newest first: submits, cancels, deletes and key changes."""
    client = _client()
    for event in call(lambda: client.audit(limit)):
        when = datetime.fromtimestamp(event.pop("at"), UTC).strftime("%Y-%m-%d %H:%M:%S")
        rest = " ".join(f"{k}={v}" for k, v in event.items() if k not in ("action", "actor"))
        click.echo(f"{when}  {event['action']:<15}{event['actor']:<18}{rest}")


main.add_command(keys)
main.add_command(events)
main.add_command(webhooks)
main.add_command(delete)
main.add_command(export)
main.add_command(jobs)
main.add_command(jobs, "list")
main.add_command(label)
main.add_command(compare)
main.add_command(sweep)

if __name__ == "__main__":
    main()
