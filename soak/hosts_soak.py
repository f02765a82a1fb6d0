"""``./dev soak --hosts 3``: the chaos soak across three hosts.

The cluster is ``soak.hostcluster`` (three network namespaces on a bridge, Redis through
Sentinel with writes confirmed by a replica, SeaweedFS, two APIs, four workers); the
driver runs in the root namespace and spreads its requests across both APIs, going on to
the other when one cannot be reached. The faults are ``soak.host_faults``; the
invariants are today's (``soak.checks``), which include that no acknowledged job is lost
across failovers and that no job holds writes of two attempts (``soak.writers``).

Everything the run made (namespaces, bridge, processes) is removed on its way out, on
Ctrl-C and SIGTERM too; a run killed with -9 is swept by the next one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from atelier.client import Client
from soak.checks import check_all
from soak.faults import measure_recovery
from soak.host_faults import KINDS, HostFaultInjector
from soak.hostcluster import HostCluster
from soak.hosts import unavailable
from soak.ledger import Ledger
from soak.report import failover_lines, report
from soak.spread import SpreadClient
from soak.workload import OWNERS, drive

HOSTS = 3


def soak_hosts(args: argparse.Namespace) -> tuple[Ledger, str]:
    """Run one cluster soak; its ledger and the printed report. RuntimeError when
    namespaces cannot be made here (the message says why)."""
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(f"the cluster soak needs network namespaces: {reason}")
    kinds = tuple(args.faults.split(",")) if args.faults else KINDS
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown faults {sorted(unknown)}; the cluster soak has {KINDS}")
    with tempfile.TemporaryDirectory(prefix="atelier-soak-hosts-") as scratch:
        root = Path(args.keep) if args.keep else Path(scratch)
        ledger, started = Ledger(), time.time()
        cluster = HostCluster(root)
        cluster.start()
        try:
            print(f"soak: hosts up at {', '.join(h.address for h in cluster.hosts)}", flush=True)
            clients: dict[str, Client] = {
                owner: SpreadClient(cluster.api_urls(), cluster.api_key(owner), ledger, timeout=10)
                for owner in OWNERS
            }
            every = tuple(args.fault_every)
            faults = HostFaultInjector(cluster, ledger, args.seed, (every[0], every[1]), kinds)
            drive(ledger, clients, faults, args)
            measure_recovery(ledger)
            check_all(cluster, ledger)
        finally:
            cluster.stop()
    text = report(ledger, time.time() - started, cluster.restarts_said, failover_lines(ledger))
    return ledger, text
