"""PNG encoding and sample grids for image outputs."""

from __future__ import annotations

import io
import math
import os
import struct
import zipfile
import zlib
from concurrent.futures import Executor

import numpy as np
from PIL import Image

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PARALLEL_ENCODE_MIN = 128  # images; below this, handing work to threads costs more


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


def encode_pngs(images: np.ndarray, level: int = 1, pool: Executor | None = None) -> list[bytes]:
    """(n, h, w, c) uint8 images → one PNG each (grey for c == 1, RGB for c == 3).

    Hand-written because Pillow spent ~70 µs per small image in per-call set-up: for a
    1,000-image 28x28 batch this encoder took 13 ms against Pillow's 72 ms, next to a
    60 ms forward pass (bench/results). Scanlines use filter 0 and zlib level 1; the
    output is a standard PNG that Pillow and browsers read back bit for bit.

    With a ``pool``, large batches are split across its threads: zlib releases the GIL
    while compressing, and 2 threads took the 1,000 images from 12.6 ms to 6.8 ms."""
    if pool is not None and len(images) >= PARALLEL_ENCODE_MIN:
        chunks = np.array_split(images, os.cpu_count() or 1)
        return [png for part in pool.map(encode_pngs, chunks) for png in part]
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


def zip_pngs(pngs: list[bytes]) -> bytes:
    """PNGs as ``0000.png``, ``0001.png``… in one zip (stored: PNG is already deflated)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index, png in enumerate(pngs):
            archive.writestr(f"{index:04d}.png", png)
    return buffer.getvalue()


def encode_npy(images: np.ndarray) -> bytes:
    """The uint8 array as a ``.npy`` file (``numpy.load`` reads it)."""
    buffer = io.BytesIO()
    np.save(buffer, images, allow_pickle=False)
    return buffer.getvalue()
