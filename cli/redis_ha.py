"""A Redis primary, its replicas and three sentinels, as processes of ours: what the
failover test and the cluster soak run, and what an operator's HA Redis looks like
(docs/high-availability.md has the same settings as config files).

Each node binds its own address (loopback in the tests, a network namespace's address in
the cluster soak, where ``wrap`` is ``ip netns exec HOST``). Sentinels agree on a failure
with a quorum of 2 after ``down_after_ms`` without an answer, then promote the replica
with the most data; a killed primary started again rejoins as a replica of the new one.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from ..shared.settings import Settings
from .datadir import write_private
from .processes import ManagedProcess, find_redis_server, server_version, wait_until
from .redis_acl import ATELIER_USER, REPLICATION_USER, user_lines

SERVICE = "atelier"
QUORUM = 2


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class RedisNode:
    """One redis-server or sentinel, restartable on its own port and files."""

    name: str
    address: Address
    process: ManagedProcess

    def kill(self) -> None:
        """kill -9: no shutdown, no last AOF write beyond what the kernel already has."""
        self.process.signal_group(9)
        self.process.wait(5)


@dataclass
class RedisGroup:
    """Data nodes (the first starts as primary) and sentinels."""

    password: str
    """The ``atelier`` user's: Atelier's processes hold it."""
    replication_password: str = field(default_factory=lambda: secrets.token_hex(32))
    """The ``replication`` user's: replicas and sentinels only (``cli.redis_acl``)."""
    nodes: list[RedisNode] = field(default_factory=list)
    sentinels: list[RedisNode] = field(default_factory=list)
    registry: list[ManagedProcess] = field(default_factory=list)

    def url(self, db: int = 0) -> str:
        """``ATELIER_REDIS_URL`` for Atelier's processes: through the sentinels."""
        hosts = ",".join(str(s.address) for s in self.sentinels)
        return f"redis+sentinel://{ATELIER_USER}:{self.password}@{hosts}/{SERVICE}/{db}"

    def primary(self) -> Address:
        """The primary as the first sentinel that answers names it now."""
        for sentinel in self.sentinels:
            try:
                client = redis.Redis(
                    sentinel.address.host,
                    sentinel.address.port,
                    socket_timeout=1,
                    decode_responses=True,
                )
                found = cast(
                    tuple[str, int] | None, client.sentinel_get_master_addr_by_name(SERVICE)
                )
            except redis.RedisError:
                continue
            if found is not None:
                return Address(str(found[0]), int(found[1]))
        raise RuntimeError("no sentinel answers")

    def start_again(self, node: RedisNode) -> None:
        """Start a stopped node as a replica of the primary the sentinels name, as a
        supervisor's start script should: a node that came back believing it is still the
        primary would wait for a sentinel to demote it (10-15 s here), and until then
        take writes that its demotion throws away."""
        if node in self.nodes:
            primary = self.primary()
            assert node.process.log is not None  # the HA nodes always log to a file
            config = node.process.log.parent / "redis.conf"
            lines = [
                line
                for line in config.read_text().splitlines()
                if not line.startswith("replicaof ")
            ]
            if primary != node.address:
                lines.append(f"replicaof {primary.host} {primary.port}")
            write_private(config, "\n".join(lines) + "\n")
        node.process.restart()

    def node_at(self, address: Address) -> RedisNode:
        return next(node for node in self.nodes if node.address == address)

    def client(self, node: RedisNode, db: int = 0) -> redis.Redis:
        return redis.Redis(
            node.address.host,
            node.address.port,
            db=db,
            username=ATELIER_USER,
            password=self.password,
            socket_timeout=2,
            socket_connect_timeout=2,
        )

    def stop(self) -> None:
        from .processes import stop_together

        stop_together(self.registry, 10)


def start_group(
    settings: Settings,
    directory: Path,
    nodes: Sequence[Address],
    sentinels: Sequence[Address],
    password: str,
    *,
    down_after_ms: int = 2000,
    wraps: dict[Address, Sequence[str]] | None = None,
) -> RedisGroup:
    """Start every node (``nodes[0]`` the primary, the rest its replicas), wait until the
    replicas are in sync, then start the sentinels and wait until they see the replicas."""
    group = RedisGroup(password)
    wraps = wraps or {}
    try:
        primary = nodes[0]
        for n, address in enumerate(nodes):
            node = _data_node(
                settings,
                directory / f"redis-{n}",
                address,
                password,
                None if n == 0 else primary,
                wraps.get(address, ()),
                group,
            )
            group.nodes.append(node)
        wait_until(lambda: _replicas_online(group) >= len(nodes) - 1, 30, "Redis replicas")
        for n, address in enumerate(sentinels):
            group.sentinels.append(
                _sentinel(
                    settings,
                    directory / f"sentinel-{n}",
                    address,
                    primary,
                    down_after_ms,
                    wraps.get(address, ()),
                    group,
                )
            )
        wait_until(lambda: _sentinels_ready(group, len(nodes) - 1), 30, "sentinels")
    except BaseException:
        group.stop()
        raise
    return group


