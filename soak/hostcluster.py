"""The cluster soak's three hosts (``./dev soak --hosts 3``): network namespaces on one
bridge (``soak.hosts``), every process of a host running inside its namespace and every
connection made to the hosts' own addresses:

    host1  the Redis primary, a sentinel, an API, a training worker
    host2  the Redis replica, a sentinel, an API, SeaweedFS, a generation worker
    host3  a sentinel, two training workers

Atelier's processes start as its containers do: ``deploy/boot.sh api`` and
``deploy/boot.sh worker --queues …``, with the variables compose gives them under its HA
file: ``deploy/atelier.env``, then ``ATELIER_REDIS_URL`` naming the three sentinels,
``ATELIER_REDIS_MIN_REPLICAS=1`` and the S3 endpoint and identity, then the soak's
shorter timings (``SOAK_TIMING``), over a login's environment. A supervisor thread
restarts an API or a worker that exits, as each machine's process manager would; the
Redis nodes and SeaweedFS are started again by the faults that stop them
(``soak.host_faults``).
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from atelier.cli.datadir import write_private
from atelier.cli.processes import ManagedProcess, stop_together, wait_until
from atelier.cli.redis_ha import Address, RedisGroup, start_group
from atelier.cli.supervisor import RestartPolicy, Supervisor
from atelier.shared.auth import ApiKeyStore
from atelier.shared.durability import Durability
from atelier.shared.redis_client import redis_for
from atelier.shared.settings import Settings, env_name
from soak.host_s3 import HostSeaweed
from soak.hosts import Host, HostNetwork
from soak.job_processes import JobProcessFaults

LEASE_SECONDS = 8.0
"""Longer than a failover's pause in Redis writes (about 5 s after kill -9 here), so a
failover alone does not cost running jobs their attempt; a cut host's jobs lose theirs."""
REDIS_PORT, SENTINEL_PORT, API_PORT, METRICS_PORT = 6379, 26379, 8000, 9808
API_HOSTS = (1, 2)
WORKERS: tuple[tuple[str, int, str], ...] = (
    ("train", 1, "h1-train"),
    ("generate", 2, "h2-generate"),
    ("train", 3, "h3-train"),
    ("train", 3, "h3-train-2"),
)
"""(queue role, host number, worker name)."""
TRAIN_WORKERS = tuple(name for role, _, name in WORKERS if role == "train")
ALL_WORKERS = tuple(name for _, _, name in WORKERS)
BARE_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
"""What a host's processes inherit besides Atelier's variables: what a login gives."""
REPO = Path(__file__).resolve().parent.parent
BOOT = REPO / "deploy" / "boot.sh"
"""The containers' entry point: ``boot.sh api`` and ``boot.sh worker --queues …``."""
DEPLOY_ENV = REPO / "deploy" / "atelier.env"
"""Atelier's settings in compose (its ``env_file``), no secret in it."""
SOAK_TIMING: dict[str, object] = {
    "lease_seconds": LEASE_SECONDS,
    "reaper_interval_seconds": 0.5,
    "lost_message_seconds": 5.0,
    "retry_backoff_seconds": 0.5,
    "max_attempts": 4,
    "upload_retry_seconds": 60.0,
    "progress_interval_seconds": 0.2,
    "cancel_check_interval_seconds": 0.2,
    "reads_per_minute": 60_000,
    "reads_burst": 10_000,
}
"""What the soak changes, as an operator's .env would: short leases, retries and checks,
so faults show within seconds; reads unlimited (the watcher polls every job twice a
second)."""


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as compose reads an ``env_file`` (blank lines and ``#``
    comments skipped, values taken as they are)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value
    return pairs


