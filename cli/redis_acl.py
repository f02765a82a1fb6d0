"""Redis's users for Atelier: what each may run, in one place.

- ``atelier``: Atelier itself (API, workers, CLI, KEDA's list lengths). Only the commands
  below, found by reading the code (``grep`` for client calls and ``redis.call`` in the Lua
  scripts, kombu's and redis-py's own commands) and checked by running the whole test
  suite under this ACL (tests/conftest.py: the suite's Redis denies everything else, and
  a denial anywhere fails the session). No FLUSHALL, FLUSHDB, KEYS, SCAN, CONFIG, ACL,
  DEBUG, SHUTDOWN, MONITOR, MIGRATE, REPLICAOF, MODULE, CLIENT KILL: a leaked URL can
  read and write Atelier's keys, but cannot wipe or reconfigure the server, add itself a
  user, or enumerate the keyspace.
- ``replication``: the replicas (``masteruser``) and the sentinels of a Redis with
  failover. Its commands are the ones Redis's documentation lists for them; its password
  is never given to Atelier.
- ``default``: keeps every right behind a password nobody is given. Redis replays its
  append-only file as ``default`` and (7.0) drops any MULTI/EXEC that user may not run, so
  it cannot be narrowed; a client without a password can only AUTH.

deploy/redis/users.acl carries the same rules for the compose scripts, and the Kubernetes
ConfigMap ``atelier-redis-acl`` for a Redis of yours (tests/test_redis_acl.py checks both).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from .datadir import write_private

ATELIER_USER = "atelier"
REPLICATION_USER = "replication"

# Every command Atelier sends, grouped by what it is for. Subcommands are spelled
# ``command|subcommand``: only those are allowed, never the whole container command.
ATELIER_COMMANDS: dict[str, str] = {
    # Each connection: redis-py names its library (an error there is ignored, but the
    # server logs a denial), selects the URL's database, and probes with PING.
    "connection": "ping select client|setinfo",
    # Job records, keys, idempotency, datasets, sessions (shared/*): strings and hashes.
    "records": "get set del exists expire pexpire incr incrby decr hget hset hmget hgetall hdel",
    # Indexes, fair scheduling, leases, rate limits and quotas: sorted sets and sets.
    "indexes": "zadd zrem zcard zcount zscore zrange zrevrange zrangebyscore zrevrangebylex "
    "zremrangebyscore zinterstore sadd srem smembers scard",
    # Celery's broker (kombu): one list per queue and priority, BRPOP to take a message;
    # job logs and metric history; a named model's versions.
    "lists": "lpush rpush rpop brpop llen lrange lindex ltrim lpos lset",
    # Job events (SSE) and the webhooks router's consumer group: streams.
    "events": "xadd xrange xrevrange xreadgroup xgroup|create xautoclaim xack",
    # Wake-ups of event streams; kombu's fan-out (worker control).
    "pubsub": "publish subscribe unsubscribe psubscribe punsubscribe",
    # Compare-and-set writes (WATCH/MULTI/EXEC) and Lua scripts (redis-py's register_script
    # sends EVALSHA, and SCRIPT EXISTS / SCRIPT LOAD when the server lacks one).
    "atomic": "multi exec discard watch unwatch evalsha eval script|load script|exists",
    # Server facts: TIME inside scripts, INFO (kombu checks the server's version),
    # WAIT for writes acknowledged by replicas (shared/durability.py).
    "server": "time info wait",
}

# Commands newer than some servers Atelier runs on (Debian bookworm's is 7.0): a rule naming
# a command the server does not know stops it at start, so they are left out there (such a
# server answers the command "unknown" before any ACL check, so nothing is lost).
SINCE: dict[str, tuple[int, int]] = {"client|setinfo": (7, 2)}
NEWEST = (99, 0)

# Replicas following a primary, and sentinels watching and promoting them (Redis's
# documentation, "Redis replication" and "High availability with Sentinel", ACL sections).
REPLICATION_COMMANDS: dict[str, str] = {
    "replica": "psync replconf ping",
    "sentinel": "ping info role subscribe publish multi exec slaveof replicaof config|rewrite "
    "client|setname client|kill script|kill",
}


def commands(groups: dict[str, str]) -> list[str]:
    """Every command (or ``command|subcommand``) of ``groups``, sorted."""
    return sorted({c for group in groups.values() for c in group.split()})


def atelier_commands(server: tuple[int, int] = NEWEST) -> list[str]:
    """What the ``atelier`` user may run, on a Redis of version ``server``."""
    return [c for c in commands(ATELIER_COMMANDS) if SINCE.get(c, (0, 0)) <= server]


def rules(commands: list[str]) -> str:
    """ACL rules granting ``commands`` on every key and channel, and nothing else."""
    return "resetkeys ~* resetchannels &* -@all " + " ".join(f"+{c}" for c in sorted(commands))


def atelier_rules(server: tuple[int, int] = NEWEST) -> str:
    return rules(atelier_commands(server))


def replication_rules() -> str:
    return rules(commands(REPLICATION_COMMANDS))


def user_lines(
    password: str,
    replication_password: str = "",
    admin_password: str = "",
    server: tuple[int, int] = NEWEST,
) -> str:
    """``user`` lines for a redis.conf of a Redis of version ``server``: ``default`` with
    every right behind ``admin_password`` (random and kept nowhere unless given: the test
    suite's own Redis flushes its databases with it), ``atelier`` with ``password``, and
    ``replication`` when it has a password."""
    admin = admin_password or secrets.token_hex(32)
    lines = [
        f"user default on >{admin} ~* &* +@all",
        f"user {ATELIER_USER} on >{password} {atelier_rules(server)}",
    ]
    if replication_password:
        lines.append(f"user {REPLICATION_USER} on >{replication_password} {replication_rules()}")
    return "\n".join(lines) + "\n"


def write_acl_config(
    path: Path, password: str, admin_password: str = "", server: tuple[int, int] = NEWEST
) -> Path:
    """A redis.conf (0600) holding only the users (see ``user_lines``)."""
    write_private(path, user_lines(password, admin_password=admin_password, server=server))
    return path


def users_file() -> str:
    """deploy/redis/users.acl's text: a line per user, its name then its rules on the oldest
    Redis, and a line ``name+X.Y rules`` for the commands of Redis X.Y and later."""
    newer = sorted({since for since in SINCE.values()})
    lines = [f"{ATELIER_USER} {atelier_rules((0, 0))}"]
    for since in newer:
        added = [c for c, v in SINCE.items() if v == since and c in commands(ATELIER_COMMANDS)]
        lines.append(f"{ATELIER_USER}+{since[0]}.{since[1]} " + " ".join(f"+{c}" for c in added))
    lines.append(f"{REPLICATION_USER} {replication_rules()}")
    return (
        "# Redis users of the compose deployment (deploy/redis/start.sh adds each password).\n"
        "# Made from cli/redis_acl.py: tests/test_redis_acl.py fails when they differ.\n"
        + "\n".join(lines)
        + "\n"
    )
