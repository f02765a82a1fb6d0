"""A generate job's images: the generator's batches as uint8 pixels, with grid.png and the
PNGs encoded beside the forward pass (what ``bench.image_path`` measures)."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ....shared.images import PngBatches, grid_png, to_uint8
from .inference import CompiledGenerator

PREVIEW_IMAGES = 64  # in grid.png
# The forward pass's last batch: its encoding is what follows the pass, split over the
# threads. Smaller makes that tail shorter and costs the pass one more batch (250, 250,
# 250, 150, 100 for 1,000 images; bench/results/images-zip.md).
LAST_BATCH = 100


@dataclass
class Drawn:
    """``pixels``, all of them, only without PNGs (``format=npy`` stores them); the PNGs
    (``encode``) are in ``pngs``, their ``zip`` packed too when asked."""

    preview: bytes  # grid.png of the first PREVIEW_IMAGES
    pixels: np.ndarray | None
    pngs: PngBatches | None


def draw(
    generator: CompiledGenerator,
    z: np.ndarray,
    labels: Any,
    pool: Executor,
    threads: int,
    encode: bool,
    zipped: bool = False,
    last_batch: int | None = LAST_BATCH,
) -> Drawn:
    """The images of latents ``z`` (float32) and ``labels``, batch by batch. Each batch's
    PNGs are encoded on ``pool`` while the generator makes the next, and grid.png as soon
    as its images are made, so little follows the forward pass; the last batch's PNGs are
    split over ``threads`` (``PngBatches``), a batch of ``last_batch`` images of its own
    (``CompiledGenerator.batches``). Every PNG is in hand before this returns."""
    encoder = PngBatches(pool, threads, zipped) if encode else None
    batches: list[np.ndarray] = []
    made = 0
    preview = None
    try:
        for batch in generator.batches(z, labels, last_batch):
            batches.append(to_uint8(batch))
            made += len(batch)
            if encoder is not None:
                encoder.add(batches[-1], last=made == len(z))
            if preview is None and made >= min(len(z), PREVIEW_IMAGES):
                first = batches[0] if len(batches) == 1 else np.concatenate(batches)
                preview = pool.submit(grid_png, first[:PREVIEW_IMAGES])
        if encoder is not None:
            encoder.pngs()  # raises the first encoding error
        assert preview is not None, "no images drawn"
        pixels = None if encoder is not None else np.concatenate(batches)
        return Drawn(preview.result(), pixels, encoder)
    except BaseException:
        if encoder is not None:
            encoder.cancel()
        raise
