"""The image path of a 1,000-image ``dcgan`` generate job in one process, without the job
around it: each way of encoding and zipping the PNGs beside the raw forward pass,
interleaved, in ms per 1,000 images: wall, CPU of the process, and, for the paths that
make batches of 250, the pass (until the last batch is made) and the tail (what follows
it). What bench/results/images-zip.md quotes; run under the TensorFlow lock:

    python -m bench.image_path [repeats]
"""

from __future__ import annotations

import io
import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from atelier.shared.images import PngBatches, encode_pngs, grid, to_uint8, zip_pngs
from atelier.workers.kinds.dcgan.drawing import draw
from atelier.workers.kinds.dcgan.inference import CompiledGenerator, labels_in_turn
from atelier.workers.kinds.dcgan.model import DcganConfig, build_generator

IMAGES = 1000


class _Marked(CompiledGenerator):
    """A compiled generator that notes when it made its latest batch: after the last, the
    forward pass is over, and what a path does from then on is its tail."""

    made = 0.0

    def batches(self, z: Any, labels: Any = None, last: int | None = None) -> Iterator[Any]:
        for batch in super().batches(z, labels, last):
            self.made = time.perf_counter()
            yield batch


def variants() -> tuple[dict[str, Callable[[], bytes | None]], _Marked]:
    """The raw passes (batches of 500 and 250) and the image paths: as before issue 26 (the
    whole pass, then PNGs split over the threads, then ``zipfile``), the same with
    ``zip_pngs``, pipelined as at ef70c7a (``PngBatches`` beside the pass, one task a
    batch of 250, then grid.png and ``zip_pngs``), ``draw`` with batches of 250 (grid.png
    and the zip's members made beside the pass, the last batch split over the threads),
    and ``draw`` as the job calls it (the same, the last 100 images a batch of their own)."""
    import keras

    keras.utils.set_random_seed(0)
    config = DcganConfig(latent_dim=64, base_filters=32, classes=10)
    network = build_generator(config)
    whole = CompiledGenerator(network, config, 500)
    marked = _Marked(network, config, 250)
    threads = os.cpu_count() or 1
    pool = ThreadPoolExecutor(threads)
    z = np.random.default_rng(0).standard_normal((IMAGES, 64)).astype(np.float32)
    labels = labels_in_turn(IMAGES, 10)

    def whole_then_encoded(zipper: Callable[[list[bytes]], bytes]) -> bytes:
        pixels = to_uint8(whole(z, labels))
        halves = pool.map(encode_pngs, np.array_split(pixels, threads))
        return _finish(pixels, [png for half in halves for png in half], zipper)

    def pipelined() -> bytes:
        encoder, batches = PngBatches(pool), []
        for batch in marked.batches(z, labels):
            batches.append(to_uint8(batch))
            encoder.add(batches[-1])
        return _finish(np.concatenate(batches), encoder.pngs(), zip_pngs)

    def drawn(last_batch: int | None) -> Callable[[], bytes]:
        def job() -> bytes:
            images = draw(marked, z, labels, pool, threads, True, True, last_batch)
            assert images.pngs is not None
            return images.pngs.zip()

        return job

    return {
        "raw 500": lambda: _raw(whole, z, labels),
        "raw 250": lambda: _raw(marked, z, labels),
        "before": lambda: whole_then_encoded(_zipfile_archive),
        "zip_pngs": lambda: whole_then_encoded(zip_pngs),
        "pipelined": pipelined,
        "draw, 250s": drawn(None),
        "draw (job)": drawn(100),
    }, marked


def _raw(generator: CompiledGenerator, z: Any, labels: Any) -> None:
    to_uint8(generator(z, labels))


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
    cases, marked = variants()
    archives = [make() for make in cases.values()]
    members = [_members(archive) for archive in archives if archive is not None]
    assert all(found == members[0] for found in members), "the paths wrote different PNGs"
    figures: dict[str, dict[str, list[float]]] = {
        name: {"wall": [], "cpu": [], "pass": [], "tail": []} for name in cases
    }
    for _ in range(repeats):  # interleaved, so drift hits all alike
        for name, make in cases.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            make()
            ended = time.perf_counter()
            found = figures[name]
            found["wall"].append(ended - began)
            found["cpu"].append(time.process_time() - began_cpu)
            if marked.made > began:
                found["pass"].append(marked.made - began)
                found["tail"].append(ended - marked.made)
    raw = float(np.median(figures["raw 500"]["wall"]))
    for name, found in figures.items():
        ms = {key: np.median(values or [np.nan]) * 1e3 for key, values in found.items()}
        print(
            f"{name:11s} wall min {min(found['wall']) * 1e3:6.1f} median {ms['wall']:6.1f}  "
            f"CPU min {min(found['cpu']) * 1e3:6.1f} median {ms['cpu']:6.1f}  "
            f"pass {ms['pass']:6.1f} tail {ms['tail']:5.1f} (medians) ms; "
            f"raw 500 / this, medians {raw / np.median(found['wall']):.3f}"
        )


def _members(archive: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return [(name, opened.read(name)) for name in opened.namelist()]


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
