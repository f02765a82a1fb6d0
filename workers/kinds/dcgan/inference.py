"""A DCGAN generator's inference: each image's class, and batched forward passes (the
traced one a worker's model cache keeps, and the plain one training samples use)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .model import DcganConfig


def labels_in_turn(n: int, classes: int, chosen: Sequence[int] | None = None) -> Any:
    """The class of each of ``n`` images: ``chosen`` (default: every class) in turn."""
    order = np.asarray(chosen if chosen else range(classes), dtype=np.int32)
    return order[np.arange(n) % len(order)]


class CompiledGenerator:
    """A generator's inference pass, traced once for every batch size.

    Calling the Keras model eagerly dispatches each layer from Python: 8 ms for one
    image here (cProfile), most of a minimal generate job. The traced graph runs the same
    ops without that; it is built on first use, so a worker's model cache keeps it warm.

    Batches of 250 rather than 500: as fast through the network (1,000 images in 186 ms
    against 191, best of 30 on a busy 2-core machine), and a generate job encodes each
    batch while the next is made, so smaller batches leave less encoding after the pass.
    """

    def __init__(self, generator: keras.Model, config: DcganConfig, batch_size: int = 250) -> None:
        self.generator = generator
        self.batch_size = batch_size
        self.classes = config.classes
        self._forward = tf.function(
            lambda z, labels: generator([z, labels] if config.classes else z, training=False),
            input_signature=[
                tf.TensorSpec([None, config.latent_dim], tf.float32),
                tf.TensorSpec([None], tf.int32),
            ],
        )

    def __call__(self, z: Any, labels: Any = None) -> Any:
        """[-1, 1] floats for the rows of ``z`` (float32, (n, latent_dim)), each of the class
        in ``labels`` (int32, (n,); default: every class in turn)."""
        return np.concatenate(list(self.batches(z, labels)), axis=0)

    def batches(self, z: Any, labels: Any = None, last: int | None = None) -> Iterator[Any]:
        """``__call__``'s rows one batch at a time, so that work on a batch (encoding it)
        can run while the next one is made; with ``last``, the last ``last`` rows (at most
        a batch) come as a batch of their own, since the work on the last batch is what
        follows the pass."""
        if labels is None:
            labels = labels_in_turn(len(z), max(self.classes, 1))
        for start, end in batch_spans(len(z), self.batch_size, last or self.batch_size):
            yield np.asarray(self._forward(z[start:end], labels[start:end]))


def batch_spans(rows: int, size: int, last: int) -> list[tuple[int, int]]:
    """(start, end) of batches of ``size`` over ``rows``, the last ``min(last, size)`` rows
    a batch of their own: 1,000 rows in 250s, last 100, are 250, 250, 250, 150 and 100."""
    cut = max(rows - min(last, size), 0)
    spans = [(start, min(start + size, cut)) for start in range(0, cut, size)]
    return [*spans, (cut, rows)] if rows > cut else spans


def generate_images(
    generator: keras.Model, z: Any, labels: Any = None, batch_size: int = 500
) -> Any:
    """Run the generator in inference mode over ``z`` in batches; returns [-1, 1] floats.
    A conditional generator needs each image's class in ``labels`` (see ``labels_in_turn``)."""
    conditional = len(generator.inputs) > 1
    if conditional and labels is None:
        raise ValueError("a conditional generator needs each image's class")

    def forward(z_batch: Any, label_batch: Any) -> Any:
        return generator([z_batch, label_batch] if conditional else z_batch, training=False)

    if labels is None:
        labels = labels_in_turn(len(z), 1)
    return _in_batches(forward, z, labels, batch_size)


def _in_batches(forward: Any, z: Any, labels: Any, batch_size: int) -> Any:
    outputs = [
        np.asarray(forward(z[start : start + batch_size], labels[start : start + batch_size]))
        for start in range(0, len(z), batch_size)
    ]
    return np.concatenate(outputs, axis=0)
