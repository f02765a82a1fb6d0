"""Hostile payloads built by hand, for the corpus in ``test_hostile_input``: files whose
headers lie (a PNG or JPEG declaring 30000x30000, an ``.npy`` declaring 10^12 images),
zips whose directory points many names at one blob or repeats a name, and the helpers
that check a refusal stored nothing."""

from __future__ import annotations

import io
import itertools
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
        assert not list(api.admin.scan_iter(pattern)), pattern
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


LOCAL = struct.Struct(
    "<4s5H3I2H"
)  # signature, version, flags, method, time, date, crc, sizes, lengths
CENTRAL = struct.Struct("<4s6H3I5H2I")
ZIP64_END = struct.Struct("<4sQ2H2I4Q")
ZIP64_LOCATOR = struct.Struct("<4sIQI")
END = struct.Struct("<4s4H2IH")


def zip_of_empty_entries(entries: int, declared: int | None = None, zip64: bool = False) -> bytes:
    """A stored zip of ``entries`` empty files named ``0000000`` on, written by hand (zipfile
    takes ~40 s for the 740,000 that fit 64 MiB). Its end records declare ``declared``
    entries (default: the truth); with ``zip64`` (or over 65,535 entries) the count is in a
    zip64 end record and the classic one says 0xFFFF, as zipfile writes it."""
    declared = entries if declared is None else declared
    names = [f"{i:07d}".encode() for i in range(entries)]
    local = [LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 33, 0, 0, 0, 7, 0) + n for n in names]
    offsets = itertools.accumulate((len(part) for part in local), initial=0)
    central = [
        CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 0, 0, 33, 0, 0, 0, 7, 0, 0, 0, 0, 0, offset) + name
        for name, offset in zip(names, offsets, strict=False)
    ]
    body, directory = b"".join(local), b"".join(central)
    start, size = len(body), len(directory)
    if not (zip64 or declared > 0xFFFF):
        return body + directory + END.pack(b"PK\x05\x06", 0, 0, declared, declared, size, start, 0)
    end64 = ZIP64_END.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, declared, declared, size, start)
    locator = ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, start + size, 1)
    end = END.pack(b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body + directory + end64 + locator + end


def zip_bomb_of_empty_entries(limit: int) -> bytes:
    """As many empty entries as fit ``limit`` bytes (90 bytes each)."""
    return zip_of_empty_entries((limit - 200) // 90)


def zip64_claiming(entries: int, files: dict[str, bytes]) -> bytes:
    """A real zip of ``files`` whose zip64 end record claims ``entries`` entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    data = buffer.getvalue()
    *_, size, start, _ = END.unpack(data[-END.size :])
    end64 = ZIP64_END.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, size, start)
    locator = ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, start + size, 1)
    end = END.pack(b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[: start + size] + end64 + locator + end


def npz_of_members(members: dict[str, bytes]) -> bytes:
    """An ``.npz`` (a zip) holding exactly ``members``, whatever they are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npz_of_zeros(shape: tuple[int, ...]) -> bytes:
    """A deflated ``images.npy`` of uint8 zeros: ~1 KB on the wire for each MB it decodes
    to, written a chunk at a time (the array itself is never built)."""
    buffer = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    chunk = bytes(1 << 20)
    left = int(np.prod(shape))
    with (
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("images.npy", "w", force_zip64=True) as member,
    ):
        np.lib.format.write_array_header_1_0(member, header)
        while left > 0:
            member.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
    return buffer.getvalue()


ABC_TUNE = "X:{n}\nM:6/8\nL:1/8\nR:jig\nK:D\nA|dfa agf|e2d cBA|dfa agf|e3 d2:|\n"


def abc_of_tunes(count: int) -> bytes:
    """``count`` readable jigs: music21 takes ~30 ms over each."""
    return "\n".join(ABC_TUNE.format(n=n + 1) for n in range(count)).encode()
