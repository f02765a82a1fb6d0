"""Both object-store backends through the same interface; S3 over HTTP (moto's server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from atelier.shared.errors import NotFound
from atelier.shared.settings import Settings
from atelier.shared.storage import LocalObjectStore, ObjectStore, S3ObjectStore, make_object_store
from tests.conftest import s3_settings


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield make_object_store(Settings(local_storage_dir=tmp_path / "objects"))
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        yield make_object_store(Settings.from_env({}, **s3_settings(endpoint, "storage-test")))


def test_round_trip(objects: ObjectStore) -> None:
    key = "owners/alice/jobs/job_1/outputs/a.bin"
    assert not objects.exists(key)
    assert objects.put_bytes(key, b"\x00hello", "application/octet-stream") == 6
    assert objects.exists(key)
    assert objects.get_bytes(key) == b"\x00hello"
    with pytest.raises(NotFound):
        objects.get_bytes("owners/alice/none")
    objects.delete(key)
    assert not objects.exists(key)
    objects.delete(key)  # deleting what is gone is not an error
    objects.check()


def test_s3_presigned_url_downloads_without_credentials(s3_endpoint: str) -> None:
    store = make_object_store(Settings.from_env({}, **s3_settings(s3_endpoint, "presign")))
    assert isinstance(store, S3ObjectStore)
    store.put_bytes("owners/a/x.txt", b"data", "text/plain")
    url = store.presigned_url("owners/a/x.txt")
    assert url is not None
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"data"


def test_local_store_refuses_keys_outside_its_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    (tmp_path / "secret").write_text("no")
    with pytest.raises(NotFound):
        store.get_bytes("../secret")
    assert store.presigned_url("owners/a/x") is None



@pytest.mark.slow  # ~25 s of waiting for a server to come back
def test_a_worker_rides_out_an_object_store_outage(redis_base_url: str) -> None:
    """Longer than botocore's own retries (~8 s): a runner built while the S3 server is
    down, and a read made while it is down, wait for it. The soak saw generation jobs fail
    on such reads, and tasks raise before their claim (dropping their message) while the
    first job of a process opened the store."""
    from moto.server import ThreadedMotoServer

    from atelier.cli.processes import free_port
    from atelier.workers.runner import JobRunner

    port = free_port()
    settings = Settings.from_env(
        {},
        redis_url=f"{redis_base_url}/9",
        upload_retry_seconds=60,
        **s3_settings(f"http://127.0.0.1:{port}", "outage"),
    )
    servers = [ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)]
    servers[0].start()
    make_object_store(settings).put_bytes("owners/a/x", b"kept", "text/plain")

    def outage(seconds: float) -> threading.Thread:
        servers[-1].stop()

        def come_back() -> None:
            time.sleep(seconds)
            # moto keeps its buckets in this process: the new server has the object.
            servers.append(ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False))
            servers[-1].start()

        thread = threading.Thread(target=come_back)
        thread.start()
        return thread

    try:
        started = time.monotonic()
        returning = outage(12)
        runner = JobRunner(settings)  # opens the store: waits instead of raising
        assert time.monotonic() - started >= 11
        returning.join()
        started = time.monotonic()
        returning = outage(12)
        assert runner.objects.get_bytes("owners/a/x") == b"kept"
        assert time.monotonic() - started >= 11
    finally:
        returning.join()
        servers[-1].stop()
