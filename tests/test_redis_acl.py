"""Redis's `atelier` user may run Atelier's commands and nothing else (cli/redis_acl.py):
refused what would wipe, reconfigure or enumerate the server, on the embedded stack's
Redis and the compose deployment's; the deploy files carry the same rules. That those
rules are enough is the whole suite's to show: its Redis serves the code under them
(tests/conftest.py, `redis_base_url`), and a refused command fails the session."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from atelier.cli.processes import find_redis_server, free_port, server_version, start_redis
from atelier.cli.redis_acl import (
    ATELIER_COMMANDS,
    SINCE,
    atelier_commands,
    atelier_rules,
    replication_rules,
    users_file,
)
from atelier.shared.settings import Settings
from tests.test_deploy import DEPLOY, manifests

# What a leaked URL must not be able to do, each as a client call. (DEBUG and MODULE are
# not in Atelier's rules either, but Redis turns them away before any ACL check unless
# enable-debug-command / enable-module-command say otherwise.)
REFUSED: dict[str, Callable[[redis.Redis], object]] = {
    "FLUSHALL": lambda c: c.flushall(),
    "FLUSHDB": lambda c: c.flushdb(),
    "KEYS": lambda c: c.keys("*"),
    "SCAN": lambda c: c.scan(0),
    "CONFIG GET": lambda c: c.config_get("requirepass"),
    "CONFIG SET": lambda c: c.config_set("appendonly", "no"),
    "ACL SETUSER": lambda c: c.acl_setuser("intruder", enabled=True, nopass=True),
    "ACL LIST": lambda c: c.acl_list(),
    "SHUTDOWN": lambda c: c.shutdown(nosave=True),
    "REPLICAOF": lambda c: c.replicaof("127.0.0.1", 1),
    "CLIENT KILL": lambda c: c.client_kill_filter(_id="1"),
    "CLIENT LIST": lambda c: c.client_list(),
    "SCRIPT FLUSH": lambda c: c.script_flush(),
    "DUMP": lambda c: c.dump("x"),
    "MIGRATE": lambda c: c.migrate("127.0.0.1", 1, "x", 0, 10),
}


@pytest.fixture(scope="module")
def atelier_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A Redis as `atelier up` starts it, as its `atelier` user."""
    directory = tmp_path_factory.mktemp("acl")
    process, url = start_redis(
        Settings(), directory, free_port(), directory / "redis.log", password="p" * 64
    )
    with redis.Redis.from_url(url) as client:
        yield client
    process.stop(10)


@pytest.mark.parametrize("command", sorted(REFUSED))
def test_the_atelier_user_is_refused_what_atelier_never_runs(
    atelier_redis: redis.Redis, command: str
) -> None:
    with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions"):
        REFUSED[command](atelier_redis)
    assert atelier_redis.ping()  # still up: SHUTDOWN did nothing


def test_the_atelier_user_runs_atelier_s_commands(atelier_redis: redis.Redis) -> None:
    """A few of each group, as Atelier sends them (a transaction, a script, WAIT)."""
    with atelier_redis.pipeline(transaction=True) as pipe:
        pipe.hset("job", "status", "queued")
        pipe.rpush("queue", "job")
        pipe.zadd("index", {"job": 1.0})
        pipe.execute()
    script = atelier_redis.register_script("return redis.call('TIME')[1]")
    assert int(script()) > 0
    assert atelier_redis.xadd("events", {"type": "queued"})
    assert atelier_redis.wait(0, 10) == 0
    assert "redis_version" in atelier_redis.info()


def test_every_allowed_command_is_one_the_server_knows() -> None:
    """A misspelt rule would stop Redis at start; a newer command waits for its version."""
    version = server_version(find_redis_server(Settings()))
    allowed = atelier_commands(version)
    assert set(allowed) <= {c for g in ATELIER_COMMANDS.values() for c in g.split()}
    for command, since in SINCE.items():
        assert (command in allowed) == (version >= since)
    assert not {"flushall", "flushdb", "keys", "scan", "config", "acl", "debug"} & set(allowed)


def test_the_deploy_files_carry_the_same_rules() -> None:
    assert (DEPLOY / "redis" / "users.acl").read_text() == users_file()
    (acl,) = [d for d in manifests() if d["metadata"]["name"] == "atelier-redis-acl"]
    assert acl["kind"] == "ConfigMap"
    assert acl["data"] == {"atelier": atelier_rules(), "replication": replication_rules()}


def refused_on(client: redis.Redis) -> list[str]:
    """The REFUSED commands ``client`` is refused (NOPERM)."""
    found = []
    for name, call in REFUSED.items():
        try:
            call(client)
        except redis.exceptions.NoPermissionError:
            found.append(name)
    return found