@dataclass
class HostCluster(JobProcessFaults):
    root: Path
    network: HostNetwork = field(default_factory=lambda: HostNetwork(3))
    processes: list[ManagedProcess] = field(default_factory=list)
    """The APIs and workers (supervised)."""
    group: RedisGroup | None = None
    s3: HostSeaweed | None = None
    environment: dict[str, str] = field(default_factory=dict)
    """The ``ATELIER_*`` variables every host's processes get."""
    settings: Settings = field(init=False)
    restarts_said: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _supervising: threading.Thread | None = None

    @property
    def hosts(self) -> list[Host]:
        return self.network.hosts

    def host(self, number: int) -> Host:
        return self.hosts[number - 1]

    def start(self) -> None:
        """Network, Redis, SeaweedFS, then the APIs and workers; a failed start undoes
        itself (``stop``), so nothing of it outlives the call."""
        try:
            self.network.build()
            self._start_services()
            for number in API_HOSTS:
                self._start_api(self.host(number))
            for index, (role, number, name) in enumerate(WORKERS):
                self._start_worker(role, self.host(number), name, _port_on_host(index))
            wait_until(self._all_up, 180, "the APIs and workers")
        except BaseException:
            self.stop()
            raise
        self._supervising = threading.Thread(target=self._supervise, name="supervise", daemon=True)
        self._supervising.start()

    def _start_services(self) -> None:
        h1, h2, h3 = self.hosts
        password = secrets.token_hex(16)
        nodes = [Address(h.address, REDIS_PORT) for h in (h1, h2)]
        sentinels = [Address(h.address, SENTINEL_PORT) for h in (h1, h2, h3)]
        wraps: dict[Address, Sequence[str]] = {
            address: h.wrap()
            for h in self.hosts
            for address in (Address(h.address, REDIS_PORT), Address(h.address, SENTINEL_PORT))
        }
        self.group = start_group(
            Settings(), self.root / "redis", nodes, sentinels, password, wraps=wraps
        )
        access, secret = "soak", secrets.token_hex(16)
        self.s3 = HostSeaweed(h2, self.root / "host2" / "seaweedfs", access, secret, "soak")
        self.s3.start()
        self.environment = {
            **read_env_file(DEPLOY_ENV),
            # docker-compose.yml's secrets and docker-compose.ha.yml's Redis, for these hosts
            "ATELIER_REDIS_URL": self.group.url(),
            "ATELIER_REDIS_MIN_REPLICAS": "1",
            "ATELIER_S3_ENDPOINT_URL": self.s3.endpoint,
            "ATELIER_S3_BUCKET": "soak",
            "ATELIER_S3_ACCESS_KEY_ID": access,
            "ATELIER_S3_SECRET_ACCESS_KEY": secret,
            **{env_name(name): str(value) for name, value in SOAK_TIMING.items()},
        }
        self.settings = Settings.from_env(self.environment, api_url=self.api_urls()[0])

    def _host_env(self, host: Host, extra: dict[str, str] | None = None) -> dict[str, str]:
        """What a process of ``host`` starts with: a login's environment (with Atelier's
        ``atelier`` on PATH, as in its image), the cluster's variables, the host's own
        disk for data and metrics. Written to ``hostN/atelier.env`` (0600) to read."""
        directory = self.root / host.name
        env = {name: os.environ[name] for name in BARE_ENVIRONMENT if name in os.environ}
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
        env.update(self.environment)
        env["ATELIER_DATA_DIR"] = str(directory / "data")
        env["ATELIER_METRICS_DIR"] = str(directory / "metrics")
        env.update(extra or {})
        directory.mkdir(parents=True, exist_ok=True)
        lines = [f"{k}={v}" for k, v in env.items() if k.startswith("ATELIER_")]
        write_private(directory / "atelier.env", "\n".join(lines) + "\n")
        return env

    def _start_api(self, host: Host) -> None:
        """``boot.sh api``: gunicorn on 0.0.0.0:8000, every address of the host."""
        argv = [*host.wrap(), "sh", str(BOOT), "api"]
        self._child(f"api@{host.name}", host, argv, self._host_env(host))

    def _start_worker(self, role: str, host: Host, name: str, port: int) -> None:
        """``boot.sh worker --queues ROLE``, named (the hosts share one hostname, and a
        Celery node name is its queues and the hostname) and, beside another worker of
        its host, on a metrics port of its own."""
        argv = [*host.wrap(), "sh", str(BOOT), "worker", "--queues", role, "--name", name]
        env = self._host_env(host, {"ATELIER_WORKER_METRICS_PORT": str(port)})
        self._child(name, host, argv, env)

    def _child(self, name: str, host: Host, argv: list[str], env: dict[str, str]) -> None:
        log = self.root / host.name / "logs" / f"{name.split('@')[0]}.log"
        ManagedProcess(name, argv, env, log, registry=self.processes)

    def _all_up(self) -> bool:
        for process in self.processes:
            process.raise_if_exited(" at start")
        urls = [f"{url}/readyz" for url in self.api_urls()] + self.worker_metrics_urls()
        return all(requests.get(url, timeout=2).ok for url in urls)

    def _supervise(self) -> None:
        policy = RestartPolicy(max_crashes=10_000, first_backoff_seconds=0.5, max_backoff_seconds=2)
        supervisor = Supervisor(policy, self.restarts_said.append)
        while not self._stop.wait(0.5):
            supervisor.check(self.processes)

    def stop(self) -> None:
        """APIs, then workers, then SeaweedFS and Redis, then the network (which kills
        whatever still runs in a namespace). Safe after a failed start."""
        self._stop.set()
        if self._supervising is not None:
            self._supervising.join()
        try:
            stop_together([p for p in self.processes if p.name.startswith("api@")], 10)
            stop_together(self.processes, 10)
            if self.s3 is not None:
                self.s3.stop()
            if self.group is not None:
                self.group.stop()
        finally:
            self.network.teardown()

    # --- what the driver and the checks use ----------------------------------------------------
    def api_urls(self) -> list[str]:
        return [f"http://{self.host(n).address}:{API_PORT}" for n in API_HOSTS]

    def worker_metrics_urls(self) -> list[str]:
        return [
            f"http://{self.host(number).address}:{_port_on_host(index)}/metrics"
            for index, (_, number, _) in enumerate(WORKERS)
        ]

    def redis(self) -> redis.Redis:
        return redis_for(self.settings)

    def api_key(self, owner: str) -> str:
        """A key for ``owner``, held by the replica before it is handed out."""
        client = self.redis()
        key = ApiKeyStore(client).create(owner, name="soak")
        Durability(client, 1, 10.0).confirm("The soak's API key")
        return key

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.processes if p.name == name)



def _port_on_host(index: int) -> int:
    """A worker's metrics port: 9808 for the first worker of its host, then 9809, …"""
    number = WORKERS[index][1]
    return METRICS_PORT + sum(1 for _, n, _ in WORKERS[:index] if n == number)
