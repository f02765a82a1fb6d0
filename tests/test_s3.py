"""The S3 store against a real S3 server (SeaweedFS's ``weed mini``) over HTTP, signed with
the tests' credentials: what users meet and a mock never showed. Credentials refused,
presigned downloads, multipart uploads of checkpoints, deletes, listing past one page,
and outages (stop, or kill -9, then start again on the same data)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
import pytest
import requests
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config as BotoConfig

from atelier.cli.seaweedfs import SeaweedServer
from atelier.shared.errors import NotFound, ServiceUnavailable
from atelier.shared.settings import Settings
from atelier.shared.storage import ObjectStore, S3ObjectStore, make_object_store
from tests.conftest import S3_ACCESS_KEY, S3_SECRET_KEY, s3_server, s3_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REFUSED = r"SignatureDoesNotMatch|InvalidAccessKeyId"  # a wrong secret, an unknown key
CHECKPOINT_BYTES = 20 << 20  # over the store's 16 MiB multipart threshold: 3 parts of 8 MiB


def s3_store(endpoint: str, bucket: str = "", **overrides: Any) -> S3ObjectStore:
    """A store on a bucket of its own (made here, as ``make_object_store`` makes it)."""
    settings = Settings.from_env({}, **s3_settings(endpoint, bucket or fresh_bucket()), **overrides)
    store = make_object_store(settings)
    assert isinstance(store, S3ObjectStore)
    return store


def fresh_bucket() -> str:
    return f"t-{uuid.uuid4().hex[:16]}"


def raw_client(endpoint: str) -> S3Client:
    """boto3 itself, to see what the server holds without going through our store."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        config=BotoConfig(retries={"max_attempts": 1}, max_pool_connections=8),
    )


