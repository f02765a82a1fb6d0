"""Upload payloads built in memory: PNGs, zips (with links, for the hostile cases), npz."""

from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
from PIL import Image


def png(size: tuple[int, int], mode: str = "L", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def zip_of(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def npz_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, images=array)
    return buffer.getvalue()
