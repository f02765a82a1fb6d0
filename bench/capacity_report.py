"""``bench.capacity``'s figures: a row per phase, the commands a job costs, the ceiling they
project, and ``bench/results/capacity.md``."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import Result, percentile

if TYPE_CHECKING:
    from bench.capacity import Phase

REPORT = Path(__file__).resolve().parent / "results" / "capacity.md"
CPU = "~used_cpu"
"""The pseudo-command under which ``INFO cpu`` rides along with ``commandstats``."""
HEADROOM = 0.8
"""The share of Redis's one core a ceiling is drawn at: past it, latency climbs."""

Collected = list[tuple[str, dict[int, list[float]], dict[Any, int]]]
Moment = tuple[float, float, tuple[float, float]]


@dataclass(frozen=True)
class Row:
    workers: int
    phase: str
    offered: float
    replicas: int
    seconds: float
    submits_s: float
    refused: int
    claims_s: float
    picks_per_claim: float
    redis_cpu: float
    """Share of one core."""
    machine_busy: float
    """Share of all the machine's cores."""
    memory: int
    p50_claim_ms: float
    p99_claim_ms: float
    p50_submit_ms: float
    p99_submit_ms: float
    queued: int

    @staticmethod
    def of(
        workers: int,
        phase: Phase,
        index: int,
        measured: tuple[Moment, Moment, int, int],
        found: Collected,
        replicas: int,
    ) -> Row:
        (t0, cpu0, (busy0, all0)), (t1, cpu1, (busy1, all1)), memory, queued = measured
        wall = t1 - t0
        claims = [s for src, lat, _ in found if src == "worker" for s in lat.get(index, [])]
        submits = [s for src, lat, _ in found if src == "submit" for s in lat.get(index, [])]

        def count(what: str) -> int:
            return sum(
                n
                for _, _, counts in found
                for (i, w), n in counts.items()
                if i == index and w.startswith(what)
            )

        tries = count("claim") + count("empty")
        return Row(
            workers, phase.name, phase.rate, replicas, wall,
            count("http-2") / wall, count("http-") - count("http-2"), count("claim") / wall,
            count("pick") / tries if tries else 0.0,
            (cpu1 - cpu0) / wall, (busy1 - busy0) / max(all1 - all0, 1.0), memory,
            _ms(claims, 0.5), _ms(claims, 0.99), _ms(submits, 0.5), _ms(submits, 0.99), queued,
        )  # fmt: skip


def _ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000 if values else float("nan")


def busy_cost(rows: list[Row]) -> float:
    """Redis CPU (share of a core) one running job costs per second: the steady phases."""
    steady = [r for r in rows if r.phase == "steady" and r.replicas == 0]
    return sum(r.redis_cpu / r.workers for r in steady) / max(len(steady), 1)


def job_cost(commands: dict[str, Any]) -> float:
    """Redis CPU-seconds one job costs, submit to succeeded (a job that runs no time):
    ``used_cpu`` over the commands run, the workers' idle polling taken off."""
    return max(float(commands["cpu_per_job"]), 1e-9)


def ceiling(rows: list[Row], commands: dict[str, Any], workers: int) -> float:
    """Jobs a second one Redis takes at ``HEADROOM`` of its core beside ``workers`` running
    jobs, by Redis CPU alone (the claim's contention is another limit: see the rows)."""
    return max(HEADROOM - workers * busy_cost(rows), 0.0) / job_cost(commands)


def bytes_per_job(rows: list[Row]) -> float:
    """``used_memory`` growth per job submitted, over each worker count's churn phases
    (records never expire: a finished job keeps its record, events, log and history)."""
    grown, jobs = 0.0, 0.0
    for workers in {r.workers for r in rows if r.replicas == 0}:
        series = [r for r in rows if r.workers == workers and r.replicas == 0]
        grown += series[-1].memory - series[0].memory
        jobs += sum(r.submits_s * r.seconds for r in series[1:])
    return grown / max(jobs, 1.0)


def best(rows: list[Row], workers: int) -> Row:
    churn = [r for r in rows if r.workers == workers and r.phase != "steady" and r.replicas == 0]
    return max(churn, key=lambda row: row.claims_s)


def commands_table(
    marks: list[dict[str, tuple[int, int]]], jobs: int, idle_scale: float, ended: int
) -> dict[str, Any]:
    """Commands per job from four ``INFO commandstats`` readings: before the submits,
    after them, after the workers ran every job, and after as long again idle (scaled by
    ``idle_scale``: the workers' polling, taken off)."""
    names = sorted(set().union(*marks) - {"info", CPU})

    def delta(a: int, b: int, name: str, part: int = 0) -> float:
        return float(marks[b].get(name, (0, 0))[part] - marks[a].get(name, (0, 0))[part])

    table = []
    for name in names:
        submit = delta(0, 1, name) / jobs
        worker = max(delta(1, 2, name) - idle_scale * delta(2, 3, name), 0.0) / jobs
        if abs(submit) + abs(worker) >= 0.05:
            table.append((name, submit, worker))
    usec = sum(
        delta(0, 1, n, 1) + delta(1, 2, n, 1) - idle_scale * delta(2, 3, n, 1) for n in names
    )
    cpu = delta(0, 1, CPU) + delta(1, 2, CPU) - idle_scale * delta(2, 3, CPU)
    return {
        "rows": table,
        "jobs": jobs,
        "succeeded": ended,
        "usec_per_job": usec / jobs,
        "cpu_per_job": cpu / jobs / 1e6,
    }


