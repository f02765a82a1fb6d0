"""``./dev soak``: a seeded chaos soak against a real cluster.

    ./dev soak --minutes 30 --seed 7

Three owners submit a mixed stream (tiny training jobs, generation jobs from their models,
cancels, idempotent re-submits) while a seeded schedule injects faults: kill -9 of a job
process, SIGTERM and restart of a worker under its node name, SIGSTOP of a job process
past its lease, kill -9 of Redis (restarted on its append-only file), the S3 server
stopped for 10-30 s, the API restarted, and a worker node in its own network namespace cut
off for longer than a lease (where namespaces can be made). Then the faults stop, the jobs
drain, and the invariants are checked against the driver's own ledger. Prints a table;
exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from atelier.client import Client
from soak.checks import check_all
from soak.cluster import Cluster
from soak.faults import FaultInjector, measure_recovery
from soak.ledger import Ledger
from soak.netns import IsolatedWorker
from soak.workload import OWNERS, Watcher, Workload


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./dev soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="time under faults")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs-per-minute", type=float, default=20.0)
    parser.add_argument(
        "--fault-every",
        type=float,
        nargs=2,
        default=(5.0, 12.0),
        metavar=("MIN", "MAX"),
        help="seconds between faults, drawn uniformly",
    )
    parser.add_argument("--drain-seconds", type=float, default=240.0)
    parser.add_argument("--no-netns", action="store_true", help="skip the partitioned node")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM unwinds like Ctrl-C, so the cluster (and any namespace) is always torn down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ledger, text = soak(parse(argv))
    print(text)
    return 1 if ledger.violations else 0


def soak(args: argparse.Namespace) -> tuple[Ledger, str]:
    """Run one soak; its ledger (faults, jobs, violations) and the printed report."""
    with tempfile.TemporaryDirectory(prefix="atelier-soak-") as root:
        ledger, started = Ledger(), time.time()
        cluster = Cluster(Path(root))
        cluster.start()
        isolated = _isolated_worker(cluster, args.no_netns)
        try:
            _run(cluster, ledger, args, isolated)
        finally:
            if isolated is not None:
                isolated.stop()
            cluster.stop()
    return ledger, report(ledger, time.time() - started, cluster.restarts_said)


def _isolated_worker(cluster: Cluster, disabled: bool) -> IsolatedWorker | None:
    reason = "--no-netns" if disabled else IsolatedWorker.available()
    if reason is not None:
        print(f"soak: no partitioned node ({reason}); the cut-network fault is skipped")
        return None
    isolated = IsolatedWorker(str(os.getpid()))
    redis_port = int(cluster.settings.redis_url.rsplit(":", 1)[1].split("/")[0])
    log = cluster.stack.data_dir / "logs" / "worker-isolated.log"
    cluster.stack.processes.append(
        isolated.start(cluster.settings, redis_port, cluster.s3.port, log)
    )
    cluster.extra_metrics.append(isolated.metrics_url)
    return isolated


def _run(
    cluster: Cluster, ledger: Ledger, args: argparse.Namespace, isolated: IsolatedWorker | None
) -> None:
    clients = {o: Client(cluster.settings.api_url, cluster.api_key(o), timeout=10) for o in OWNERS}
    workload = Workload(ledger, clients, args.seed, args.jobs_per_minute)
    watcher = Watcher(ledger, clients)
    faults = FaultInjector(cluster, ledger, args.seed, tuple(args.fault_every), isolated)
    for thread in (workload, watcher, faults):
        thread.start()
    time.sleep(args.minutes * 60)
    for thread in (workload, faults):
        thread.stop_event.set()
    for thread in (workload, faults):
        thread.join()
    deadline = time.monotonic() + args.drain_seconds
    while ledger.active() and time.monotonic() < deadline:
        time.sleep(1)
    watcher.stop_event.set()
    watcher.join()
    watcher.poll_once()
    measure_recovery(ledger)
    check_all(cluster, ledger)


def report(ledger: Ledger, seconds: float, restarts: list[str]) -> str:
    outcomes = ledger.outcomes()
    lost = sum(1 for e in ledger.entries.values() if e.final in (None, "vanished"))
    twice = sum(1 for v in ledger.violations if "earlier attempt wrote" in v)
    recovered = [f.recovered - f.ended for f in ledger.faults if f.recovered is not None]
    lines = [
        f"## Chaos soak: {seconds / 60:.1f} min, {len(ledger.entries)} jobs, "
        f"{len(ledger.faults)} faults, {len(restarts)} supervised restarts",
        "",
        "| Jobs | succeeded | failed | canceled | expired | unfinished |",
        "|---|---|---|---|---|---|",
    ]
    for job_type in ("train", "generate"):
        row = [outcomes[(job_type, s)] for s in ("succeeded", "failed", "canceled", "expired")]
        unfinished = outcomes[(job_type, "unfinished")] + outcomes[(job_type, "vanished")]
        lines.append(f"| {job_type} | " + " | ".join(map(str, row)) + f" | {unfinished} |")
    lines += ["", "| Fault | count |", "|---|---|"]
    for kind, count in sorted(Counter(f.kind for f in ledger.faults).items()):
        lines.append(f"| {kind} | {count} |")
    unrecovered = sum(1 for f in ledger.faults if f.recovered is None)
    reasons = Counter(
        (e.error or "?").split(":", 1)[0] for e in ledger.entries.values() if e.final == "failed"
    )
    lines += [
        "",
        "Failed jobs by error: " + (", ".join(f"{k} {v}" for k, v in reasons.items()) or "none"),
    ]
    lines += [
        "",
        f"- cancels accepted: {ledger.cancels}; idempotent re-submits: {ledger.replays}",
        f"- lost: {lost}; run twice: {twice}",
        "- worst time from a fault's end to progress: "
        + (f"{max(recovered):.1f} s" if recovered else "n/a")
        + f" (median {sorted(recovered)[len(recovered) // 2]:.1f} s)" * bool(recovered)
        + (f"; {unrecovered} faults with no progress after them" if unrecovered else ""),
        f"- violations: {len(ledger.violations)}",
    ]
    lines += [f"  - {v}" for v in ledger.violations[:50]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
