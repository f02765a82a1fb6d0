"""``atelier jobs`` (also ``atelier list``): find jobs by tag, name, kind, status, dataset,
sorted by a final metric; and ``atelier label``: rename, retag or annotate a job."""

from __future__ import annotations

from typing import Any

import click

from atelier.client import Job

from .terminal import call, preparing_detail


def job_line(job: Job, metric: str | None) -> str:
    """One row: id, type, kind, status, progress or the sorted metric, name and tags. A
    queued job shows "-", not "0%"; a job preparing its data says so, and what it does,
    its count and ETA close the row ("building the folk corpus 340/1,000 tunes, ETA 40s")."""
    preparing = preparing_detail(job["progress"]) if job["status"] == "running" else None
    if metric:
        value = job["metrics"].get(metric.removeprefix("-"))
        measure = f"{value:>9.4g}" if value is not None else f"{'-':>9}"
    elif preparing is not None:
        measure = "preparing"
    elif job["status"] == "queued":
        measure = f"{'-':>9}"  # not started: "0%" read as stuck
    else:
        measure = f"{job['progress']['fraction']:>9.0%}"
    tags = " ".join(f"#{t}" for t in job["tags"])
    name = job["name"] or ""
    line = (
        f"{job['id']}  {job['type']:<8} {job['kind']:<8} {job['status']:<9} {measure}  "
        f"{job['created_at'][:19]}  {name} {tags}".rstrip()
    )
    return f"{line}  [{preparing}]" if preparing is not None else line


@click.command("jobs")
@click.option("--tag", default=None, help="Only jobs with this tag.")
@click.option("--name", "name_prefix", default=None, help="Only jobs whose name starts so.")
@click.option("--status", "status_filter", default=None)
@click.option("--type", "type_filter", default=None)
@click.option("--kind", default=None)
@click.option("--dataset", default=None, help="Only jobs that train on this dataset.")
@click.option("--sort", default=None, help="A final metric: val_loss (smallest first), -val_loss.")
@click.option("--limit", default=20, show_default=True)
def jobs(sort: str | None, limit: int, **filters: Any) -> None:
    """The caller's jobs, newest first (or by --sort), with names and tags."""
    from .main import _client

    client = _client()
    query = {
        "tag": filters["tag"],
        "name_prefix": filters["name_prefix"],
        "status": filters["status_filter"],
        "type": filters["type_filter"],
        "kind": filters["kind"],
        "dataset": filters["dataset"],
    }
    page = call(lambda: client.jobs(sort=sort, limit=limit, **query))
    for job in page["data"]:
        click.echo(job_line(job, sort))


@click.command("label")
@click.argument("job_id")
@click.option("--name", default=None, help='A new name ("" removes it).')
@click.option("--tag", "tags", multiple=True, help="The job's tags from now on (repeat it).")
@click.option("--add-tag", "added", multiple=True, help="A tag to add (repeat it).")
@click.option("--remove-tag", "removed", multiple=True, help="A tag to remove (repeat it).")
@click.option("--no-tags", is_flag=True, help="Remove every tag.")
@click.option("--notes", default=None, help='New notes ("" removes them; @FILE reads a file).')
def label(
    job_id: str,
    name: str | None,
    tags: tuple[str, ...],
    added: tuple[str, ...],
    removed: tuple[str, ...],
    no_tags: bool,
    notes: str | None,
) -> None:
    """Rename, retag or annotate a job (any status); prints its labels."""
    from .main import _client

    client = _client()
    change: dict[str, Any] = {}
    if name is not None:
        change["name"] = name or None
    if notes is not None:
        change["notes"] = _text(notes) or None
    if tags or added or removed or no_tags:
        base = [] if no_tags else list(tags) or call(lambda: client.get(job_id))["tags"]
        change["tags"] = [t for t in [*base, *added] if t not in removed]
    if not change:
        raise click.UsageError("say what to change: --name, --tag, --add-tag, --notes...")
    job = call(lambda: client.update_job(job_id, **change))
    tagged = " ".join("#" + t for t in job["tags"])
    click.echo(f"{job['id']}: {job['name'] or '(no name)'} {tagged}".rstrip())


def _text(value: str) -> str:
    if value.startswith("@"):
        with open(value[1:], encoding="utf-8") as handle:
            return handle.read()
    return value
