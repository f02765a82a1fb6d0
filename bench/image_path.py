"""The image path of a 1,000-image ``dcgan`` generate job in one process, without the job
around it: each way of encoding and zipping the PNGs beside the raw forward pass,
interleaved, in ms per 1,000 images (wall and CPU). What bench/results/images-zip.md
quotes; run under the TensorFlow lock:

    python -m bench.image_path [repeats]
"""

from __future__ import annotations

import io
import os
import sys
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from atelier.shared.images import PngBatches, encode_pngs, grid, to_uint8, zip_pngs
from atelier.workers.kinds.dcgan.inference import CompiledGenerator, labels_in_turn
from atelier.workers.kinds.dcgan.model import DcganConfig, build_generator

IMAGES = 1000


def variants() -> dict[str, Callable[[], bytes | None]]:
    """The raw passes (batches of 500 and 250) and three image paths: as before issue 26
    (the whole pass, then PNGs split over the threads, then ``zipfile``), the same with
    ``zip_pngs``, and the job's today (``PngBatches`` beside the pass)."""
    import keras

    keras.utils.set_random_seed(0)
    config = DcganConfig(latent_dim=64, base_filters=32, classes=10)
    network = build_generator(config)
    by_size = {size: CompiledGenerator(network, config, size) for size in (500, 250)}
    pool = ThreadPoolExecutor(os.cpu_count() or 1)
    z = np.random.default_rng(0).standard_normal((IMAGES, 64)).astype(np.float32)
    labels = labels_in_turn(IMAGES, 10)

    def whole_then_encoded(zipper: Callable[[list[bytes]], bytes]) -> bytes:
        pixels = to_uint8(by_size[500](z, labels))
        halves = pool.map(encode_pngs, np.array_split(pixels, os.cpu_count() or 1))
        return _finish(pixels, [png for half in halves for png in half], zipper)

    def raw(size: int) -> Callable[[], None]:
        def forward() -> None:
            to_uint8(by_size[size](z, labels))

        return forward

    def pipelined() -> bytes:
        encoder, batches = PngBatches(pool), []
        for batch in by_size[250].batches(z, labels):
            batches.append(to_uint8(batch))
            encoder.add(batches[-1])
        return _finish(np.concatenate(batches), encoder.pngs(), zip_pngs)

    return {
        "raw 500": raw(500),
        "raw 250": raw(250),
        "before": lambda: whole_then_encoded(_zipfile_archive),
        "zip_pngs": lambda: whole_then_encoded(zip_pngs),
        "pipelined": pipelined,
    }


def _finish(pixels: Any, pngs: list[bytes], zipper: Callable[[list[bytes]], bytes]) -> bytes:
    encode_pngs(grid(pixels[:64])[np.newaxis])  # grid.png
    return zipper(pngs)


def _zipfile_archive(pngs: list[bytes]) -> bytes:
    """``zip_pngs`` before issue 26."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index, png in enumerate(pngs):
            archive.writestr(f"{index:04d}.png", png)
    return buffer.getvalue()


def main(repeats: int) -> None:
    cases = variants()
    archives = [make() for make in cases.values()]
    members = [_members(archive) for archive in archives if archive is not None]
    assert all(found == members[0] for found in members), "the paths wrote different PNGs"
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved, so drift hits all alike
        for name, make in cases.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            make()
            wall[name].append(time.perf_counter() - began)
            cpu[name].append(time.process_time() - began_cpu)
    raw = float(np.median(wall["raw 500"]))
    for name in cases:
        print(
            f"{name:10s} wall min {min(wall[name]) * 1e3:6.1f} median "
            f"{np.median(wall[name]) * 1e3:6.1f}  CPU min {min(cpu[name]) * 1e3:6.1f} median "
            f"{np.median(cpu[name]) * 1e3:6.1f} ms; raw 500 / this, medians "
            f"{raw / np.median(wall[name]):.3f}"
        )


def _members(archive: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return [(name, opened.read(name)) for name in opened.namelist()]


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
