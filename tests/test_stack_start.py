"""A child of the embedded stack that dies at start is reported at once, with its exit
code, its log's path and the log's last lines, instead of a 60 s "did not come up"; the
stack's data directory and what Redis and SeaweedFS write are their owner's only."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import redis

from atelier.cli.processes import ChildExited, free_port
from atelier.cli.stack import EmbeddedStack
from atelier.shared.settings import Settings
from tests.conftest import UNIT_DB


@pytest.mark.slow  # starts gunicorn and a Celery worker (which fail, as they should)
def test_a_child_that_exits_at_start_is_reported_at_once(
    redis_base_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # A plug-in module that does not exist: the API and the worker both fail on loading it.
    base = Settings(
        data_dir=tmp_path / "stack",
        kind_plugins="atelier_no_such_plugin:KIND",
        log_format="text",
    )
    stack = EmbeddedStack(
        base,
        port=free_port(),
        api_workers=1,
        external_redis_url=f"{redis_base_url}/{UNIT_DB}",
        worker_roles=("generate",),
    )
    started = time.monotonic()
    try:
        with pytest.raises(ChildExited) as caught:
            stack.start()
    finally:
        stack.stop()
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert elapsed < 20, f"took {elapsed:.1f}s to notice"
    assert "exited with code" in message
    assert f"see {tmp_path / 'stack' / 'logs'}/" in message
    assert "atelier_no_such_plugin" in message  # the log's tail says why


def test_the_exit_report_names_the_code_and_shows_the_log(tmp_path: Path) -> None:
    from atelier.cli.processes import ManagedProcess, wait_until

    log = tmp_path / "child.log"
    child = ManagedProcess("child", ["sh", "-c", "echo first; echo bad value >&2; exit 3"], {}, log)
    child.process.wait()

    def ready() -> bool:
        child.raise_if_exited()
        return False

    started = time.monotonic()
    with pytest.raises(ChildExited, match=r"child exited with code 3; see .*child\.log") as caught:
        wait_until(ready, 60, "the child")
    assert time.monotonic() - started < 1
    assert "first" in str(caught.value) and "bad value" in str(caught.value)
    child.stop()


def modes(directory: Path) -> dict[str, int]:
    """Each entry under ``directory`` (itself as "."), by relative path: its permission bits."""
    entries = [directory, *directory.rglob("*")]
    return {
        str(p.relative_to(directory)): stat.S_IMODE(p.lstat().st_mode)
        for p in entries
        if not p.is_symlink()
    }


def test_the_data_directory_and_redis_files_are_the_owner_s_only(tmp_path: Path) -> None:
    """`atelier up` with its own Redis, under a umask that leaves files world-readable: the
    data directory is 0700, and every file Redis writes (its append-only directory, the
    base and incremental files and the manifest, its ACL config) 0600 and its directories
    0700; the append-only file holds webhook signing secrets."""
    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        data.mkdir(mode=0o755)  # an older version's directory is narrowed too
        stack = EmbeddedStack(
            Settings.from_env({}, data_dir=data), port=free_port(), api_workers=1, worker_roles=()
        )
        settings = stack.start()
        try:
            redis.Redis.from_url(settings.redis_url).set("webhook-secret", "whsec_x")
        finally:
            stack.stop()
    finally:
        os.umask(old)
    assert modes(data)["."] == 0o700
    found = modes(data / "redis")
    assert any(name.endswith(".aof") for name in found), found  # the incremental file
    assert any("manifest" in name for name in found), found
    loose = {
        name: oct(mode)
        for name, mode in found.items()
        if mode != (0o700 if (data / "redis" / name).is_dir() else 0o600)
    }
    assert loose == {}


def test_seaweedfs_keeps_its_directory_to_its_owner(tmp_path: Path) -> None:
    """The test and soak S3 server (not part of `atelier up`): its objects and identities."""
    from tests.conftest import s3_server

    old = os.umask(0o022)
    try:
        server = s3_server(tmp_path / "weed")
        server.start()
        server.stop()
    finally:
        os.umask(old)
    found = modes(tmp_path / "weed")
    # Nothing in it is reachable by others (weed makes some files 0644 whatever the umask).
    assert found["."] == 0o700
    assert found["s3-identities.json"] == 0o600 and found["weed.log"] == 0o600
