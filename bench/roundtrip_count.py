"""Redis commands and round trips one job costs, submit to succeeded, counted exactly.

Every redis-py connection write is counted (``send_packed_command``: one per round trip, a
pipeline's commands going out together in one), and every command packed (``pack_command``),
each charged to the side it runs on and to the innermost Atelier function on the stack
(its purpose). The job is a minimal ``sim`` generate job (``bench.capacity_sim``): the
API's real ``POST /v1/jobs`` in-process (auth, rate limit, idempotency, quota, create,
Celery publish), then the worker's real ``JobRunner.run`` in-process (claim, lease,
progress, finish, tidy), then one ``GET /v1/jobs/{id}``, the poll that sees `succeeded`.
The Celery message is taken off its list without Redis being counted (a raw Celery task
costs that as well). One job first, uncounted, warms the connection pools (``AUTH``,
``HELLO``) and the script caches, so the count is a steady job's, the same on every run.

    python -m bench.roundtrip_count [out.md]
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis
import redis.connection

from atelier.shared.jobs import JobType
from atelier.shared.storage import LocalObjectStore
from atelier.workers.runner import JobRunner
from bench.capacity import settings_for, tenants
from bench.common import redis_server

SIDES = ("api", "worker")
_ROOT = Path(__file__).resolve().parent.parent
_OURS = tuple(
    str(_ROOT / p / d) + "/" for p in ("", "atelier") for d in ("api", "shared", "workers")
)


def _module(frame: FrameType) -> str | None:
    name = frame.f_code.co_filename
    if not name.startswith(_OURS):
        return None
    path = Path(name).relative_to(_ROOT).with_suffix("").as_posix()
    return path.removeprefix("atelier/").replace("/", ".")


def _purpose(frame: FrameType | None) -> str:
    """The innermost Atelier function on the stack (``module.Class.function``), after the
    worker or API function that called into ``shared`` for it, if any."""
    inner = outer = None
    while frame is not None:
        module = _module(frame)
        if module is not None and module != "shared.redis_scripts":  # a helper, no purpose
            where = f"{module}.{frame.f_code.co_qualname}"
            inner = inner or where
            if not module.startswith("shared."):
                outer = where
                break
        frame = frame.f_back
    if inner is None:
        return "(outside Atelier)"
    return inner if outer in (None, inner) else f"{outer} → {inner}"


@dataclass
class Tally:
    """Round trips and commands by (side, purpose), while ``side`` is set."""

    side: str | None = None
    trips: Counter[tuple[str, str]] = field(default_factory=Counter)
    commands: Counter[tuple[str, str]] = field(default_factory=Counter)
    names: Counter[tuple[str, str]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, counter: Counter[tuple[str, str]], key: str) -> None:
        if self.side is not None:
            with self.lock:
                counter[self.side, key] += 1

    def total(self, counter: Counter[tuple[str, str]], side: str | None = None) -> int:
        return sum(n for (s, _), n in counter.items() if side in (None, s))


@contextmanager
def counting(tally: Tally) -> Iterator[Tally]:
    """redis-py's connections counting into ``tally`` (every connection class: plain,
    SSL and Unix socket all inherit these two methods)."""
    cls = redis.connection.AbstractConnection
    send: Any = cls.send_packed_command
    one: Any = cls.send_command
    many: Any = cls.pack_commands

    def counted_send(self: Any, command: Any, check_health: bool = True) -> None:
        tally.add(tally.trips, _purpose(sys._getframe(1)))
        send(self, command, check_health)

    def count_command(args: tuple[Any, ...]) -> None:
        tally.add(tally.commands, _purpose(sys._getframe(2)))
        name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        tally.add(tally.names, name.lower())

    def counted_one(self: Any, *args: Any, **kwargs: Any) -> None:
        count_command(args)
        one(self, *args, **kwargs)

    def counted_many(self: Any, commands: Any) -> Any:
        commands = list(commands)
        for args in commands:
            count_command(args)
        return many(self, commands)

    saved = {"send_packed_command": send, "send_command": one, "pack_commands": many}
    counted = {
        "send_packed_command": counted_send,
        "send_command": counted_one,
        "pack_commands": counted_many,
    }
    for name, method in counted.items():
        setattr(cls, name, method)
    try:
        yield tally
    finally:
        for name, method in saved.items():
            setattr(cls, name, method)


class OneJob:
    """The API app and a worker's runner on one Redis, running one sim job at a time."""

    def __init__(self, url: str, directory: Path) -> None:
        from atelier.api.app import create_app

        self.settings = settings_for(url, directory)
        self.client = redis.Redis.from_url(url)
        self.key, self.model_id = tenants(self.client)[0]
        self.http = create_app(self.settings).test_client()
        self.runner = JobRunner(self.settings, objects=LocalObjectStore(directory / "objects"))

    def run(self, tally: Tally) -> str:
        """One job, submit to the poll that sees it succeeded; returns its status."""
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": secrets.token_hex(8)}
        params = {"model_id": self.model_id, "seconds": 0}
        body = {"type": "generate", "kind": "sim", "params": params}
        tally.side = "api"
        answer = self.http.post("/v1/jobs", json=body, headers=headers)
        tally.side = None
        assert answer.status_code == 202, answer.get_data(as_text=True)
        job_id = answer.get_json()["id"]
        self.client.delete(self.settings.generate_queue)  # the Celery message, taken
        tally.side = "worker"
        self.runner.run(job_id, "bench", JobType.GENERATE)
        tally.side = "api"
        status = self.http.get(f"/v1/jobs/{job_id}", headers=headers).get_json()["status"]
        tally.side = None
        return str(status)


def count_one_job(url: str, directory: Path) -> Tally:
    """The counts of one steady job (after one uncounted, warming job)."""
    tally = Tally()
    with counting(tally):
        one = OneJob(url, directory)
        assert one.run(tally) == "succeeded"  # side unset while warming: nothing counted
        for counter in (tally.trips, tally.commands, tally.names):
            counter.clear()
        assert one.run(tally) == "succeeded"
    return tally


def table(tally: Tally) -> str:
    """Markdown: round trips and commands by side and purpose, then by command name."""
    lines = ["| Side | Purpose | Round trips | Commands |", "|---|---|---|---|"]
    keys = sorted(set(tally.trips) | set(tally.commands))
    for side, purpose in keys:
        lines.append(
            f"| {side} | `{purpose}` | {tally.trips[side, purpose]} "
            f"| {tally.commands[side, purpose]} |"
        )
    for side in SIDES:
        trips, commands = tally.total(tally.trips, side), tally.total(tally.commands, side)
        lines.append(f"| **{side}** | | **{trips}** | **{commands}** |")
    trips, commands = tally.total(tally.trips), tally.total(tally.commands)
    lines += [f"| **all** | | **{trips}** | **{commands}** |", ""]
    lines += ["| Side | Command | Sent |", "|---|---|---|"]
    lines += [f"| {s} | {name} | {n} |" for (s, name), n in sorted(tally.names.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="atelier-rt-count-") as raw,
        redis_server(Path(raw)) as url,
    ):
        text = table(count_one_job(url, Path(raw) / "run"))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
