"""Both object-store backends through the same interface; S3 over HTTP (SeaweedFS's
server, whose own behaviour tests/test_s3.py covers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from atelier.shared.errors import NotFound
from atelier.shared.settings import Settings
from atelier.shared.storage import LocalObjectStore, ObjectStore, make_object_store
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


def test_local_store_refuses_keys_outside_its_root(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    (tmp_path / "secret").write_text("no")
    with pytest.raises(NotFound):
        store.get_bytes("../secret")
    assert store.presigned_url("owners/a/x") is None
