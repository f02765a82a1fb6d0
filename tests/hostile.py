"""Hostile payloads built by hand, for the corpus in ``test_hostile_input``: files whose
headers lie (a PNG or JPEG declaring 30000x30000, an ``.npy`` declaring 10^12 images),
zips whose directory points many names at one blob or repeats a name, and the helpers
that check a refusal stored nothing."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
import zlib
from typing import Any

import numpy as np
import requests
from PIL import Image

from atelier.shared.queue import queue_length
from tests.conftest import InProcessApi

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROBLEM = "urn:atelier:problem:"
OWNER = "mallory"


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_declaring(width: int, height: int) -> bytes:
    """A 57-byte PNG whose header declares ``width`` x ``height`` grey pixels (no data)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small real JPEG with its frame header patched to declare ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")  # baseline SOF0: length(2) precision(1) height width
    data[frame + 5 : frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_named_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


def zip_pointing_many_names_at_one_blob(blob: bytes, names: int, same: bool = False) -> bytes:
    """One stored entry, then a central directory of ``names`` records all pointing at it
    (all named like the entry when ``same``, which zipfile itself reads without a word)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("00000.png", blob)
    data = buffer.getvalue()
    start = struct.unpack("<I", data[-6:-2])[0]  # EOCD: central directory offset
    record = data[start:-22]
    directory = b"".join(
        record[:46] + f"{0 if same else i:05d}.png".encode() + record[46 + 9 :]
        for i in range(names)
    )
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, names, names, len(directory), start, 0)
    return data[:start] + directory + end


def zip_repeating_a_name(blob: bytes) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name": that is the point
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("a.png", blob)
            archive.writestr("a.png", blob)
    return buffer.getvalue()


def npz_declaring(shape: tuple[int, ...], data: bytes = b"\0" * 64) -> bytes:
    """An ``.npz`` whose ``images.npy`` header declares ``shape`` but holds ``data``."""
    npy = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(npy, header)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images.npy", npy.getvalue() + data)
    return buffer.getvalue()


def npz_compressed(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=array)
    return buffer.getvalue()


def npz_of_objects() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, images=np.array([{"x": 1}], dtype=object))
    return buffer.getvalue()


def assert_problem(response: requests.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM + slug, body
    assert body["status"] == status and body["detail"]


def assert_nothing_stored(api: InProcessApi, owner: str) -> None:
    """No dataset, job, idempotency record or queued message, no object, and the API up."""
    for pattern in ("atelier:dataset:*", "atelier:job:*", "atelier:idempotency:*"):
        assert not list(api.redis.scan_iter(pattern)), pattern
    for listing in (f"atelier:owner:{owner}:datasets", f"atelier:owner:{owner}:jobs"):
        assert api.redis.zcard(listing) == 0, listing
    for queue in (api.settings.train_queue, api.settings.generate_queue):
        assert queue_length(api.redis, queue) == 0, queue
    stored = api.settings.local_storage_dir / "owners" / owner
    assert not stored.exists() or not any(stored.rglob("*")), list(stored.rglob("*"))
    assert api.http.get(api.url("/readyz"), timeout=10).ok


def upload(api: InProcessApi, filename: str, data: bytes, **fields: Any) -> requests.Response:
    return api.http.post(
        api.url("/v1/datasets"),
        headers={"Authorization": f"Bearer {api.raw_key(OWNER)}"},
        files={"file": (filename, data)},
        data={k: str(v) for k, v in fields.items()},
        timeout=60,
    )
