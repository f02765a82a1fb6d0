"""The image outputs of a generate job without TensorFlow: PNGs encoded batch by batch on
threads as the ones encoded at once, an encoding failure raised before anything is stored,
and images.zip as ``zipfile`` would write it, read back by ``zipfile`` and ``unzip``."""

from __future__ import annotations

import io
import shutil
import subprocess
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from atelier.shared import images
from atelier.shared.images import PngBatches, encode_pngs, zip_pngs


def test_batches_encoded_on_threads_are_the_pngs_encoded_at_once() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (700, 6, 5, 3), np.uint8)
    with ThreadPoolExecutor(2) as pool:
        batches = PngBatches(pool)
        for part in np.split(pixels, [250, 257, 500]):
            batches.add(part)
        assert batches.pngs() == encode_pngs(pixels)


@pytest.mark.parametrize("count", [1, 3, 70, 1000])
def test_the_zip_packed_beside_the_batches_is_zip_pngs(
    count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members packed batch by batch, the last batch split over the threads, make the
    archive ``zip_pngs`` makes of every PNG at once, byte for byte."""
    monkeypatch.setattr(images, "_dos_time", lambda moment: (0x6000, 0x5986))  # one second
    pixels = np.random.default_rng(count).integers(0, 256, (count, 6, 5, 1), np.uint8)
    with ThreadPoolExecutor(2) as pool:
        batches = PngBatches(pool, threads=2, zipped=True)
        parts = np.array_split(pixels, 4)
        for index, part in enumerate(parts):
            batches.add(part, last=index == len(parts) - 1)
        assert batches.pngs() == encode_pngs(pixels)
        assert batches.zip() == zip_pngs(batches.pngs())


def test_an_encoding_failure_is_raised_and_the_batches_not_started_are_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The job's PNGs are all in hand before the first is stored, so a failure here leaves
    no output; the batches still queued behind it are not encoded for nothing."""
    started, release = threading.Event(), threading.Event()
    encoded: list[str] = []

    def encode(part: np.ndarray) -> list[bytes]:
        if not encoded:
            encoded.append("first")
            started.set()
            release.wait(10)
            raise ValueError("encoder broke")
        encoded.append("later")
        return encode_pngs(part)

    monkeypatch.setattr(images, "encode_pngs", encode)
    with ThreadPoolExecutor(1) as pool:
        batches = PngBatches(pool)
        for _ in range(3):
            batches.add(np.zeros((4, 6, 5, 1), np.uint8))
        assert started.wait(10)
        batches.cancel()
        release.set()
        with pytest.raises(ValueError, match="encoder broke"):
            batches.pngs()
    assert encoded == ["first"]


def _pngs(count: int, channels: int = 1) -> list[bytes]:
    rng = np.random.default_rng(count)
    return encode_pngs(rng.integers(0, 256, (count, 6, 5, channels), np.uint8))


def _zipfile_archive(pngs: list[bytes]) -> bytes:
    """What ``zip_pngs`` wrote when it used ``zipfile``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index, png in enumerate(pngs):
            archive.writestr(f"{index:04d}.png", png)
    return buffer.getvalue()


@pytest.mark.parametrize("count", [0, 1, 65, 1000])
def test_images_zip_has_the_members_zipfile_writes(count: int) -> None:
    pngs = _pngs(count)
    ours, reference = zip_pngs(pngs), _zipfile_archive(pngs)
    assert len(ours) == len(reference)
    with (
        zipfile.ZipFile(io.BytesIO(ours)) as archive,
        zipfile.ZipFile(io.BytesIO(reference)) as expected,
    ):
        assert archive.testzip() is None  # every member's CRC checked
        assert archive.namelist() == expected.namelist() == [f"{i:04d}.png" for i in range(count)]
        fields = ("compress_type", "CRC", "file_size", "header_offset", "external_attr")
        for member, wanted in zip(archive.infolist(), expected.infolist(), strict=True):
            assert [getattr(member, f) for f in fields] == [getattr(wanted, f) for f in fields]
            assert abs(_seconds(member.date_time) - _seconds(wanted.date_time)) <= 2
        assert [archive.read(name) for name in archive.namelist()] == pngs


def _seconds(date_time: tuple[int, int, int, int, int, int]) -> int:
    *_, hour, minute, second = date_time
    return hour * 3600 + minute * 60 + second


@pytest.mark.skipif(shutil.which("unzip") is None, reason="no unzip on this host")
def test_images_zip_unpacks_with_unzip(tmp_path: Path) -> None:
    pngs = _pngs(70, channels=3)
    (tmp_path / "images.zip").write_bytes(zip_pngs(pngs))
    subprocess.run(["unzip", "-q", "images.zip"], cwd=tmp_path, check=True)
    assert (tmp_path / "0069.png").read_bytes() == pngs[69]
