"""Uploads as the API checks them: good ones are normalised and previewed; hostile and
broken ones are refused with a problem+json 4xx, store nothing, and leave the server
serving; a dataset a job still reads cannot be deleted.

Fast tier: the app in this process, a real Redis, no worker (training on uploads is in
``test_datasets``)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from atelier.client import ApiError
from tests.conftest import TINY_TEXT, UPLOAD_LIMITS, InProcessApi
from tests.payloads import IMAGE_UPLOADS, npz_of, png, upload_corpus, upload_images, zip_of


def upload(
    api: InProcessApi, key: str, filename: str, data: bytes, **fields: Any
) -> requests.Response:
    return api.http.post(
        api.url("/v1/datasets"),
        headers={"Authorization": f"Bearer {key}"},
        files={"file": (filename, data)},
        data={k: str(v) for k, v in fields.items()},
        timeout=60,
    )


@IMAGE_UPLOADS
def test_image_uploads_are_resized_and_previewed(
    inprocess_api: InProcessApi, tmp_path: Path, size: int, channels: int, mode: str, fmt: str
) -> None:
    client = inprocess_api.client("uma")
    dataset = upload_images(client, tmp_path, size, channels, mode, fmt)
    assert dataset["name"] in [d["name"] for d in client.datasets()]


def test_text_upload_keeps_the_corpus(inprocess_api: InProcessApi, tmp_path: Path) -> None:
    client = inprocess_api.client("vera")
    dataset = upload_corpus(client, tmp_path)
    job = client.submit("train", "textgen", {**TINY_TEXT, "dataset": dataset["name"]})
    assert job["params"]["dataset"] == dataset["name"]


def test_delete_is_refused_while_a_job_reads_the_dataset(
    inprocess_api: InProcessApi, tmp_path: Path
) -> None:
    client = inprocess_api.client("xena")
    corpus = tmp_path / "c.txt"
    corpus.write_text("some words to read. " * 100)
    name = client.upload_dataset(corpus)["name"]
    endless = {"steps": 100_000, "sample_every": 100_000, "checkpoint_every": 100_000}
    job = client.submit("train", "textgen", {**TINY_TEXT, "dataset": name, **endless})
    with pytest.raises(ApiError) as busy:
        client.delete_dataset(name)
    assert busy.value.status == 409 and job["id"] in busy.value.problem["detail"]
    assert job["status"] == "queued"  # no worker here: a queued job reads it as well
    client.cancel(job["id"])
    client.wait(job["id"], timeout=60)
    client.delete_dataset(name)
    with pytest.raises(ApiError) as gone:
        client.dataset(name)
    assert gone.value.status == 404
    with pytest.raises(ApiError) as unusable:
        client.submit("train", "textgen", {**TINY_TEXT, "dataset": name})
    assert unusable.value.problem["type"] == "urn:atelier:problem:unknown-dataset"


def _bomb_png() -> bytes:
    side = int(UPLOAD_LIMITS["pixels"] ** 0.5) + 500
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG")  # tiny file, huge image
    return buffer.getvalue()


def _zip_bomb() -> bytes:
    return zip_of({"zeros.png": b"\0" * (UPLOAD_LIMITS["uncompressed"] + 1)})


HOSTILE: dict[str, tuple[Callable[[], tuple[str, bytes]], int, str]] = {
    "over the size cap": (
        lambda: ("big.zip", b"x" * (UPLOAD_LIMITS["bytes"] + 1)),
        413,
        "byte limit",
    ),
    "too many files": (
        lambda: ("many.zip", zip_of({f"{i}.png": b"" for i in range(UPLOAD_LIMITS["files"] + 1)})),
        413,
        "entries",
    ),
    "zip bomb": (lambda: ("bomb.zip", _zip_bomb()), 413, "zip bomb"),
    "decompression bomb": (
        lambda: ("px.zip", zip_of({"big.png": _bomb_png()})),
        413,
        "decompression bomb",
    ),
    "path traversal": (
        lambda: ("up.zip", zip_of({"../evil.png": png((8, 8))})),
        422,
        "outside the archive",
    ),
    "absolute path": (
        lambda: ("abs.zip", zip_of({"/etc/evil.png": png((8, 8))})),
        422,
        "outside the archive",
    ),
    "a drive letter": (
        lambda: ("drive.zip", zip_of({"C:evil.png": png((8, 8))})),
        422,
        "outside the archive",
    ),
    "a colon in a name": (
        lambda: ("colon.zip", zip_of({"cats:v2/a.png": png((8, 8))})),
        422,
        "has a ':' in its name",
    ),
    "symlink": (
        lambda: ("link.zip", zip_of({"a.png": png((8, 8))}, links=("b.png",))),
        422,
        "is a link",
    ),
    "truncated image": (
        lambda: ("cut.zip", zip_of({"a.png": png((30, 30))[:60]})),
        422,
        "truncated or corrupt",
    ),
    "corrupt archive": (
        lambda: ("junk.zip", b"PK\x03\x04 not really a zip"),
        422,
        "not a readable zip",
    ),
    "non-UTF-8 text": (lambda: ("latin.txt", "café crème".encode("latin-1")), 422, "not UTF-8"),
    "binary text": (lambda: ("bin.txt", b"abc\x00\x01\x02" * 50), 422, "binary"),
    "empty text": (lambda: ("empty.txt", b"  \n "), 422, "empty"),
    "archive without images": (
        lambda: ("none.zip", zip_of({"readme.md": b"hi"})),
        422,
        "no images",
    ),
    "npz of floats": (lambda: ("f.npz", npz_of(np.zeros((4, 8, 8), np.float32))), 422, "uint8"),
    "npz of the wrong shape": (lambda: ("s.npz", npz_of(np.zeros((4, 8), np.uint8))), 422, "shape"),
    "unsupported file": (lambda: ("notes.pdf", b"%PDF-1.4"), 422, "Unsupported file"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_uploads_are_refused_and_nothing_is_stored(
    inprocess_api: InProcessApi, case: str
) -> None:
    make, status, mentions = HOSTILE[case]
    filename, data = make()
    key = inprocess_api.raw_key("mallory")
    response = upload(inprocess_api, key, filename, data)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert mentions in response.json()["detail"]
    assert inprocess_api.redis.zcard("atelier:owner:mallory:datasets") == 0
    stored = inprocess_api.settings.local_storage_dir / "owners" / "mallory"
    assert not stored.exists() or not any(stored.rglob("*"))
    assert inprocess_api.http.get(inprocess_api.url("/readyz"), timeout=10).ok


def test_bad_form_fields(inprocess_api: InProcessApi) -> None:
    key = inprocess_api.raw_key("mallory")
    response = upload(inprocess_api, key, "a.zip", zip_of({"a.png": png((8, 8))}), image_size=30)
    assert response.status_code == 422 and "image_size" in response.json()["detail"]
    missing = inprocess_api.http.post(
        inprocess_api.url("/v1/datasets"),
        files={"title": (None, "x")},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert missing.status_code == 422 and "'file'" in missing.json()["detail"]
