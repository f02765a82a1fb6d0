"""Upload payloads built in memory: PNGs, zips (with links, for the hostile cases), npz."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from atelier.client import Client, Dataset


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


IMAGE_UPLOADS = pytest.mark.parametrize(
    ("size", "channels", "mode", "fmt"),
    [(28, 1, "L", "zip"), (32, 3, "RGB", "zip"), (64, 1, "L", "npz")],
)
"""Each upload format and size: a zip of 40x50 PNGs, or an npz of 48x48 grey images."""


def upload_images(
    client: Client, directory: Path, size: int, channels: int, mode: str, fmt: str
) -> Dataset:
    """Upload 24 images, check they were resized and previewed; the dataset."""
    source = directory / f"upload-{size}.{fmt}"
    if fmt == "zip":
        source.write_bytes(zip_of({f"img/{i:03d}.png": png((40, 50), mode, i) for i in range(24)}))
    else:
        pixels = np.random.default_rng(0).integers(0, 255, (24, 48, 48), dtype=np.uint8)
        source.write_bytes(npz_of(pixels))
    dataset = client.upload_dataset(source, title="mine", image_size=size, channels=channels)
    shape = (dataset["modality"], dataset["count"], dataset["image_size"], dataset["channels"])
    assert shape == ("image", 24, size, channels)
    preview_url = client.dataset(dataset["name"])["preview_url"]
    assert preview_url is not None
    preview = Image.open(io.BytesIO(client.fetch(preview_url)))
    assert preview.size == (5 * size, 5 * size)
    assert client.dataset(dataset["name"])["title"] == "mine"
    return dataset


def upload_corpus(client: Client, directory: Path) -> Dataset:
    """Upload a small repetitive corpus and check it was kept whole; the dataset."""
    corpus = directory / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\nthe dog sat on the log.\n" * 200)
    dataset = client.upload_dataset(corpus)
    assert dataset["modality"] == "text" and dataset["count"] == len(corpus.read_text())
    excerpt = client.dataset(dataset["name"])["excerpt"]
    assert excerpt is not None and excerpt.startswith("the cat sat on the mat.")
    return dataset
