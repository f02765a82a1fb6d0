"""The cluster a soak runs against, and the faults it can suffer.

An embedded stack as `atelier up` builds it (its own redis-server with an append-only file,
the API under gunicorn, supervised), with two training workers and one generation worker
under distinct node names, storing objects in an S3 server spoken to over HTTP (SeaweedFS's
``weed mini``, with credentials of its own, stopped and started again on the same data
with its objects kept). The stack's supervisor restarts what a fault kills, as it does for
an operator.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from atelier.cli.processes import ManagedProcess, free_port
from atelier.cli.seaweedfs import SeaweedServer
from atelier.cli.stack import EmbeddedStack
from atelier.cli.supervisor import RestartPolicy
from atelier.shared.auth import ApiKeyStore
from atelier.shared.settings import Settings
from soak.job_processes import JobProcessFaults

LEASE_SECONDS = 4.0
TRAIN_WORKERS = ("worker-train", "worker-train-2")
GENERATE_WORKERS = ("worker-generate",)


@dataclass
class Cluster(JobProcessFaults):
    root: Path
    stack: EmbeddedStack = field(init=False)
    settings: Settings = field(init=False)
    s3: SeaweedServer = field(init=False)
    restarts_said: list[str] = field(default_factory=list)
    extra_metrics: list[str] = field(default_factory=list)
    """/metrics URLs of workers the stack does not know (the partitioned node)."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _supervising: threading.Thread | None = None

    def start(self) -> None:
        self.s3 = SeaweedServer(self.root / "seaweedfs", free_port(), "soak", "soak-secret")
        self.s3.start()
        base = Settings.from_env(
            {},
            data_dir=self.root / "stack",
            storage="s3",
            s3_endpoint_url=self.s3.endpoint,
            s3_bucket="soak",
            s3_access_key_id=self.s3.access_key,
            s3_secret_access_key=self.s3.secret_key,
            lease_seconds=LEASE_SECONDS,
            reaper_interval_seconds=0.5,
            lost_message_seconds=5.0,
            retry_backoff_seconds=0.5,
            max_attempts=4,
            upload_retry_seconds=60.0,
            progress_interval_seconds=0.2,
            cancel_check_interval_seconds=0.2,
            log_level="INFO",
            # The watcher polls every unfinished job twice a second: reads are not what a
            # soak tests. Submits keep their production limits.
            reads_per_minute=60_000,
            reads_burst=10_000,
        )
        # Faults kill children on purpose, often the same one: never give up on them here.
        policy = RestartPolicy(max_crashes=10_000, first_backoff_seconds=0.5, max_backoff_seconds=2)
        self.stack = EmbeddedStack(
            base, port=free_port(), restart_policy=policy, say=self.restarts_said.append
        )
        self.settings = self.stack.start()
        self.stack.add_worker("train")
        self._supervising = threading.Thread(target=self._supervise, name="supervise", daemon=True)
        self._supervising.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            self.stack.supervise()

    def stop(self) -> None:
        self._stop.set()
        if self._supervising is not None:
            self._supervising.join()
        self.stack.stop()
        self.s3.stop()

    def api_key(self, owner: str) -> str:
        return ApiKeyStore(self.redis()).create(owner, name="soak")

    def api_urls(self) -> list[str]:
        return [self.settings.api_url]

    def worker_metrics_urls(self) -> list[str]:
        ports = self.stack.worker_metrics_ports.values()
        return [f"http://127.0.0.1:{port}/metrics" for port in ports] + self.extra_metrics

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url, socket_timeout=5)

    def process(self, name: str) -> ManagedProcess:
        return next(p for p in self.stack.processes if p.name == name)

    # --- faults (and those of JobProcessFaults) ----------------------------------------------
    def terminate_worker(self, name: str) -> None:
        """SIGTERM to a worker's group; the supervisor starts it again under its name."""
        self.process(name).signal_group(signal.SIGTERM)

    def kill_redis(self) -> None:
        """kill -9; the supervisor restarts it on the same port and append-only file."""
        self.process("redis").signal_group(signal.SIGKILL)

    def restart_api(self) -> None:
        self.process("api").signal_group(signal.SIGTERM)

    def stop_s3(self, seconds: float) -> None:
        """Down for ``seconds`` after weed's ~1 s stop, and until it is ready again."""
        self.s3.stop()
        time.sleep(seconds)
        self.s3.start()  # the same data directory and port: every object is still there