def _replicas_online(group: RedisGroup) -> int:
    info = group.client(group.nodes[0]).info("replication")
    return sum(
        1
        for key, value in info.items()
        if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    )


def _sentinels_ready(group: RedisGroup, replicas: int) -> bool:
    for sentinel in group.sentinels:
        client = redis.Redis(sentinel.address.host, sentinel.address.port, socket_timeout=1)
        if len(cast(list[Any], client.sentinel_slaves(SERVICE))) < replicas:
            return False
        if len(cast(list[Any], client.sentinel_sentinels(SERVICE))) < len(group.sentinels) - 1:
            return False
    return True


# Every data node, replica or not, carries the same users (``cli.redis_acl``: ``atelier``
# for Atelier, ``replication`` for replicas and sentinels, ``default`` behind a password
# nobody knows) and the credentials to follow a primary: after a failover any of them may
# be either.
_DATA_CONFIG = """\
bind {host}
port {port}
dir {dir}
appendonly yes
appendfsync everysec
save ""
maxmemory-policy noeviction
protected-mode yes
{users}masteruser {replication_user}
masterauth {replication_password}
replica-announce-ip {host}
repl-diskless-sync-delay 0
"""
# The default 5 s delay lets several replicas share one snapshot; a node restarted after a
# failover would wait it out before it could confirm a single write.
# No ``min-replicas-to-write``: Atelier asks for its replicas itself (``WAIT``, before it
# acknowledges; ``shared.durability``), and with one replica that setting would refuse
# every write after a failover, a running job's progress and lease renewals included,
# until the lost node came back.


def _data_node(
    settings: Settings,
    directory: Path,
    address: Address,
    password: str,
    primary: Address | None,
    wrap: Sequence[str],
    group: RedisGroup,
) -> RedisNode:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "redis.conf"
    binary = find_redis_server(settings)
    text = _DATA_CONFIG.format(
        host=address.host,
        port=address.port,
        dir=directory.resolve(),
        users=user_lines(password, group.replication_password, server=server_version(binary)),
        replication_user=REPLICATION_USER,
        replication_password=group.replication_password,
    )
    if primary is not None:
        text += f"replicaof {primary.host} {primary.port}\n"
    write_private(config, text)
    argv = [*wrap, binary, str(config)]
    return _start_node("redis", argv, address, directory, group, group.client)


def _start_node(
    kind: str,
    argv: list[str],
    address: Address,
    directory: Path,
    group: RedisGroup,
    client: Callable[[RedisNode], redis.Redis],
) -> RedisNode:
    """Start one node (it joins the group's registry at once) and wait until it answers."""
    process = ManagedProcess(
        f"{kind}-{address.port}",
        argv,
        dict(os.environ),
        directory / f"{kind}.log",
        registry=group.registry,
    )
    node = RedisNode(process.name, address, process)
    wait_until(lambda: bool(client(node).ping()), 20, f"{kind} at {address}")
    return node


_SENTINEL_CONFIG = """\
bind {host}
port {port}
dir {dir}
sentinel announce-ip {host}
sentinel monitor {service} {primary_host} {primary_port} {quorum}
sentinel auth-user {service} {user}
sentinel auth-pass {service} {password}
sentinel down-after-milliseconds {service} {down_after}
sentinel failover-timeout {service} 20000
sentinel parallel-syncs {service} 1
"""


def _sentinel(
    settings: Settings,
    directory: Path,
    address: Address,
    primary: Address,
    down_after_ms: int,
    wrap: Sequence[str],
    group: RedisGroup,
) -> RedisNode:
    """A sentinel rewrites its own config file as it learns the group, so each has one."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sentinel.conf"
    write_private(
        config,
        _SENTINEL_CONFIG.format(
            host=address.host,
            port=address.port,
            dir=directory.resolve(),
            service=SERVICE,
            primary_host=primary.host,
            primary_port=primary.port,
            quorum=QUORUM,
            user=REPLICATION_USER,
            password=group.replication_password,
            down_after=down_after_ms,
        ),
    )
    # Debian's redis-sentinel where installed; the same binary as redis-server elsewhere.
    sentinel = shutil.which("redis-sentinel")
    binary = [sentinel] if sentinel else [find_redis_server(settings), "--sentinel"]
    argv = [*wrap, binary[0], str(config), *binary[1:]]
    probe = redis.Redis(address.host, address.port, socket_timeout=1)
    return _start_node("sentinel", argv, address, directory, group, lambda _node: probe)
