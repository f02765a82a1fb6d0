"""A finish whose reply is lost still counts as the finish it was (``settling.finish_surely``).

The three-host soak counted 11 succeeded attempts for 12 succeeded records: a cut dropped
the connection after the finish's ``EXEC`` ran, redis-py turned the lost reply into a
``WatchError`` (the transaction watched the job), the retry read the job already finished
and answered None, and the attempt was counted as fenced off. Real runner, Redis and
redis-py; between them a TCP proxy that drops the connection around the finish's ``EXEC``,
with the reply lost after Redis ran it, or with the ``EXEC`` never sent, and optionally
refusing connections for a while after (the primary away longer than the client's retries).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from prometheus_client import REGISTRY

from atelier.cli.processes import free_port
from atelier.shared.jobs import JobStatus, JobType
from atelier.shared.models import ModelRecord, ModelStore
from atelier.shared.redis_client import connect
from atelier.shared.settings import Settings
from atelier.shared.storage import LocalObjectStore, ObjectLayout
from atelier.workers.context import JobContext
from atelier.workers.kinds.base import GenerateResult, ModelKind, TrainResult
from atelier.workers.runner import JobRunner
from atelier.workers.settling import finish_surely
from tests.conftest import UNIT_DB, register_image_kind


class CuttingProxy:
    """Relays TCP to Redis. Armed (``cut_at_exec``), it cuts the next connection that sends
    an ``EXEC``: after relaying it and letting Redis run it, dropping the reply
    (``applied=True``), or without relaying it; then refuses connections for ``down_for``
    seconds."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.armed: tuple[bool, float] | None = None
        self.refuse_until = 0.0
        self.cuts = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_at_exec(self, applied: bool, down_for: float = 0.0) -> None:
        self.armed = (applied, down_for)

    def close(self) -> None:
        self.closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.refuse_until:
                client.close()
                continue
            server = socket.create_connection(self.target)
            cut = threading.Event()
            for relay, ends in ((self._upstream, (client, server)), (self._down, (server, client))):
                threading.Thread(target=relay, args=(*ends, cut), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket, cut: threading.Event) -> None:
        while data := _receive(client):
            if self.armed is not None and b"EXEC\r\n" in data:
                applied, down_for = self.armed
                self.armed = None
                self.refuse_until = time.monotonic() + down_for
                self.cuts += 1
                cut.set()  # from now on nothing Redis answers reaches the client
                if applied:
                    server.sendall(data)
                    time.sleep(0.3)  # Redis has run it
                break
            server.sendall(data)
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        while (data := _receive(server)) and not cut.is_set():
            try:
                client.sendall(data)
            except OSError:
                break
        _close(client, server)


def _receive(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


class CutKind(ModelKind):
    """Stores its weights, arms the proxy to cut the finish, succeeds."""

    name = "cut-finish"
    proxy: ClassVar[CuttingProxy | None] = None
    cut: ClassVar[dict[str, Any]] = {}

    def train(self, params: dict[str, Any], ctx: JobContext) -> TrainResult:
        weights = ObjectLayout.model_weights(ctx.job.owner, ctx.model_id)
        ctx.objects.put_bytes(weights, b"weights", "application/zip")
        assert CutKind.proxy is not None
        CutKind.proxy.cut_at_exec(**CutKind.cut)
        return TrainResult(
            config={}, weights_key=weights, samples=[], metrics={"loss": 1.0},
            dataset="digits", steps=1,
        )

    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        raise NotImplementedError


@pytest.fixture()
def proxy(redis_base_url: str) -> Iterator[CuttingProxy]:
    where = urlsplit(redis_base_url)
    cutting = CuttingProxy((where.hostname or "127.0.0.1", where.port or 6379))
    yield cutting
    cutting.close()


@pytest.fixture()
def make_runner(
    redis_base_url: str, redis_client: redis.Redis, proxy: CuttingProxy, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[float], JobRunner]:
    """A runner whose Redis client reaches Redis through the proxy and retries a connection
    error for about ``patience`` seconds (``shared.redis_client.connect``)."""
    register_image_kind(monkeypatch, "cut-finish", f"{__name__}:CutKind")
    where = urlsplit(redis_base_url)
    userinfo = where.netloc.rpartition("@")[0]
    through_proxy = urlunsplit(where._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}"))
    settings = Settings(redis_url=f"{through_proxy}/{UNIT_DB}", lease_seconds=30)
    CutKind.proxy = proxy

    def make(patience: float) -> JobRunner:
        monkeypatch.setattr(
            "atelier.workers.runner.redis_for",
            lambda s, **_: connect(s.redis_url, patience_seconds=patience),
        )
        return JobRunner(settings, objects=LocalObjectStore(tmp_path))

    return make


def _succeeded_count() -> float:
    labels = {"type": "train", "kind": "cut-finish", "status": "succeeded"}
    return REGISTRY.get_sample_value("atelier_jobs_finished_total", labels) or 0.0


@pytest.mark.parametrize(
    ("applied", "down_for", "patience"),
    [
        (True, 0.0, 30.0),  # the reply lost; redis-py retries the transaction, reads it done
        (True, 3.0, 0.5),  # ... and the primary stays away past the client's retries
        (False, 0.0, 30.0),  # the EXEC never ran; redis-py's retry runs it
        (False, 3.0, 0.5),  # ... the primary away past the retries: finished again
    ],
    ids=["reply-lost", "reply-lost-long-cut", "exec-lost", "exec-lost-long-cut"],
)
def test_a_finish_past_a_cut_connection_is_counted_once_as_it_stood(
    make_runner: Callable[[float], JobRunner],
    proxy: CuttingProxy,
    redis_client: redis.Redis,
    applied: bool,
    down_for: float,
    patience: float,
) -> None:
    CutKind.cut = {"applied": applied, "down_for": down_for}
    runner = make_runner(patience)
    job = runner.jobs.create("alice", JobType.TRAIN, "cut-finish", {})
    before = _succeeded_count()

    outcome = runner.run(job.id)

    assert proxy.cuts == 1
    after = runner.jobs.get(job.id)
    assert after is not None
    assert outcome is JobStatus.SUCCEEDED
    assert (after.status, after.attempt) == (JobStatus.SUCCEEDED, 1)
    assert _succeeded_count() == before + 1
    models = ModelStore(redis_client).list_for_owner("alice", limit=10)[0]
    assert [m.id for m in models] == [after.model_id]
    assert runner.objects.list_keys(f"owners/alice/models/{after.model_id}/")


def test_a_finish_another_attempt_overtook_is_not_counted(
    make_runner: Callable[[float], JobRunner],
) -> None:
    """The reaper requeued the job and a newer attempt holds it: the finish answers None and
    the record read after says so; the attempt is fenced off, not succeeded."""
    runner = make_runner(30.0)
    job = runner.jobs.create("alice", JobType.TRAIN, "cut-finish", {})
    claimed = runner.jobs.claim_next(JobType.TRAIN, "w", 30, runner.settings)
    assert claimed is not None and claimed.fence
    before = _succeeded_count()
    done, read = finish_surely(
        runner.jobs, runner.durability, claimed.model_copy(update={"fence": "0-stale"}),
        JobStatus.SUCCEEDED,
    )
    assert (done, read) == (None, False)
    assert runner.jobs.get(job.id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    assert _succeeded_count() == before
