"""``atelier sweep submit|show|list|cancel``: one base job over a grid or a random space of
its params (``POST /v1/sweeps``), the trials ranked by a final metric."""

from __future__ import annotations

import json
from typing import Any

import click

from atelier.client_types import Json, Sweep

from .terminal import call

MISSING = "-"


@click.group("sweep")
def sweep() -> None:
    """Sweeps: many trials of one job over a space of its params."""


@sweep.command("submit")
@click.argument("job_type", type=click.Choice(["train", "generate"]))
@click.option("--kind", default="dcgan", show_default=True)
@click.option("--param", "-p", "pairs", multiple=True, help="A base param: key=value (JSON).")
@click.option(
    "--grid",
    "grid_pairs",
    multiple=True,
    help="key=[v1,v2,...] (JSON list) or key=v1,v2: values to try (repeat for more keys).",
)
@click.option(
    "--random",
    "random_space",
    default=None,
    help='A random space as JSON: {"count": 8, "seed": 1, "params": {"lr": '
    '{"log_uniform": [1e-5, 1e-3]}}}',
)
@click.option("--name", default=None, help="What to call the sweep.")
@click.option("--tag", "tags", multiple=True, help="A tag every trial carries (repeat it).")
def submit_sweep(
    job_type: str,
    kind: str,
    pairs: tuple[str, ...],
    grid_pairs: tuple[str, ...],
    random_space: str | None,
    name: str | None,
    tags: tuple[str, ...],
) -> None:
    """Submit a sweep and print its id and its trials' job ids."""
    from .main import _client, _parse_params

    if bool(grid_pairs) == (random_space is not None):
        raise click.UsageError("give --grid (repeatable) or --random, not both")
    grid = {key: _values(raw) for key, raw in _split(grid_pairs)} if grid_pairs else None
    random = _json_object(random_space) if random_space is not None else None
    job: Json = {"tags": list(tags)} if tags else {}
    client = _client()
    found = call(
        lambda: client.sweep(
            job_type, kind, _parse_params(pairs), grid=grid, random=random, name=name, **job
        )
    )
    click.echo(found["id"])
    for trial in found["trials"]:
        click.echo(f"  {trial['job_id']}  {_shown(trial['values'])}")


@sweep.command("show")
@click.argument("sweep_id")
@click.option("--metric", default=None, help="Rank by this final metric (-name: largest first).")
@click.option("--json", "as_json", is_flag=True, help="Print the sweep as JSON.")
def show_sweep(sweep_id: str, metric: str | None, as_json: bool) -> None:
    """The sweep's trials, ranked by --metric (trial order without it)."""
    from .main import _client

    client = _client()
    found = call(lambda: client.get_sweep(sweep_id, metric=metric))
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    for line in sweep_table(found):
        click.echo(line)


@sweep.command("list")
def list_sweeps() -> None:
    """The caller's sweeps, newest first."""
    from .main import _client

    client = _client()
    for found in call(lambda: list(client.all_sweeps())):
        counts = ", ".join(f"{n} {status}" for status, n in sorted(found["status_counts"].items()))
        name = found["name"] or MISSING
        click.echo(f"{found['id']}  {name}  {found['trial_count']} trials: {counts}")


@sweep.command("cancel")
@click.argument("sweep_id")
def cancel_sweep(sweep_id: str) -> None:
    """Cancel every trial still queued or running."""
    from .main import _client

    client = _client()
    found = call(lambda: client.cancel_sweep(sweep_id))
    counts = ", ".join(f"{n} {status}" for status, n in sorted(found["status_counts"].items()))
    click.echo(f"{found['id']}: {counts}")


def sweep_table(found: Sweep) -> list[str]:
    """A row per trial, ranked: rank, trial index, job id, status, the metric, its values."""
    metric = (found["metric"] or "").removeprefix("-")
    header = ["rank", "trial", "job", "status", metric or "metrics", "values"]
    rows = [header]
    for rank, trial in enumerate(found["trials"], start=1):
        if metric:
            value = trial["metrics"].get(metric)
            shown = f"{value:.5g}" if value is not None else MISSING
        else:
            shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(trial["metrics"].items())) or MISSING
        status = trial["status"] or "deleted"
        rows.append(
            [
                str(rank),
                str(trial["index"]),
                trial["job_id"],
                status,
                shown,
                _shown(trial["values"]),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]


def _split(pairs: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=values", param_hint="--grid")
        out.append((key, raw))
    return out


def _values(raw: str) -> list[Any]:
    """``[1, 2]`` (a JSON list) or ``1,2`` (each part JSON if it parses, else text)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if isinstance(parsed, list):
        return parsed
    return [_one(part.strip()) for part in raw.split(",")]


def _one(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_object(raw: str) -> Json:
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--random") from exc
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--random")
    return parsed


def _shown(values: Json) -> str:
    return " ".join(f"{k}={json.dumps(v)}" for k, v in values.items())