def status_of(error: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> int:
    status: int = error.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return status


def test_a_wrong_secret_or_key_is_refused(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint)
    store.put_bytes("owners/a/x", b"secret data", "text/plain")
    for wrong in (
        {"s3_secret_access_key": "not-the-secret"},
        {"s3_access_key_id": "nobody", "s3_secret_access_key": "not-the-secret"},
    ):
        settings = Settings.from_env({}, **{**s3_settings(s3_endpoint, store.bucket), **wrong})
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            make_object_store(settings)
        assert status_of(refused) == 403
        impostor = S3ObjectStore(settings)
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            impostor.get_bytes("owners/a/x")
        assert status_of(refused) == 403
        # Refused, not "missing": a store that cannot read must never say an object is gone.
        with pytest.raises(botocore.exceptions.ClientError):
            impostor.exists("owners/a/x")
        with pytest.raises(ServiceUnavailable):
            impostor.check()
        # Wrapped in S3UploadFailedError by some boto3 versions, raised as it is by others.
        with pytest.raises((botocore.exceptions.ClientError, S3UploadFailedError), match=REFUSED):
            impostor.put_bytes("owners/a/x", b"overwritten", "text/plain")
    unsigned = requests.get(f"{s3_endpoint}/{store.bucket}/owners/a/x", timeout=10)
    assert unsigned.status_code == 403
    assert store.get_bytes("owners/a/x") == b"secret data"


def test_stores_opened_at_once_share_the_bucket_they_make(s3_endpoint: str) -> None:
    """Workers starting together each find the bucket missing and make it: all but one are
    answered BucketAlreadyOwnedByYou, which must not fail their start."""
    settings = Settings.from_env({}, **s3_settings(s3_endpoint, fresh_bucket()))
    together = threading.Barrier(6)

    def open_store(number: int) -> ObjectStore:
        together.wait()
        return make_object_store(settings)

    with ThreadPoolExecutor(6) as pool:
        stores = list(pool.map(open_store, range(6)))
    stores[0].put_bytes("owners/a/x", b"shared", "text/plain")
    assert [store.get_bytes("owners/a/x") for store in stores] == [b"shared"] * 6


def test_a_bucket_is_made_in_the_configured_region(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint, s3_region="eu-west-1")
    store.put_bytes("owners/a/x", b"far away", "text/plain")
    assert store.get_bytes("owners/a/x") == b"far away"


def test_presigned_downloads(s3_endpoint: str) -> None:
    """Fetched with plain requests and no credentials; a changed signature or key, or an
    expired URL, is refused."""
    store = s3_store(s3_endpoint)
    data = bytes(range(256)) * 64
    store.put_bytes("owners/a/jobs/j/a1/outputs/grid.png", data, "image/png")
    url = store.presigned_url("owners/a/jobs/j/a1/outputs/grid.png")
    assert url is not None and "X-Amz-Signature=" in url
    fetched = requests.get(url, timeout=10)
    assert fetched.status_code == 200 and fetched.content == data
    assert fetched.headers["Content-Type"] == "image/png"

    signature = url.rsplit("X-Amz-Signature=", 1)[1][:64]
    tampered = url.replace(signature, ("0" if signature[0] != "0" else "1") + signature[1:])
    assert requests.get(tampered, timeout=10).status_code == 403
    store.put_bytes("owners/b/private.txt", b"not yours", "text/plain")
    other_key = url.replace("owners/a/jobs/j/a1/outputs/grid.png", "owners/b/private.txt")
    assert requests.get(other_key, timeout=10).status_code == 403

    short_lived = s3_store(s3_endpoint, store.bucket, s3_presign_expires_seconds=1)
    expiring = short_lived.presigned_url("owners/a/jobs/j/a1/outputs/grid.png")
    assert expiring is not None
    time.sleep(1.5)  # SigV4 dates are whole seconds: over 1 s past the one signed
    expired = requests.get(expiring, timeout=10)
    assert expired.status_code == 403 and "expired" in expired.text


def test_checkpoints_over_the_threshold_upload_in_parts(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint)
    checkpoint = os.urandom(CHECKPOINT_BYTES)
    key = "owners/a/jobs/j/a1/checkpoints/step-0000100.npz"
    assert store.put_bytes(key, checkpoint, "application/octet-stream") == CHECKPOINT_BYTES
    store.put_bytes("owners/a/small.txt", b"one part", "text/plain")
    client = raw_client(s3_endpoint)
    head = client.head_object(Bucket=store.bucket, Key=key)
    # A multipart object's ETag is the parts' digest with their count: "...-3".
    assert head["ETag"].strip('"').endswith("-3"), head["ETag"]
    assert head["ContentLength"] == CHECKPOINT_BYTES
    assert head["ContentType"] == "application/octet-stream"
    assert "-" not in client.head_object(Bucket=store.bucket, Key="owners/a/small.txt")["ETag"]
    assert store.get_bytes(key) == checkpoint
    assert client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(NotFound):
        store.get_bytes(key)


def test_deletes_leave_nothing_listed(s3_endpoint: str) -> None:
    """SeaweedFS keeps objects in a directory tree: the folders a job's keys made must not
    come back as keys once the objects are deleted, nor may a sibling prefix leak in."""
    store = s3_store(s3_endpoint)
    job = "owners/a/jobs/j/"
    keys = [f"{job}a1/samples/step-0000010.png", f"{job}a1/checkpoints/step-0000010.npz"]
    for key in [*keys, "owners/a/jobs/j2/a1/outputs/x", "owners/ab/x"]:
        store.put_bytes(key, b"x", "application/octet-stream")
    assert store.list_keys(job) == sorted(keys)
    assert store.list_keys("owners/a/") == sorted([*keys, "owners/a/jobs/j2/a1/outputs/x"])
    for key in keys:
        store.delete(key)
        store.delete(key)  # what is gone is no error
    assert store.list_keys(job) == []
    assert store.list_keys("owners/a/") == ["owners/a/jobs/j2/a1/outputs/x"]
    assert not store.exists(keys[0])


def test_listing_pages_past_a_thousand_keys(s3_endpoint: str) -> None:
    """S3 answers at most 1,000 keys a request: list_keys must follow the pages."""
    store = s3_store(s3_endpoint)
    client = raw_client(s3_endpoint)
    prefix = "owners/a/jobs/j/a1/samples/"
    keys = [f"{prefix}step-{step:07d}.png" for step in range(1001)]
    with ThreadPoolExecutor(4) as pool:  # ~2 s; through upload_fileobj it is twice that
        list(pool.map(lambda key: client.put_object(Bucket=store.bucket, Key=key, Body=b""), keys))
    client.put_object(Bucket=store.bucket, Key="owners/a/jobs/j/a2/samples/other", Body=b"")
    assert store.list_keys(prefix) == keys
    assert len(store.list_keys("owners/a/")) == 1002


@pytest.fixture()
def own_server(tmp_path: Path) -> Iterator[SeaweedServer]:
    server = s3_server(tmp_path / "seaweedfs")
    server.start()
    yield server
    server.stop(sig=signal.SIGKILL)  # its data goes with tmp_path: no need to wait on a flush


@pytest.mark.slow  # ~6 s: a stop, two starts, three requests failing through their retries
def test_an_outage_fails_fast_and_loses_nothing(own_server: SeaweedServer) -> None:
    """While the server is down the store raises what the worker counts as transient
    (botocore's ConnectionError: botocore's own retries give up within a second, and the
    worker's ``patiently`` rides out longer, the slow test below) and ``check`` says
    unavailable. Started again on the same data and port, after a stop and after a kill -9,
    every object acknowledged before is there, the multipart checkpoint whole."""
    store = s3_store(own_server.endpoint)
    checkpoint = os.urandom(CHECKPOINT_BYTES)
    store.put_bytes("owners/a/checkpoint.npz", checkpoint, "application/octet-stream")
    store.put_bytes("owners/a/x.txt", b"kept", "text/plain")
    own_server.stop()
    with pytest.raises(ServiceUnavailable):
        store.check()
    with pytest.raises(botocore.exceptions.ConnectionError):
        store.get_bytes("owners/a/x.txt")
    with pytest.raises(botocore.exceptions.ConnectionError):
        store.exists("owners/a/x.txt")  # down is not "missing"

    own_server.start()
    store.check()
    assert store.get_bytes("owners/a/x.txt") == b"kept"
    store.put_bytes("owners/a/y.txt", b"after", "text/plain")
    own_server.stop(sig=signal.SIGKILL)
    own_server.start()
    assert store.get_bytes("owners/a/checkpoint.npz") == checkpoint
    assert store.list_keys("owners/a/") == [
        "owners/a/checkpoint.npz",
        "owners/a/x.txt",
        "owners/a/y.txt",
    ]


@pytest.mark.slow  # ~25 s of waiting for a server to come back
def test_a_worker_rides_out_an_object_store_outage(
    redis_base_url: str, own_server: SeaweedServer
) -> None:
    """Longer than botocore's own retries: a runner built while the S3 server is down, and a
    read made while it is down, wait for it. The soak saw generation jobs fail on such
    reads, and tasks raise before their claim (dropping their message) while the first job
    of a process opened the store."""
    from atelier.workers.runner import JobRunner

    settings = Settings.from_env(
        {},
        redis_url=f"{redis_base_url}/9",
        upload_retry_seconds=60,
        **s3_settings(own_server.endpoint, "outage"),
    )
    make_object_store(settings).put_bytes("owners/a/x", b"kept", "text/plain")

    def outage(seconds: float) -> threading.Thread:
        own_server.stop()
        coming_back = threading.Timer(seconds, own_server.start)
        coming_back.start()
        return coming_back

    returning = outage(12)
    try:
        started = time.monotonic()
        runner = JobRunner(settings)  # opens the store: waits instead of raising
        assert time.monotonic() - started >= 11
        returning.join()
        returning = outage(12)
        started = time.monotonic()
        assert runner.objects.get_bytes("owners/a/x") == b"kept"
        assert time.monotonic() - started >= 11
    finally:
        returning.join()
