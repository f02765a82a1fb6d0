"""The table a soak prints at its end, from its ledger."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from soak.ledger import Ledger
from soak.writers import MARK

TWICE_MARKS = ("earlier attempt wrote", MARK)
"""Violations that mean a job's writes came from two attempts: it ran twice."""


def report(ledger: Ledger, seconds: float, restarts: list[str], extra: Sequence[str] = ()) -> str:
    """The jobs and faults tables, then ``extra`` lines, then the violations."""
    lines = [
        f"## Chaos soak: {seconds / 60:.1f} min, {len(ledger.entries)} jobs, "
        f"{len(ledger.faults)} faults, {len(restarts)} supervised restarts",
        "",
        *_jobs_table(ledger),
        "",
        "| Fault | count |",
        "|---|---|",
    ]
    for kind, count in sorted(Counter(f.kind for f in ledger.faults).items()):
        lines.append(f"| {kind} | {count} |")
    reasons = Counter(
        (e.error or "?").split(":", 1)[0] for e in ledger.entries.values() if e.final == "failed"
    )
    lines += [
        "",
        "Failed jobs by error: " + (", ".join(f"{k} {v}" for k, v in reasons.items()) or "none"),
        "",
        f"- cancels accepted: {ledger.cancels}; idempotent re-submits: {ledger.replays}",
        f"- lost: {lost(ledger)}; run twice: {run_twice(ledger)}",
        _recovery_line(ledger),
        *extra,
        f"- violations: {len(ledger.violations)}",
    ]
    lines += [f"  - {v}" for v in ledger.violations[:50]]
    return "\n".join(lines)


def lost(ledger: Ledger) -> int:
    """Accepted jobs that vanished or never finished."""
    return sum(1 for e in ledger.entries.values() if e.final in (None, "vanished"))


def run_twice(ledger: Ledger) -> int:
    """Jobs with writes of two attempts (each violation names its job first)."""
    return len({v.split(":", 1)[0] for v in ledger.violations if any(m in v for m in TWICE_MARKS)})


def failover_lines(ledger: Ledger) -> list[str]:
    """How many failovers, how long the sentinels took to promote a replica, how long
    until writes were confirmed again, and the longest any submit waited for its 2xx."""
    promoted = sorted(f.promoted_after for f in ledger.failovers if f.promoted_after is not None)
    confirmed = sorted(f.confirmed_after for f in ledger.failovers if f.confirmed_after is not None)
    waits = sorted(ledger.submit_waits)
    causes = Counter(f.cause.split(" ", 1)[0] for f in ledger.failovers)
    return [
        f"- jobs rewound past a checkpoint by a failover (unconfirmed progress lost): "
        f"{len(ledger.rewound_by_failovers)}",
        f"- failovers: {len(ledger.failovers)} ("
        + ", ".join(f"{cause} {n}" for cause, n in sorted(causes.items()))
        + f"); replica promoted after {_spread(promoted)}",
        f"- writes confirmed again after a failover began: {_spread(confirmed)}",
        f"- worst unavailability: a submit waited {_spread(waits)} for its 2xx "
        f"({ledger.unanswered_posts} sends unanswered or 5xx before one)",
    ]


def _spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"median {values[len(values) // 2]:.1f} s, worst {values[-1]:.1f} s"


def _jobs_table(ledger: Ledger) -> list[str]:
    outcomes = ledger.outcomes()
    lines = [
        "| Jobs | succeeded | failed | canceled | expired | unfinished |",
        "|---|---|---|---|---|---|",
    ]
    for job_type in ("train", "generate"):
        row = [outcomes[(job_type, s)] for s in ("succeeded", "failed", "canceled", "expired")]
        unfinished = outcomes[(job_type, "unfinished")] + outcomes[(job_type, "vanished")]
        lines.append(f"| {job_type} | " + " | ".join(map(str, row)) + f" | {unfinished} |")
    return lines


def _recovery_line(ledger: Ledger) -> str:
    recovered = sorted(f.recovered - f.ended for f in ledger.faults if f.recovered is not None)
    unrecovered = sum(1 for f in ledger.faults if f.recovered is None)
    return (
        "- worst time from a fault's end to progress: "
        + (f"{recovered[-1]:.1f} s" if recovered else "n/a")
        + f" (median {recovered[len(recovered) // 2]:.1f} s)" * bool(recovered)
        + (f"; {unrecovered} faults with no progress after them" if unrecovered else "")
    )
