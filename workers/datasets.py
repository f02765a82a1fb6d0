"""Image datasets as float32 arrays in [-1, 1], shape (n, size, size, channels), with their
labels when they have them: the built-in ones and an owner's uploads.

Nothing here downloads: ``digits`` ships inside scikit-learn, ``shapes`` is generated.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

from ..shared.datasets import BUILTIN_DATASETS
from ..shared.errors import PermanentJobError
from .context import JobContext


def _to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8-range floats [0, 255] → [-1, 1], the range of the generator's tanh."""
    return (images.astype(np.float32) / 127.5 - 1.0)[..., np.newaxis]


def load_digits(size: int = 28) -> np.ndarray:
    from sklearn.datasets import load_digits as sklearn_digits

    raw = sklearn_digits().images  # (1797, 8, 8), values 0..16
    scaled = (raw / 16.0 * 255.0).astype(np.uint8)
    upscaled = np.stack(
        [
            np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BICUBIC))
            for img in scaled
        ]
    )
    return _to_unit_range(upscaled)


def load_shapes(size: int = 28, count: int = 4096, seed: int = 1234) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = np.zeros((count, size, size), dtype=np.uint8)
    for i in range(count):
        canvas = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(canvas)
        extent = rng.uniform(0.35, 0.8) * size
        x0, y0 = rng.uniform(0, size - extent, size=2)
        box = (x0, y0, x0 + extent, y0 + extent)
        shape = i % 3
        if shape == 0:
            draw.ellipse(box, fill=255)
        elif shape == 1:
            draw.rectangle(box, fill=255)
        else:
            draw.polygon(
                [(x0 + extent / 2, y0), (x0, y0 + extent), (x0 + extent, y0 + extent)], fill=255
            )
        images[i] = np.asarray(canvas)
    return _to_unit_range(images)


def digit_labels() -> np.ndarray:
    from sklearn.datasets import load_digits as sklearn_digits

    labels: np.ndarray = sklearn_digits().target.astype(np.int32)
    return labels


def shape_labels(count: int = 4096) -> np.ndarray:
    """0 circle, 1 square, 2 triangle: ``load_shapes`` draws them in turn."""
    return (np.arange(count) % 3).astype(np.int32)


_LOADERS: dict[str, Callable[[], np.ndarray]] = {"digits": load_digits, "shapes": load_shapes}
"""Built-in image datasets (the text corpus lives in workers/corpus.py)."""
_LABELS: dict[str, Callable[[], np.ndarray]] = {"digits": digit_labels, "shapes": shape_labels}


@dataclass(frozen=True)
class LabelledImages:
    """A dataset's images and, when it is labelled, each one's class."""

    pixels: np.ndarray
    """[-1, 1] floats, (n, size, size, channels)."""
    labels: np.ndarray | None = None
    """Each image's class (int32, 0 … classes - 1); None: unlabelled."""
    class_names: tuple[str, ...] = ()
    """The classes' names in class order (empty when unlabelled, or for older callers)."""


def load_images(name: str, ctx: JobContext) -> np.ndarray:
    """A built-in or the job owner's uploaded image dataset, as [-1, 1] floats."""
    return load_labelled(name, ctx).pixels


def load_labelled(name: str, ctx: JobContext) -> LabelledImages:
    """A built-in or the job owner's uploaded image dataset with its labels, if any; an
    upload's download and scaling are the job's preparation (``ctx.preparation``)."""
    if name in BUILTIN_DATASETS:
        names = tuple(BUILTIN_DATASETS[name].class_names)
        return LabelledImages(load_builtin(name), load_labels(name), names)
    ctx.preparation.phase("downloading the dataset", 1, "files")
    data = ctx.dataset_bytes(name, "image")
    ctx.preparation.advance()
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        pixels: np.ndarray = arrays["images"]
        labels = arrays["labels"].astype(np.int32) if "labels" in arrays else None
        names = tuple(str(n) for n in arrays["class_names"]) if "class_names" in arrays else ()
    ctx.preparation.phase("reading the dataset", len(pixels), "images")
    scaled = np.empty(pixels.shape, np.float32)
    for start in range(0, len(pixels), SCALE_CHUNK):
        chunk = pixels[start : start + SCALE_CHUNK]
        scaled[start : start + SCALE_CHUNK] = chunk.astype(np.float32) / 127.5 - 1.0
        ctx.preparation.advance(len(chunk))
    return LabelledImages(scaled, labels, names)


SCALE_CHUNK = 4096
"""Images scaled between two progress counts."""


def load_labels(name: str) -> np.ndarray | None:
    """Each image's class (int32, 0 … classes - 1) for a labelled built-in; None otherwise
    (an upload's labels are read with its images: ``load_labelled``)."""
    if name not in BUILTIN_DATASETS or not BUILTIN_DATASETS[name].classes:
        return None
    labels = _LABELS[name]()
    assert int(labels.max()) < BUILTIN_DATASETS[name].classes
    return labels


@cache
def load_builtin(name: str) -> np.ndarray:
    if name not in BUILTIN_DATASETS or name not in _LOADERS:
        raise PermanentJobError(f"Unknown dataset {name!r}.")
    images = _LOADERS[name]()
    info = BUILTIN_DATASETS[name]
    assert images.shape[1:] == (info.image_size, info.image_size, info.channels), images.shape
    return images
