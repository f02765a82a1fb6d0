"""SeaweedFS on one host of the cluster soak: the tests' server (``cli.seaweedfs``) started
inside the host's namespace and bound to the host's own address, so the other hosts reach
it, with the soak's bucket made once it answers.

A stop and a start on the same directory bring back every object it acknowledged.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from atelier.cli.processes import wait_until
from atelier.cli.seaweedfs import SeaweedServer
from soak.hosts import Host

S3_PORT = 8333
BUCKET_SECONDS = 30.0


@dataclass
class HostSeaweed:
    host: Host
    directory: Path
    access_key: str
    secret_key: str
    bucket: str
    server: SeaweedServer = field(init=False)

    def __post_init__(self) -> None:
        self.server = SeaweedServer(
            self.directory,
            S3_PORT,
            self.access_key,
            self.secret_key,
            host=self.host.address,
            wrap=tuple(self.host.wrap()),
        )

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def start(self) -> None:
        """Start it (on its data, if it has any) and wait until the bucket is there."""
        self.server.start()
        try:
            wait_until(self._bucket_ready, BUCKET_SECONDS, f"the bucket on {self.host.name}")
        except BaseException:
            self.stop()
            raise

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.server.stop(sig)

    def _bucket_ready(self) -> bool:
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
        except (BotoCoreError, ClientError) as exc:
            raise ConnectionError(f"{self.endpoint}: {exc}") from exc  # "not up yet"
        return True
