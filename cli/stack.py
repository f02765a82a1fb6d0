"""``atelier up``: Redis, workers, the API and local storage under one data directory."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from ..shared.auth import SCOPES, ApiKeyStore
from ..shared.redis_client import redis_for
from ..shared.settings import Settings
from .datadir import DataDirLock, private_dir, private_secret, write_private
from .processes import (
    ATELIER_COMMAND,
    ManagedProcess,
    child_env,
    free_port,
    start_redis,
    stop_together,
    wait_until,
)
from .supervisor import RestartPolicy, Supervisor

log = logging.getLogger(__name__)
LOCAL_OWNER = "local"
# In the data directory, each 0600: the first API key, and Redis's password (made on the
# first `up`; Redis only serves the ACL user `atelier` with it).
API_KEY_FILE = "api-key"
REDIS_PASSWORD_FILE = "redis-password"

# How long each part of the stack gets to stop before SIGKILL. The API finishes its
# requests in a few seconds. A worker drains: its running job checkpoints and goes back to
# the queue, which takes an upload of a checkpoint; past that it is stuck (a hung upload, or
# retrying a Redis that is gone). Redis only has to flush its append-only file.
API_STOP_SECONDS = 10.0
WORKER_STOP_SECONDS = 30.0
REDIS_STOP_SECONDS = 10.0
# Without Redis a worker cannot drain (the checkpoint pointer and the requeue are Redis
# writes), so waiting for it is pointless: its job is recovered by its lease on next start.
WORKER_STOP_SECONDS_WITHOUT_REDIS = 3.0


@dataclass
class EmbeddedStack:
    base: Settings
    port: int = 8000
    api_workers: int = 2
    processes: list[ManagedProcess] = field(default_factory=list)
    settings: Settings | None = None
    api_key: str = ""
    external_redis_url: str | None = None
    """Use this Redis instead of starting one (the test suite shares one server)."""
    owner: str = LOCAL_OWNER
    worker_metrics_ports: dict[str, int] = field(default_factory=dict)
    worker_roles: tuple[str, ...] = ("train", "generate", "webhooks")
    """Workers to start (the scale benchmark starts none, so jobs stay queued)."""
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    redis_admin_password: str = ""
    """The own Redis's ``default`` user's password, for the benchmarks' raw baselines
    (plain Celery, plain XREAD) that send commands Atelier's ACL user may not; empty (as
    ``atelier up`` runs): that user is off."""
    say: Callable[[str], None] = log.warning
    """Where supervision reports restarts (``atelier up`` prints them)."""
    _lock: DataDirLock | None = field(default=None, init=False, repr=False)
    _supervisor: Supervisor | None = field(default=None, init=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.base.data_dir.resolve()

    def start(self) -> Settings:
        """Take the data directory (``DataDirInUse`` at once if another stack has it), then
        start Redis, the workers and the API; a failed start stops what it started. The
        data directory is its owner's only (0700): it holds the API key, Redis's password
        and data (webhook signing secrets among it), and every object."""
        private_dir(self.data_dir)
        self._lock = DataDirLock(self.data_dir)
        self._lock.acquire(f"http://127.0.0.1:{self.port}")
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Settings:
        data = self.data_dir
        metrics_dir = data / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)  # per-run files, stale after a restart
        metrics_dir.mkdir()
        redis_url = self.external_redis_url
        if redis_url is None:
            _, redis_url = start_redis(
                self.base,
                data / "redis",
                free_port(),
                data / "logs" / "redis.log",
                pass_fds=self._pass_fds(),
                registry=self.processes,
                password=private_secret(data / REDIS_PASSWORD_FILE),
                admin_password=self.redis_admin_password,
            )
        settings = self.base.replace(
            redis_url=redis_url,
            broker_url="",
            local_storage_dir=data / "objects",
            metrics_dir=str(metrics_dir),
            api_url=f"http://127.0.0.1:{self.port}",
            worker_metrics_bind="127.0.0.1",
        )
        self.settings = settings
        self.api_key = self._api_key(settings)
        # The same commands an operator runs: `atelier worker` per queue, `atelier api`.
        for role in self.worker_roles:
            self.add_worker(role)
        api = [*ATELIER_COMMAND, "api", "--bind", f"127.0.0.1:{self.port}"]
        self._child("api", [*api, "--workers", str(self.api_workers)], child_env(settings))
        wait_until(self._ready, 60, "the API")
        return settings

    def add_worker(self, role: str) -> ManagedProcess:
        """Start one more `atelier worker` for ``role`` (train, generate or webhooks)."""
        assert self.settings is not None
        count = sum(1 for p in self.processes if p.name.startswith(f"worker-{role}"))
        name = f"worker-{role}" + (f"-{count + 1}" if count else "")
        port = free_port()
        self.worker_metrics_ports[name] = port
        process = self._child(
            name,
            [*ATELIER_COMMAND, "worker", "--queues", role, "--name", name],
            child_env(self.settings.replace(worker_metrics_port=port)),
        )
        return process

    def _child(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        """A child of the stack (in ``processes`` from the moment it starts), logging to
        ``logs/<name>.log`` and holding the data directory's lock too."""
        log_path = self.data_dir / "logs" / f"{name}.log"
        return ManagedProcess(name, argv, env, log_path, self._pass_fds(), self.processes)

    def _pass_fds(self) -> tuple[int, ...]:
        return (self._lock.fileno,) if self._lock is not None else ()

    def _ready(self) -> bool:
        """The API answers ready; a child that exited meanwhile ends the wait at once."""
        for process in self.processes:
            process.raise_if_exited(" at start")
        assert self.settings is not None
        return requests.get(f"{self.settings.api_url}/readyz", timeout=2).ok

    def _api_key(self, settings: Settings) -> str:
        """The key made on the first ``up``, kept (0600) in the data directory."""
        path = self.data_dir / API_KEY_FILE
        keys = ApiKeyStore(redis_for(settings))
        if path.exists():
            key = path.read_text().strip()
            if keys.lookup(key) is not None:
                return key
        key = keys.create(self.owner, name="atelier up", scopes=SCOPES)  # admin: the local owner
        write_private(path, key + "\n")
        return key

    def check_alive(self) -> None:
        """``ChildExited`` (with its log's tail) if any child has ended."""
        for process in self.processes:
            process.raise_if_exited(" unexpectedly")

    def supervise(self) -> None:
        """Restart crashed children (``supervisor.RestartPolicy``); call it every second
        or so while the stack runs. ``GaveUp`` when one will not stay up."""
        if self._supervisor is None:
            self._supervisor = Supervisor(self.restart_policy, self.say)
        self._supervisor.check(self.processes)

    @property
    def restarts(self) -> int:
        return self._supervisor.restarts if self._supervisor is not None else 0

    def stop(self) -> None:
        """API first (no new jobs), then the workers together (they drain), then Redis
        (which flushes its AOF); each gets a bounded grace, then SIGKILL to its whole
        process group. Safe to call again, and after a failed start."""
        api = [p for p in self.processes if p.name == "api"]
        own_redis = [p for p in self.processes if p.name == "redis"]
        workers = [p for p in self.processes if p not in api and p not in own_redis]
        stop_together(api, API_STOP_SECONDS)
        redis_gone = bool(own_redis) and not own_redis[0].alive()
        grace = WORKER_STOP_SECONDS_WITHOUT_REDIS if redis_gone else WORKER_STOP_SECONDS
        stop_together(workers, grace)
        stop_together(own_redis, REDIS_STOP_SECONDS)
        self.processes.clear()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
