"""SeaweedFS on one host of the cluster soak: ``weed mini`` (master, volume server, filer
and S3 gateway in one process) inside the host's namespace, every component bound to the
host's own address on fixed ports, as on a machine of its own. ``cli.seaweedfs`` starts
the loopback-only server of the tests; this one is reached from the other hosts.

A stop and a start on the same directory bring back every object it acknowledged.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from atelier.cli.datadir import write_private
from atelier.cli.processes import ManagedProcess, wait_until
from atelier.cli.seaweedfs import find_weed
from soak.hosts import Host

S3_PORT = 8333
# A host has its addresses to itself, so each component takes its usual port.
COMPONENT_PORTS = {
    "master.port": 9333,
    "master.port.grpc": 19333,
    "volume.port": 8080,
    "volume.port.grpc": 18080,
    "filer.port": 8888,
    "filer.port.grpc": 18888,
    "s3.port.grpc": 18333,
    "admin.port": 23646,
    "admin.port.grpc": 33646,
}
# No WebDAV, Iceberg or Lance endpoints, no admin UI, no telemetry (nothing leaves the
# machine), no bucket made by a PUT to a missing one.
QUIET_FLAGS = (
    "-webdav=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
    "-admin.ui=false",
    "-master.telemetry=false",
    "-s3.autoCreateBucket=false",
    "-volume.preStopSeconds=0",
)
START_SECONDS = 60.0
PROBE_KEY = "soak-probe"


@dataclass
class HostSeaweed:
    host: Host
    directory: Path
    access_key: str
    secret_key: str
    bucket: str
    process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host.address}:{S3_PORT}"

    def start(self) -> None:
        """Start it and wait until the bucket takes and returns an object (S3 answers
        before the volume server has registered; a write would find no volume then)."""
        directory = self.directory.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        identities = directory / "s3-identities.json"
        write_identity(identities, self.access_key, self.secret_key)
        argv = [
            *self.host.wrap(),
            find_weed(),
            "mini",
            f"-dir={directory}",
            f"-ip={self.host.address}",
            f"-ip.bind={self.host.address}",
            f"-s3.port={S3_PORT}",
            f"-s3.config={identities}",
            *(f"-{flag}={port}" for flag, port in COMPONENT_PORTS.items()),
            *QUIET_FLAGS,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
        env["HOME"] = str(directory)  # weed reads ~/.seaweedfs/*.toml
        log = directory / "weed.log"
        self.process = ManagedProcess(f"seaweedfs@{self.host.name}", argv, env, log)
        try:
            wait_until(self._ready, START_SECONDS, f"SeaweedFS on {self.host.name}")
        except BaseException:
            self.stop()
            raise

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            self.process.stop(timeout=10, sig=sig)
            self.process = None

    def _ready(self) -> bool:
        assert self.process is not None
        self.process.raise_if_exited(" at start")
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=3),
        )
        try:
            try:
                client.head_bucket(Bucket=self.bucket)
            except ClientError:
                client.create_bucket(Bucket=self.bucket)
            client.put_object(Bucket=self.bucket, Key=PROBE_KEY, Body=b"up")
            body = client.get_object(Bucket=self.bucket, Key=PROBE_KEY)["Body"].read()
            client.delete_object(Bucket=self.bucket, Key=PROBE_KEY)
        except (BotoCoreError, ClientError) as exc:
            raise ConnectionError(f"{self.endpoint}: {exc}") from exc  # "not up yet"
        return body == b"up"


def write_identity(path: Path, access_key: str, secret_key: str) -> None:
    """The S3 gateway's identities file (0600: it holds the secret): our one identity."""
    identity = {
        "name": "atelier",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    write_private(path, json.dumps({"identities": [identity]}, indent=2))
