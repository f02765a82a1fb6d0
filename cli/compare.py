"""``atelier compare ID ID...``: runs side by side, one column each: the parameters that
differ between them and their final metrics (``GET /v1/jobs/compare``)."""

from __future__ import annotations

import json
from typing import Any

import click

from atelier.client_types import ComparedRun, Comparison

from ..shared.job_compare import MAX_RUNS, MIN_RUNS, flatten
from .terminal import call

MISSING = "-"


def comparison_table(found: Comparison) -> list[str]:
    """The table's lines: a header of run ids, names and statuses, then a row per differing
    parameter and per final metric (``-`` where a run has none)."""
    runs = found["data"]
    rows: list[tuple[str, list[str]]] = [
        ("job", [run["id"] for run in runs]),
        ("name", [run["name"] or MISSING for run in runs]),
        ("status", [run["status"] for run in runs]),
    ]
    flat = [flatten(run["params"]) for run in runs]
    rows += [(f"params.{key}", [_value(f, key) for f in flat]) for key in found["differing_params"]]
    rows += [(name, [_metric(run, name) for run in runs]) for name in _metric_names(runs)]
    first = max(len(label) for label, _ in rows)
    widths = [max(len(cells[i]) for _, cells in rows) for i in range(len(runs))]
    return [
        "  ".join(
            [label.ljust(first), *(c.ljust(w) for c, w in zip(cells, widths, strict=True))]
        ).rstrip()
        for label, cells in rows
    ]


def _value(flat: dict[str, Any], key: str) -> str:
    if key not in flat:
        return MISSING
    value = flat[key]
    return value if isinstance(value, str) else json.dumps(value)


def _metric_names(runs: list[ComparedRun]) -> list[str]:
    return sorted({name for run in runs for name in run["metrics"]})


def _metric(run: ComparedRun, name: str) -> str:
    value = run["metrics"].get(name)
    return f"{value:.5g}" if value is not None else MISSING


@click.command("compare")
@click.argument("job_ids", nargs=-1, required=True)
def compare(job_ids: tuple[str, ...]) -> None:
    """Compare 2 to 8 runs: the parameters that differ and the final metrics."""
    from .main import _client

    if not MIN_RUNS <= len(job_ids) <= MAX_RUNS:
        raise click.UsageError(f"give {MIN_RUNS} to {MAX_RUNS} job ids; got {len(job_ids)}")
    client = _client()
    found = call(lambda: client.compare(job_ids))
    for line in comparison_table(found):
        click.echo(line)
    if not found["differing_params"]:
        click.echo("(the runs' parameters are all the same)")
