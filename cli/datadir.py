"""One ``atelier up`` per data directory, enforced by the operating system.

The stack holds an exclusive ``flock`` on ``<data dir>/atelier-up.lock`` for its whole
life, and its children inherit the descriptor. The kernel drops the lock when the last
holder exits, however it exits, so a lock file left by a killed stack never blocks a new
start, while a Redis or worker orphaned by a ``kill -9`` of ``atelier up`` still guards
the append-only file and checkpoints it is writing. The file's text (who holds it) is
only for the message; the lock is the ``flock``, never a pid guess.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from pathlib import Path
from typing import IO, Any

LOCK_NAME = "atelier-up.lock"
PRIVATE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
PRIVATE_UMASK = 0o077
"""For a child that writes secrets (Redis's append-only file): files 0600, directories 0700."""


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner can enter: made 0700, or narrowed to 0700
    when an older version left it open."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def write_private(path: Path, text: str) -> None:
    """``text`` in ``path``, readable by its owner only from the moment it exists (``open``
    with the mode, never a ``chmod`` after the write); a file already there is narrowed to
    0600 before it is written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, PRIVATE_MODE)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(fd, PRIVATE_MODE)
        handle.write(text)


def private_secret(path: Path) -> str:
    """The secret kept in ``path`` (0600), made on first use: 64 hex digits, safe in a URL."""
    if path.exists():
        os.chmod(path, PRIVATE_MODE)
        kept = path.read_text().strip()
        if kept:
            return kept
    secret = secrets.token_hex(32)
    write_private(path, secret + "\n")
    return secret


class DataDirInUse(RuntimeError):
    """Another ``atelier up`` (or what it started) holds the data directory."""


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._handle: IO[str] | None = None

    @property
    def fileno(self) -> int:
        """The locked descriptor, for children to inherit (``pass_fds``)."""
        assert self._handle is not None, "not acquired"
        return self._handle.fileno()

    def acquire(self, api_url: str) -> None:
        """Take the lock at once, or raise ``DataDirInUse`` naming the holder."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")  # not "w": truncating before locking would erase the holder
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _parse(handle.read())
            handle.close()
            raise DataDirInUse(self._in_use(holder)) from None
        handle.seek(0)
        handle.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S %z")
        handle.write(json.dumps({"pid": os.getpid(), "started": started, "api_url": api_url}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def _in_use(self, holder: dict[str, Any]) -> str:
        pid = holder.get("pid", "?")
        message = (
            f"{self.path.parent} is in use by another `atelier up` (pid {pid}, started "
            f"{holder.get('started', '?')}, API at {holder.get('api_url', '?')})."
        )
        if isinstance(pid, int) and not pid_alive(pid):
            holders = ", ".join(f"{p} ({name})" for p, name in _holders(self.path)) or "?"
            message += (
                f" That process is gone, but processes it started still hold the lock: "
                f"{holders}."
            )
        return message + " Stop it first, or set ATELIER_DATA_DIR to another directory."


def _parse(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holders(path: Path) -> list[tuple[int, str]]:
    """(pid, program) of the processes with ``path`` open, as far as /proc shows."""
    found = []
    target = str(path.resolve())
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == target for fd in fd_dir.iterdir()):
                found.append((int(fd_dir.parent.name), _program(fd_dir.parent)))
    return sorted(found)


def _program(proc: Path) -> str:
    """``redis-server``, or for ``python -m celery …`` the module: ``celery``."""
    argv = (proc / "cmdline").read_text().split("\0")
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1]
    return (proc / "comm").read_text().strip()
