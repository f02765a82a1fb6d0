"""A training worker on a host of its own: a network namespace joined to this machine by a
veth pair, whose link the soak takes down for longer than a lease (a partitioned node)
and brings back. The node reaches Redis and the S3 server through relays this process runs
on the pair's host-side address; only addresses of namespaces this run made are used.

Needs root and ``ip netns``; ``IsolatedWorker.available`` says why not otherwise, and the
soak prints it and runs without this fault.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from atelier.cli.processes import ATELIER_COMMAND, ManagedProcess, child_env, free_port
from atelier.shared.settings import Settings

HOST_ADDRESS = "10.213.7.1"  # the host side of the pair, inside this run's own namespace
NODE_ADDRESS = "10.213.7.2"
NAME = "worker-isolated"


def _ip(*args: str, namespace: str | None = None) -> None:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, text=True)


class Relay(threading.Thread):
    """Forwards TCP connections from ``listen`` to ``upstream`` (both on this machine)."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        super().__init__(name=f"relay-{listen[1]}", daemon=True)
        self.upstream = upstream
        self.server = socket.create_server(listen, reuse_port=True)

    def run(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self.server.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


class IsolatedWorker:
    def __init__(self, tag: str) -> None:
        self.namespace = f"atelier-soak-{tag}"
        self.host_link = f"ats{tag[-6:]}"
        self.name = NAME
        self.relays: list[Relay] = []
        self.process: ManagedProcess | None = None
        self.metrics_port = free_port()

    @property
    def metrics_url(self) -> str:
        return f"http://{NODE_ADDRESS}:{self.metrics_port}/metrics"

    @staticmethod
    def available() -> str | None:
        """None when a namespace can be made here, else the reason it cannot."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "no `ip` command (iproute2)"
        probe = f"atelier-probe-{os.getpid()}"
        try:
            _ip("netns", "add", probe)
            _ip("netns", "delete", probe)
        except subprocess.CalledProcessError as exc:
            return f"`ip netns add` failed: {exc.stderr.strip()}"
        return None

    def start(self, settings: Settings, redis_port: int, s3_port: int, log: Path) -> ManagedProcess:
        _ip("netns", "add", self.namespace)
        node_link = self.host_link + "n"
        _ip("link", "add", self.host_link, "type", "veth", "peer", "name", node_link)
        _ip("link", "set", node_link, "netns", self.namespace)
        _ip("addr", "add", f"{HOST_ADDRESS}/30", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        for args in (
            ("addr", "add", f"{NODE_ADDRESS}/30", "dev", node_link),
            ("link", "set", node_link, "up"),
            ("link", "set", "lo", "up"),
        ):
            _ip(*args, namespace=self.namespace)
        redis_relay, s3_relay = free_port(), free_port()
        self.relays = [
            Relay((HOST_ADDRESS, redis_relay), ("127.0.0.1", redis_port)),
            Relay((HOST_ADDRESS, s3_relay), ("127.0.0.1", s3_port)),
        ]
        for relay in self.relays:
            relay.start()
        # The stack's Redis wants its password; the host scrapes this node's metrics at
        # NODE_ADDRESS, so they listen beyond the namespace's loopback.
        node = settings.replace(
            redis_url=_relayed(settings.redis_url, HOST_ADDRESS, redis_relay),
            s3_endpoint_url=f"http://{HOST_ADDRESS}:{s3_relay}",
            worker_metrics_port=self.metrics_port,
            worker_metrics_bind=NODE_ADDRESS,
        )
        argv = ["ip", "netns", "exec", self.namespace, *ATELIER_COMMAND]
        argv += ["worker", "--queues", "train", "--name", self.name]
        self.process = ManagedProcess(self.name, argv, child_env(node), log)
        return self.process

    def cut(self, seconds: float) -> None:
        """Take the node's link down for ``seconds``: it can reach nothing, nor be reached."""
        _ip("link", "set", self.host_link, "down")
        time.sleep(seconds)
        _ip("link", "set", self.host_link, "up")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(10)
        for relay in self.relays:
            relay.close()
        subprocess.run(["ip", "link", "delete", self.host_link], capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.namespace], capture_output=True)


def _relayed(url: str, host: str, port: int) -> str:
    """``url``, credentials kept, pointed at ``host:port``."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))
