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

    ./dev soak --hosts 3 --minutes 30

runs it across three hosts made of network namespaces instead (``soak.hosts_soak``):
Redis through Sentinel, failovers, hosts cut off whole. It needs root; without, it says
why and exits 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from atelier.client import Client
from soak.checks import check_all
from soak.cluster import Cluster
from soak.faults import FaultInjector, measure_recovery
from soak.ledger import Ledger
from soak.netns import IsolatedWorker
from soak.report import report
from soak.workload import OWNERS, drive


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
    parser.add_argument(
        "--hosts", type=int, choices=(1, 3), default=1, help="3: the cluster soak (needs root)"
    )
    parser.add_argument("--faults", default="", help="comma list: only these faults (--hosts 3)")
    parser.add_argument(
        "--keep", default="", help="keep data and logs in this directory (--hosts 3)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    # SIGTERM unwinds like Ctrl-C, so the cluster (and any namespace) is always torn down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args = parse(argv)
    if args.hosts == 1:
        ledger, text = soak(args)
    else:
        from soak.hosts_soak import soak_hosts

        try:
            ledger, text = soak_hosts(args)
        except (RuntimeError, ValueError) as exc:
            print(f"soak: {exc}", file=sys.stderr)
            return 2
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
    faults = FaultInjector(cluster, ledger, args.seed, tuple(args.fault_every), isolated)
    drive(ledger, clients, faults, args)
    measure_recovery(ledger)
    check_all(cluster, ledger)


if __name__ == "__main__":
    sys.exit(main())
