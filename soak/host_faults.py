"""The cluster soak's faults, one at a time on a seeded schedule: today's, against the
hosts' processes, and those only several hosts have.

    kill-job-process    kill -9 of a running job's process
    pause-job-process   SIGSTOP of one past its lease, then SIGCONT (it must find itself
                        fenced off)
    restart-worker      SIGTERM to a worker (it drains); its supervisor starts it again
    restart-api         SIGTERM to one of the two APIs
    kill-primary        kill -9 of the Redis primary: the sentinels promote the replica;
                        then the killed node is started again as a replica of the new
                        primary (``RedisGroup.start_again``, as a supervisor's script would)
    restart-sentinel    a sentinel stopped and started on its own config
    restart-s3          SeaweedFS stopped (SIGTERM) for 2-15 s and started on its data
    cut-host            a whole host's link down for 1.5-2.5 leases, then up; the primary's
                        host too, and then the old primary must rejoin as a replica
                        (demoted by the sentinels, else started again as one)

Each failover is timed (``ledger.Failover``): until the sentinels agree on a new primary,
and until a write is confirmed by a replica again.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from typing import cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from atelier.cli.redis_acl import ATELIER_USER
from atelier.cli.redis_ha import QUORUM, SERVICE, Address, RedisGroup, RedisNode
from atelier.shared.durability import Durability
from atelier.shared.redis_client import connect_quickly
from soak.faults import job_process_fault
from soak.hostcluster import ALL_WORKERS, API_HOSTS, LEASE_SECONDS, HostCluster
from soak.ledger import Failover, Fault, Ledger

KINDS = (
    "kill-job-process",
    "pause-job-process",
    "restart-worker",
    "restart-api",
    "kill-primary",
    "restart-sentinel",
    "restart-s3",
    "cut-host",
)
PROMOTION_SECONDS = 60.0
"""How long the sentinels get to agree on a new primary before it counts as a violation."""
REJOIN_SECONDS = 20.0
"""How long a primary that was cut off gets to turn replica by itself."""


class HostFaultInjector(threading.Thread):
    def __init__(
        self,
        cluster: HostCluster,
        ledger: Ledger,
        seed: int,
        every: tuple[float, float],
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        super().__init__(name="faults", daemon=True)
        self.cluster = cluster
        self.ledger = ledger
        self.rng = random.Random(seed ^ 0x5EED)
        self.every = every
        self.kinds = kinds
        self.stop_event = threading.Event()

    @property
    def group(self) -> RedisGroup:
        assert self.cluster.group is not None
        return self.cluster.group

    def run(self) -> None:
        """Faults until stopped, each logged as it ends; one that cannot be made (the
        sentinels never agree) is a violation and ends the faults: what follows would
        not be the cluster the soak describes."""
        while not self.stop_event.wait(self.rng.uniform(*self.every)):
            kind = self.rng.choice(self.kinds)
            try:
                fault = self.inject(kind)
            except Exception as exc:
                self.ledger.violation(f"fault {kind} could not be made: {exc!r}")
                return
            fault.ended = time.time()
            with self.ledger.lock:
                self.ledger.faults.append(fault)
            took = fault.ended - fault.started
            print(f"soak: {fault.kind} {fault.target} ({took:.0f} s)", flush=True)

    def inject(self, kind: str) -> Fault:
        started = time.time()
        if kind in ("kill-job-process", "pause-job-process"):
            job_id = job_process_fault(self.cluster, kind, self.rng, LEASE_SECONDS * 2.5)
            if job_id is not None:
                return Fault(kind, job_id, started)
            kind = "restart-worker"
        if kind == "restart-worker":
            name = self.rng.choice(ALL_WORKERS)
            self.cluster.process(name).signal_group(signal.SIGTERM)
            return Fault(kind, name, started)
        if kind == "restart-api":
            name = f"api@host{self.rng.choice(API_HOSTS)}"
            self.cluster.process(name).signal_group(signal.SIGTERM)
            return Fault(kind, name, started)
        faults = {
            "kill-primary": self._kill_primary,
            "restart-sentinel": self._restart_sentinel,
            "restart-s3": self._restart_s3,
            "cut-host": self._cut_host,
        }
        return Fault(kind, faults[kind](), started)

    def _kill_primary(self) -> str:
        old = self._primary()
        node = self.group.node_at(old)
        failover = Failover("kill-primary", time.time())
        node.kill()
        new = self._await_promotion(old, failover)
        self._start_as_replica(node)
        self._await_confirmed(failover)
        return f"{old} -> {new}"

    def _cut_host(self) -> str:
        host = self.rng.choice(self.cluster.hosts)
        seconds = LEASE_SECONDS * self.rng.uniform(1.5, 2.5)
        old = self._primary()
        held = old.host == host.address
        failover = Failover(f"cut {host.name}", time.time())
        self.cluster.network.cut(host)
        try:
            if held:
                self._await_promotion(old, failover)
            time.sleep(max(0.0, failover.started + seconds - time.time()))
        finally:
            self.cluster.network.restore(host)
        if held:
            self._rejoin(self.group.node_at(old))
            self._await_confirmed(failover)
        return f"{host.name} ({seconds:.0f} s)" + " with the primary" * held

    def _restart_sentinel(self) -> str:
        sentinel = self.rng.choice(self.group.sentinels)
        sentinel.process.stop(5)
        time.sleep(self.rng.uniform(1, 3))
        self.group.start_again(sentinel)
        return f"sentinel at {sentinel.address}"

    def _restart_s3(self) -> str:
        assert self.cluster.s3 is not None
        seconds = self.rng.uniform(2, 15)
        self.cluster.s3.stop()
        time.sleep(seconds)
        self.cluster.s3.start()  # same data and port: every object it took is there
        return f"seaweedfs ({seconds:.0f} s)"

    # --- failovers --------------------------------------------------------------------------
    def _primary(self, everyone: bool = False) -> Address:
        """The primary a quorum of sentinels (or ``everyone`` that answers) names,
        waiting (bounded) until they agree."""
        deadline = time.monotonic() + PROMOTION_SECONDS
        while time.monotonic() < deadline:
            agreed = agreed_primary(self.group, everyone)
            if agreed is not None:
                return agreed
            time.sleep(0.2)
        raise RuntimeError("the sentinels never agreed on a primary")

    def _await_promotion(self, old: Address, failover: Failover) -> Address | None:
        self.ledger.failovers.append(failover)
        deadline = time.monotonic() + PROMOTION_SECONDS
        while time.monotonic() < deadline:
            new = agreed_primary(self.group)
            if new is not None and new != old:
                failover.promoted_after = time.time() - failover.started
                return new
            time.sleep(0.2)
        self.ledger.violation(f"{failover.cause}: no replica promoted in {PROMOTION_SECONDS} s")
        return None

    def _rejoin(self, node: RedisNode) -> None:
        """A primary that was cut off turns replica once the sentinels see it again; if it
        has not within ``REJOIN_SECONDS``, it is started again as one."""
        deadline = time.monotonic() + REJOIN_SECONDS
        while time.monotonic() < deadline:
            if _role(self.group, node) == "slave":
                return
            time.sleep(0.5)
        self._start_as_replica(node)

    def _start_as_replica(self, node: RedisNode) -> None:
        self._primary(everyone=True)  # so start_again, asking the first, reads the new one
        self.group.start_again(node)

    def _await_confirmed(self, failover: Failover) -> None:
        durability = Durability(connect_quickly(self.group.url(), seconds=2), 1, 1.0)
        deadline = time.monotonic() + PROMOTION_SECONDS
        while time.monotonic() < deadline:
            if durability.confirmed():
                failover.confirmed_after = time.time() - failover.started
                return
            time.sleep(0.2)
        self.ledger.violation(f"{failover.cause}: no write confirmed {PROMOTION_SECONDS} s on")


def agreed_primary(group: RedisGroup, everyone: bool = False) -> Address | None:
    """The primary named by a quorum of the sentinels (or by ``everyone`` that answers),
    else None."""
    named: Counter[Address] = Counter()
    for sentinel in group.sentinels:
        client = _quick(sentinel.address)
        try:
            found = cast(tuple[str, int] | None, client.sentinel_get_master_addr_by_name(SERVICE))
        except redis.RedisError:
            continue
        if found is not None:
            named[Address(str(found[0]), int(found[1]))] += 1
    if not named:
        return None
    address, votes = named.most_common(1)[0]
    needed = sum(named.values()) if everyone else QUORUM
    return address if votes >= needed else None


def _role(group: RedisGroup, node: RedisNode) -> str | None:
    client = _quick(node.address, username=ATELIER_USER, password=group.password)
    try:
        return str(client.info("replication").get("role"))
    except redis.RedisError:
        return None


def _quick(
    address: Address, username: str | None = None, password: str | None = None
) -> redis.Redis:
    """A client that fails at once: redis-py's default retries a connection ten times
    with backoff, about 35 s for a host that is cut off."""
    return redis.Redis(
        address.host,
        address.port,
        socket_timeout=1,
        socket_connect_timeout=1,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
        username=username,
        password=password,
    )
