"""A child of the embedded stack that dies at start is reported at once, with its exit
code, its log's path and the log's last lines, instead of a 60 s "did not come up"."""

from __future__ import annotations

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
