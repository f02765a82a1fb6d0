"""The compare page: 2 to 8 runs picked on the job list, side by side. The table and the
samples are rendered here from what ``GET /v1/jobs/compare`` answers; the page's script
draws the curves from that route."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, render_template, request

from ...shared.errors import NotFound
from ...shared.job_compare import MAX_RUNS, MIN_RUNS, flatten, parse_ids
from ..views.compare import ComparedRun, JobComparison, comparison
from .blueprint import dashboard

MISSING = "\u2013"  # an en dash, as the job pages show a missing value


@dashboard.get("/compare")
def compare() -> str | tuple[str, int]:
    """``?ids=a,b`` or ``?ids=a&ids=b`` (the job list's checkboxes send the second)."""
    given = ",".join(request.args.getlist("ids"))
    try:
        job_ids = parse_ids(given)
    except ValueError as error:
        page = render_template("compare.html", error=str(error), low=MIN_RUNS, high=MAX_RUNS)
        return page, 422
    try:
        found = comparison(job_ids)
    except NotFound:
        abort(404)
    return render_template(
        "compare.html",
        runs=found.data,
        ids=",".join(job_ids),
        params=param_rows(found),
        metrics=metric_rows(found.data),
    )


def param_rows(found: JobComparison) -> list[tuple[str, list[str]]]:
    """A row per differing parameter: its dotted key, then each run's value as text."""
    flat = [flatten(run.params) for run in found.data]
    return [(key, [_shown(f, key) for f in flat]) for key in found.differing_params]


def metric_rows(runs: list[ComparedRun]) -> list[tuple[str, list[str]]]:
    """A row per final metric any run has (a dash where a run has none)."""
    names = sorted({name for run in runs for name in run.metrics})
    return [
        (name, [f"{run.metrics[name]:.5g}" if name in run.metrics else MISSING for run in runs])
        for name in names
    ]


def _shown(flat: dict[str, Any], key: str) -> str:
    if key not in flat:
        return MISSING
    value = flat[key]
    return value if isinstance(value, str) else json.dumps(value)