def ratio_results(
    low: Row, high: Row, waits: list[Row], commands: dict[str, Any], rows: list[Row]
) -> list[Result]:
    on = [r for r in waits if r.replicas]
    off = [r for r in waits if not r.replicas]
    claims_off = sum(r.claims_s for r in off) / len(off)
    p99_off = sum(r.p99_submit_ms for r in off) / len(off)
    side = "Redis" if high.redis_cpu >= HEADROOM else "the simulators (client CPU)"
    total = sum(s + w for _, s, w in commands["rows"])
    return [
        Result(
            f"claims/s, {high.workers} simulated workers vs {low.workers}",
            high.claims_s, low.claims_s, f"{low.workers} workers, same Redis", "claims/s",
            high.claims_s / low.claims_s, ">= 4", high.claims_s / low.claims_s >= 4,
            f"at {high.phase}: Redis {high.redis_cpu:.0%} of a core, machine "
            f"{high.machine_busy:.0%}, so {side} saturated first; p99 claim "
            f"{high.p99_claim_ms:.1f} ms; by Redis CPU, {ceiling(rows, commands, 1000):.0f} "
            "jobs/s beside 1,000 running jobs",
        ),
        Result(
            "claims/s with WAIT for one replica vs without", on[0].claims_s, claims_off,
            "ATELIER_REDIS_MIN_REPLICAS=0, same primary and replica", "claims/s",
            on[0].claims_s / claims_off, ">= 0.9", on[0].claims_s / claims_off >= 0.9,
            f"p99 claim {on[0].p99_claim_ms:.1f} vs {off[0].p99_claim_ms:.1f} ms, p99 submit "
            f"{on[0].p99_submit_ms:.1f} vs {p99_off:.1f} ms, Redis CPU "
            f"{on[0].redis_cpu:.0%} vs {off[0].redis_cpu:.0%}",
        ),
        Result(
            "Redis commands per job, submit to succeeded", total, total, "(count)", "commands",
            1.0, "counted", commands["succeeded"] == commands["jobs"],
            f"{commands['succeeded']}/{commands['jobs']} succeeded; "
            f"{commands['usec_per_job']:.0f} µs of Redis command time per job",
        ),
    ]  # fmt: skip


def write_report(
    rows: list[Row], waits: list[Row], commands: dict[str, Any], size: str, load: float
) -> None:
    lines = [
        "# Capacity of one Redis",
        "",
        f"`./dev bench --only capacity --size {size}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{platform.platform()}, {os.cpu_count()} CPUs shared with the simulators "
        f"(a shared, noisy machine: load average {load:.2f} at the start).",
        "",
        "Redis CPU is a share of its one core; machine CPU a share of all cores. `steady`: "
        "every worker on a long job, no submits. Jobs last 1 s (2 progress writes).",
        "",
        "| Workers | Phase | Submits/s | Claims/s | Picks/claim | Redis CPU | Machine CPU "
        "| used_memory | p50 / p99 claim ms | p50 / p99 submit ms | Queued after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_line(r) for r in rows]
    lines += ["", "## WAIT for one replica", "", lines[6], lines[7]]
    lines += [_line(r) for r in waits]
    lines += ["", "## Redis commands per job", "", "| Command | Submit | Worker | Total |",
              "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {n} | {s:.1f} | {w:.1f} | {s + w:.1f} |" for n, s, w in commands["rows"]]
    total = sum(s + w for _, s, w in commands["rows"])
    lines += [
        f"| **all** | | | **{total:.1f}** |",
        "",
        f"{commands['succeeded']} of {commands['jobs']} jobs succeeded; "
        f"{commands['usec_per_job']:.0f} µs of Redis command time per job (commandstats). "
        + COMMANDS_NOTE,
        "",
        "## Model",
        "",
        f"- a running job costs Redis {busy_cost(rows) * 1e6:.0f} µs of CPU a second;",
        f"- a job, submit to succeeded, costs {job_cost(commands) * 1e6:.0f} µs beyond that "
        "(`used_cpu` over the commands run below), and "
        f"{bytes_per_job(rows) / 1024:.1f} KiB of `used_memory` that stays until retention;",
        f"- at {HEADROOM:.0%} of one core: "
        + ", ".join(
            f"{ceiling(rows, commands, n):.0f} jobs/s beside {n:,} running"
            for n in (256, 1000, 4000)
        )
        + ".",
    ]
    REPORT.write_text("\n".join(lines) + "\n")


COMMANDS_NOTE = (
    "Commands run inside Lua scripts (the claim's pick and start: `zrange`, `scard`, "
    "`hget`, `hset`, `zrem`, `xadd`...; the quota, rate-limit and progress scripts') "
    "count here as well as the `evalsha` that ran them, so this is work, not round "
    "trips (`python -m bench.roundtrip_count` counts those). Picks/claim in the rows "
    "is claim scripts per claim: the claim is one script with no lost race to retry, "
    "so 1.00 at any concurrency. Jobs of 0 s here: one progress write (the final one)."
)


def _line(r: Row) -> str:
    name = r.phase if not r.replicas else f"{r.phase} ({r.replicas} replica)"
    return (
        f"| {r.workers} | {name} | {r.submits_s:.1f} | {r.claims_s:.1f} | {r.picks_per_claim:.2f} "
        f"| {r.redis_cpu:.0%} | {r.machine_busy:.0%} | {r.memory / 2**20:.1f} MiB "
        f"| {r.p50_claim_ms:.1f} / {r.p99_claim_ms:.1f} | {r.p50_submit_ms:.1f} / "
        f"{r.p99_submit_ms:.1f} | {r.queued} |"
    )
