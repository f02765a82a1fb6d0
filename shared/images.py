"""PNG encoding and sample grids for image outputs."""

from __future__ import annotations

import io
import math
import struct
import time
import zlib
from concurrent.futures import Executor, Future

import numpy as np
from PIL import Image

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The zip records zip_pngs writes (PKWARE APPNOTE 4.3.7, 4.3.12, 4.3.16), as zipfile packs
# them: version 2.0, no flags, method 0 (stored), made on Unix with mode 0600.
_LOCAL_SIGNATURE, _CENTRAL_SIGNATURE, _END_SIGNATURE = 0x04034B50, 0x02014B50, 0x06054B50
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHH")
_END_RECORD = struct.Struct("<IHHHHIIH")
_OFFSET = struct.Struct("<II")  # a central record's external attributes and offset
_MADE_BY = 3 << 8 | 20
_EXTERNAL_ATTR = 0o600 << 16


def to_uint8(images: np.ndarray) -> np.ndarray:
    """[-1, 1] floats → uint8 pixels."""
    return np.clip((images + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """One (h, w, c) uint8 image → PNG bytes (grey for c == 1, RGB for c == 3)."""
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile (n, h, w, c) uint8 images into one image, row-major, with a dark gutter."""
    n, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    canvas = np.zeros(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, channels),
        dtype=np.uint8,
    )
    for index, image in enumerate(images):
        row, col = divmod(index, columns)
        top, left = padding + row * (height + padding), padding + col * (width + padding)
        canvas[top : top + height, left : left + width] = image
    return canvas


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_pngs(images: np.ndarray, level: int = 1) -> list[bytes]:
    """(n, h, w, c) uint8 images → one PNG each (grey for c == 1, RGB for c == 3).

    Hand-written because Pillow spent ~70 µs per small image in per-call set-up: for a
    1,000-image 28x28 batch this encoder took 13 ms against Pillow's 72 ms, next to a
    60 ms forward pass (bench/results). Scanlines use filter 0 and zlib level 1; the
    output is a standard PNG that Pillow and browsers read back bit for bit. zlib
    releases the GIL while compressing, so batches encode in parallel (``PngBatches``)."""
    count, height, width, channels = images.shape
    color_type = {1: 0, 3: 2}[channels]
    header = _PNG_SIGNATURE + _png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    )
    end = _png_chunk(b"IEND", b"")
    scanlines = np.zeros((count, height, 1 + width * channels), dtype=np.uint8)
    scanlines[:, :, 1:] = images.reshape(count, height, width * channels)
    return [
        header + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + end
        for rows in scanlines
    ]


def grid_png(images: np.ndarray) -> bytes:
    """grid.png of (n, h, w, c) uint8 ``images``: ``grid``, encoded as ``encode_pngs`` does."""
    return encode_pngs(grid(images)[np.newaxis])[0]


_Members = tuple[bytes, list[tuple[bytes, bytes, int]]]


class PngBatches:
    """PNGs of images that arrive in batches, each batch encoded (and, for a zip, packed
    as its members) on one of ``pool``'s threads while the caller makes the next (a
    DCGAN's forward pass; TensorFlow and zlib both release the GIL), so only the last
    batch's work follows the forward pass.

    One task per batch while the pass runs: splitting every batch over both threads as well
    cost more than it saved (bench/results/images-zip.md). The ``last`` batch is split over
    ``threads`` tasks, because then the pass is over and nothing else wants the cores: that
    tail is what a job waits for. Nothing waits for a free thread: what is queued is
    bounded by the job (at most 1,000 images) and holds pixels the job keeps anyway.
    ``pngs`` and ``zip`` answer in order, or raise the first encoding error before anything
    is stored; ``cancel`` drops the batches not yet started when the job stops."""

    def __init__(self, pool: Executor, threads: int = 1, zipped: bool = False) -> None:
        """``zipped``: pack each batch's zip members beside its PNGs, for ``zip``."""
        self._pool = pool
        self._threads = threads
        self._zipped = zipped
        self._stamp = _dos_time(time.localtime())  # one modification time for every member
        self._added = 0
        self._batches: list[Future[tuple[list[bytes], _Members | None]]] = []

    @property
    def zipped(self) -> bool:
        return self._zipped

    def add(self, images: np.ndarray, last: bool = False) -> None:
        """Start encoding (n, h, w, c) uint8 ``images``, the next in order; ``last`` says
        no more follow."""
        pieces = np.array_split(images, self._threads) if last else [images]
        for piece in pieces:
            if len(piece):
                self._batches.append(self._pool.submit(self._encode, piece, self._added))
                self._added += len(piece)

    def _encode(self, images: np.ndarray, first: int) -> tuple[list[bytes], _Members | None]:
        pngs = encode_pngs(images)
        return pngs, _zip_members(pngs, first, self._stamp) if self._zipped else None

    def pngs(self) -> list[bytes]:
        """Every image's PNG, in the order added, once all are encoded."""
        return [png for batch in self._batches for png in batch.result()[0]]

    def zip(self) -> bytes:
        """``zip_pngs`` of ``pngs``, from the members packed beside them (``zipped``)."""
        members = [batch.result()[1] for batch in self._batches]
        if not all(members):
            raise ValueError("made without zipped=True")
        return _zip_archive([part for part in members if part])

    def cancel(self) -> None:
        for batch in self._batches:
            batch.cancel()


def zip_pngs(pngs: list[bytes]) -> bytes:
    """PNGs as ``0000.png``, ``0001.png``… in one zip (stored: PNG is already deflated).

    Hand-written because ``zipfile`` spends its time in per-member bookkeeping (a ZipInfo,
    a write handle, a header rewritten on close): 23 ms of CPU for 1,000 small PNGs,
    about as long as encoding them. The archive is the plain subset ``zipfile`` writes for
    stored members (no zip64: at most 1,000 images of at most 64x64x3), which it,
    ``unzip`` and browsers read back."""
    return _zip_archive([_zip_members(pngs, 0, _dos_time(time.localtime()))])


def _zip_members(pngs: list[bytes], first: int, stamp: tuple[int, int]) -> _Members:
    """``pngs`` as stored zip members named from ``first`` on: their local records joined,
    and each one's central record in two parts with its local record's size between, since
    the offset that goes between them depends on the members before."""
    local: list[bytes] = []
    central: list[tuple[bytes, bytes, int]] = []
    for index, png in enumerate(pngs, first):
        name = b"%04d.png" % index
        fields = (*stamp, zlib.crc32(png), len(png), len(png), len(name))
        header = _LOCAL_HEADER.pack(_LOCAL_SIGNATURE, 20, 0, 0, *fields, 0)
        central.append(
            (
                _CENTRAL_HEADER.pack(_CENTRAL_SIGNATURE, _MADE_BY, 20, 0, 0, *fields, 0, 0, 0, 0),
                name,
                len(header) + len(name) + len(png),
            )
        )
        local += (header, name, png)
    return b"".join(local), central


def _zip_archive(parts: list[_Members]) -> bytes:
    """One zip of ``parts`` (``_zip_members`` of consecutive runs of members), in order."""
    directory: list[bytes] = []
    offset = 0
    for _, central in parts:
        for head, name, size in central:
            directory += (head, _OFFSET.pack(_EXTERNAL_ATTR, offset), name)
            offset += size
    count = sum(len(central) for _, central in parts)
    listing = b"".join(directory)
    if offset + len(listing) > 0xFFFFFFFF or count > 0xFFFF:
        raise ValueError("too large for a zip without zip64")
    end = _END_RECORD.pack(_END_SIGNATURE, 0, 0, count, count, len(listing), offset, 0)
    return b"".join([*(local for local, _ in parts), listing, end])


def _dos_time(moment: time.struct_time) -> tuple[int, int]:
    """MS-DOS (time, date) of ``moment``, as zip headers store them."""
    return (
        moment.tm_hour << 11 | moment.tm_min << 5 | moment.tm_sec // 2,
        (moment.tm_year - 1980) << 9 | moment.tm_mon << 5 | moment.tm_mday,
    )


def encode_npy(images: np.ndarray) -> bytes:
    """The uint8 array as a ``.npy`` file (``numpy.load`` reads it)."""
    buffer = io.BytesIO()
    np.save(buffer, images, allow_pickle=False)
    return buffer.getvalue()
