"""The sweep pages: the caller's sweeps, and one sweep's trials ranked by a final metric
with a link to compare the best of them (``/compare``, up to 8). Rendered from what
``GET /v1/sweeps`` and ``GET /v1/sweeps/{id}`` answer."""

from __future__ import annotations

import json
import re

from flask import abort, render_template, request

from ...shared.errors import NotFound
from ...shared.job_compare import MAX_RUNS, MIN_RUNS
from ...shared.job_search import SORT_PATTERN
from ...shared.sweeps import SweepStore, status_counts, trial_views
from ..auth import current_owner
from ..services import services
from ..sweep_schemas import SweepOut
from ..views.sweeps import owned_sweep, present_sweep
from .blueprint import dashboard

PAGE_SWEEPS = 50


@dashboard.get("/sweeps")
def sweeps() -> str:
    """The caller's newest sweeps, each with its trials counted by status."""
    svc = services()
    records, _ = SweepStore(svc.redis).page(current_owner(), PAGE_SWEEPS)
    rows = [(r, status_counts(trial_views(svc.jobs, r))) for r in records]
    return render_template("sweeps.html", rows=rows)


@dashboard.get("/sweeps/<sweep_id>")
def sweep(sweep_id: str) -> str:
    """One sweep's trials ranked by ``?metric=`` (default ``val_loss``, smallest first)."""
    metric = request.args.get("metric", "val_loss").strip() or None
    if metric is not None and not re.fullmatch(SORT_PATTERN, metric):
        metric = None
    try:
        found = present_sweep(services(), owned_sweep(sweep_id), metric)
    except NotFound:
        abort(404)
    return render_template(
        "sweep.html",
        sweep=found,
        metric=metric or "",
        metric_names=metric_names(found),
        compare_ids=top_ids(found),
        values=lambda v: " ".join(f"{k}={json.dumps(x)}" for k, x in v.items()),
    )


def top_ids(found: SweepOut) -> str:
    """The ids of the best trials (up to 8) that exist, comma-separated; empty when fewer
    than two would be compared."""
    ids = [t.job_id for t in found.trials if t.status is not None][:MAX_RUNS]
    return ",".join(ids) if len(ids) >= MIN_RUNS else ""


def metric_names(found: SweepOut) -> list[str]:
    """The final metrics any trial has, for the ranking's choice."""
    return sorted({name for t in found.trials for name in t.metrics})
