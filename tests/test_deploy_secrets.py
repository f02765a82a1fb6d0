"""Deployment hardening outside the deploy files: secrets kept 0600 from their first byte,
Redis under `atelier up` refusing clients without its password, worker metrics on
loopback there, `nosniff` on every answer, and no internals in `/readyz`, a job's error
or its log lines."""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from atelier.cli.datadir import private_secret, write_private
from atelier.cli.processes import free_port, start_redis
from atelier.shared.errors import PermanentJobError, ServiceUnavailable
from atelier.shared.settings import Settings
from tests.conftest import InProcessApi


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def open_umask() -> Iterator[None]:
    """A umask that would leave any file world-readable unless its mode says otherwise."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_private_files_are_0600_from_the_start(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    chmods: list[Any] = []
    monkeypatch.setattr(os, "chmod", lambda *a, **k: chmods.append(a))
    created = tmp_path / "new"
    write_private(created, "secret\n")
    assert mode(created) == 0o600 and created.read_text() == "secret\n"
    assert chmods == []  # the mode came with the open, not after the write
    old = tmp_path / "old"
    old.write_text("was readable")
    old.chmod(0o644)
    write_private(old, "narrowed")
    assert mode(old) == 0o600 and old.read_text() == "narrowed"
    link = tmp_path / "link"
    link.symlink_to(created)
    with pytest.raises(OSError):
        write_private(link, "through a symlink")


def test_a_private_secret_is_made_once_per_file(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "redis-password"
    first = private_secret(path)
    assert len(first) == 64 and mode(path) == 0o600
    assert private_secret(path) == first
    assert private_secret(tmp_path / "other") != first


def test_redis_with_a_password_refuses_everyone_else(tmp_path: Path) -> None:
    password = private_secret(tmp_path / "redis-password")
    process, url = start_redis(
        Settings(), tmp_path / "redis", free_port(), tmp_path / "redis.log", password=password
    )
    try:
        assert redis.Redis.from_url(url).ping()
        assert url.startswith("redis://atelier:")
        bare = url.replace(f"atelier:{password}@", "")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(bare).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(bare).keys()
        wrong = url.replace(password, "guess")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(wrong).ping()
        assert password not in " ".join(process.argv)
        assert mode(tmp_path / "redis" / "redis-acl.conf") == 0o600
    finally:
        process.stop(10)
    assert password not in (tmp_path / "redis.log").read_text()


def test_an_api_only_stack_guards_redis_and_its_files(tmp_path: Path) -> None:
    """`atelier up` (no workers): its own Redis with a password from the data directory,
    which answers nothing without it; the key and password files 0600; workers would serve
    metrics on loopback only; every API answer says nosniff."""
    from atelier.cli.stack import EmbeddedStack
    from atelier.cli.up import redis_url_for_shell

    data = tmp_path / "data"
    stack = EmbeddedStack(Settings.from_env({}, data_dir=data), port=free_port(), worker_roles=())
    settings = stack.start()
    try:
        password = (data / "redis-password").read_text().strip()
        assert f"atelier:{password}@" in settings.redis_url
        port = redis.Redis.from_url(settings.redis_url).connection_pool.connection_kwargs["port"]
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).get("anything")
        assert mode(data / "redis-password") == 0o600 and mode(data / "api-key") == 0o600
        assert settings.worker_metrics_bind == "127.0.0.1"
        shown = redis_url_for_shell(settings.redis_url, stack)
        assert password not in shown and "$(cat " in shown
        headers = {"Authorization": f"Bearer {stack.api_key}"}
        for path, auth in (("/readyz", {}), ("/v1/jobs", headers), ("/v1/jobs", {})):
            answer = requests.get(settings.api_url + path, headers=auth, timeout=10)
            assert answer.headers["X-Content-Type-Options"] == "nosniff", path
        logs = {p.name: p.read_text() for p in (data / "logs").glob("*.log")}
        assert {"redis.log", "api.log"} <= set(logs), list(logs)  # not a glob of nothing
        assert password not in " ".join(logs.values())
    finally:
        stack.stop()


def test_every_answer_says_nosniff(inprocess_api: InProcessApi) -> None:
    key = inprocess_api.raw_key()
    for path, headers in (
        ("/healthz", {}),
        ("/v1/jobs", {"Authorization": f"Bearer {key}"}),
        ("/v1/jobs", {}),
        ("/v1/nowhere", {}),
        ("/v1/openapi.json", {}),
    ):
        answer = inprocess_api.http.get(inprocess_api.url(path), headers=headers)
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", path


def test_readyz_names_the_dependency_without_its_internals(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atelier.api.services import EXTENSION_NAME
    from atelier.api.views.health import READINESS_EXTENSION

    svc = inprocess_api.app.extensions[EXTENSION_NAME]
    secret_detail = "Error 111 connecting to redis.internal.example:6379 /srv/atelier"

    def storage_down() -> None:
        raise ServiceUnavailable(f"S3 bucket 'atelier' unreachable: {secret_detail}")

    monkeypatch.setattr(svc.objects, "check", storage_down)
    answer = inprocess_api.http.get(inprocess_api.url("/readyz"))
    assert answer.status_code == 503
    assert "Object storage is unreachable" in answer.text
    assert "example" not in answer.text and "/srv" not in answer.text

    def redis_down() -> bool:
        raise redis.ConnectionError(secret_detail)

    monkeypatch.setattr(svc.redis, "ping", redis_down)
    inprocess_api.app.extensions.pop(READINESS_EXTENSION)  # the last answer is kept 1.5 s
    answer = inprocess_api.http.get(inprocess_api.url("/readyz"))
    assert answer.status_code == 503 and "Redis is unreachable" in answer.text
    assert "example" not in answer.text and "6379" not in answer.text


def test_a_jobs_error_keeps_internals_to_the_server() -> None:
    from atelier.workers.runner import _error_info

    leaked = _error_info(FileNotFoundError("/srv/atelier/objects/owners/x: no such file"))
    assert leaked.type == "FileNotFoundError" and "/srv" not in leaked.message
    assert "worker's log" in leaked.message
    ours = _error_info(PermanentJobError("the dataset is empty"))
    assert ours.message == "the dataset is empty"


def test_job_log_lines_carry_no_traceback() -> None:
    from atelier.shared.job_logs import JobLineFormatter

    try:
        raise ValueError("/srv/atelier/secret/path")
    except ValueError:
        record = logging.LogRecord("atelier.job", logging.ERROR, __file__, 1, "failed", (), None)
        record.exc_info = sys.exc_info()
    record.atelier_attempt = 1
    line = JobLineFormatter("%(levelname)s [attempt %(atelier_attempt)s] %(message)s").format(
        record
    )
    assert line == "ERROR [attempt 1] failed (ValueError)"
    server = logging.Formatter("%(message)s").format(record)
    assert "Traceback" in server and "/srv/atelier/secret/path" in server


def test_worker_metrics_listen_where_the_settings_say(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atelier.workers import metrics

    bound: list[str] = []
    monkeypatch.setattr(
        metrics, "start_http_server", lambda port, addr, registry: bound.append(addr)
    )
    monkeypatch.setattr(metrics, "QueueDepthCollector", lambda *a: _NoMetrics())
    assert Settings().worker_metrics_bind == "0.0.0.0"  # containers: Prometheus is elsewhere
    metrics.serve(Settings(worker_metrics_bind="127.0.0.1", metrics_dir=str(tmp_path)))
    assert bound == ["127.0.0.1"]


class _NoMetrics:
    def collect(self) -> Iterator[Any]:
        return iter(())

    def describe(self) -> list[Any]:
        return []
