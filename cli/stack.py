"""``atelier up``: Redis, workers, the API and local storage under one data directory."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

from atelier.cli.processes import (
    ATELIER_COMMAND,
    ManagedProcess,
    child_env,
    free_port,
    start_redis,
    wait_until,
)
from atelier.shared.auth import ApiKeyStore
from atelier.shared.settings import Settings

log = logging.getLogger(__name__)
LOCAL_OWNER = "local"


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
    worker_roles: tuple[str, ...] = ("train", "generate")
    """Workers to start (the scale benchmark starts none, so jobs stay queued)."""

    @property
    def data_dir(self) -> Path:
        return self.base.data_dir.resolve()

    def start(self) -> Settings:
        data = self.data_dir
        data.mkdir(parents=True, exist_ok=True)
        metrics_dir = data / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)  # per-run files, stale after a restart
        metrics_dir.mkdir()
        redis_url = self.external_redis_url
        if redis_url is None:
            redis_process, redis_url = start_redis(
                self.base, data / "redis", free_port(), data / "logs" / "redis.log"
            )
            self.processes.append(redis_process)
        settings = self.base.replace(
            redis_url=redis_url,
            broker_url="",
            local_storage_dir=data / "objects",
            metrics_dir=str(metrics_dir),
            api_url=f"http://127.0.0.1:{self.port}",
        )
        self.settings = settings
        self.api_key = self._api_key(settings)
        # The same commands an operator runs: `atelier worker` per queue, `atelier api`.
        for role in self.worker_roles:
            self.add_worker(role)
        self.processes.append(
            ManagedProcess(
                "api",
                [
                    *ATELIER_COMMAND,
                    "api",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--workers",
                    str(self.api_workers),
                ],
                child_env(settings),
                data / "logs" / "api.log",
            )
        )
        wait_until(self._ready, 60, "the API")
        return settings

    def add_worker(self, role: str) -> ManagedProcess:
        """Start one more `atelier worker` for ``role`` (train or generate)."""
        assert self.settings is not None
        count = sum(1 for p in self.processes if p.name.startswith(f"worker-{role}"))
        name = f"worker-{role}" + (f"-{count + 1}" if count else "")
        port = free_port()
        self.worker_metrics_ports[name] = port
        process = ManagedProcess(
            name,
            [*ATELIER_COMMAND, "worker", "--queues", role, "--name", name],
            child_env(self.settings.replace(worker_metrics_port=port)),
            self.data_dir / "logs" / f"{name}.log",
        )
        self.processes.append(process)
        return process

    def _ready(self) -> bool:
        """The API answers ready; a child that exited meanwhile ends the wait at once."""
        for process in self.processes:
            process.raise_if_exited(" at start")
        assert self.settings is not None
        return requests.get(f"{self.settings.api_url}/readyz", timeout=2).ok

    def _api_key(self, settings: Settings) -> str:
        """The key made on the first ``up``, kept (0600) in the data directory."""
        path = self.data_dir / "api-key"
        keys = ApiKeyStore(redis.Redis.from_url(settings.redis_url))
        if path.exists():
            key = path.read_text().strip()
            if keys.lookup(key) is not None:
                return key
        key = keys.create(self.owner, name="atelier up")
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key

    def check_alive(self) -> None:
        """``ChildExited`` (with its log's tail) if any child has ended."""
        for process in self.processes:
            process.raise_if_exited(" unexpectedly")

    def stop(self) -> None:
        """API first (no new jobs), then workers, then Redis (which flushes its AOF)."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
