"""What D is shown of a batch: DiffAugment's random, differentiable changes and PacGAN's
packs (options of ``GanRecipe``, all off by default)."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

# --- DiffAugment (Zhao et al. 2020) --------------------------------------------------------
# D sees real and generated images through the same random, differentiable changes, in its
# own step and in G's: on 1,797 digits D otherwise memorises the real set and its feedback
# to G collapses onto a few digits. The changes reach only D, so G does not learn them.
BACKGROUND = -1.0  # the [-1, 1] value of an empty pixel: what shifted-in borders show


def translate(images: tf.Tensor, ratio: float = 0.125) -> tf.Tensor:
    """Each image shifted by up to ``ratio`` of its side (3 px of 28), background shifted in.

    The shift is a product with one-hot row and column matrices rather than a gather:
    a gather's gradient is a scatter, which cost more CPU here than D itself."""
    size = images.shape[1]
    shift = max(1, int(size * ratio))
    n = tf.shape(images)[0]
    offsets = tf.random.uniform((2, n, 1), -shift, shift + 1, dtype=tf.int32)
    span = tf.range(size)[tf.newaxis]
    # picks[i, r, s] = 1 where output row r of image i reads input row s.
    rows = tf.one_hot(span + offsets[0], size, dtype=images.dtype)
    cols = tf.one_hot(span + offsets[1], size, dtype=images.dtype)
    # Shift the foreground (image + 1 >= 0, background 0) so shifted-in pixels are
    # background: a one-hot row off the edge is all zeros.
    moved = tf.einsum("nrs,nsth,nct->nrch", rows, images - BACKGROUND, cols)
    return moved + BACKGROUND


def cutout(images: tf.Tensor, ratio: float = 0.5) -> tf.Tensor:
    """A square of ``ratio`` of the side, at a random place in each image, set to background."""
    size = images.shape[1]
    half = int(size * ratio + 0.5) // 2
    n = tf.shape(images)[0]
    centres = tf.random.uniform((2, n, 1), 0, size, dtype=tf.int32)
    span = tf.range(size)[tf.newaxis]
    inside_rows = tf.abs(span - centres[0]) < half  # (n, size)
    inside_cols = tf.abs(span - centres[1]) < half
    hole = tf.logical_and(inside_rows[:, :, tf.newaxis], inside_cols[:, tf.newaxis, :])
    return tf.where(hole[..., tf.newaxis], tf.cast(BACKGROUND, images.dtype), images)


def brightness(images: tf.Tensor) -> tf.Tensor:
    """Each image lightened or darkened by up to a quarter of the range."""
    n = tf.shape(images)[0]
    return images + tf.random.uniform((n, 1, 1, 1), -0.5, 0.5, dtype=images.dtype)


AUGMENTS = {"translation": translate, "cutout": cutout, "brightness": brightness}


def diff_augment(images: tf.Tensor, policies: Sequence[str]) -> tf.Tensor:
    for policy in policies:
        images = AUGMENTS[policy](images)
    return images


def pack_images(images: tf.Tensor, pack: int) -> tf.Tensor:
    """(n, h, w, c) → (n // pack, h, w, c · pack): consecutive images side by side as
    channels (a remainder of the batch is left out)."""
    if pack == 1:
        return images
    n = tf.shape(images)[0] // pack
    _, height, width, channels = images.shape
    grouped = tf.reshape(images[: n * pack], (n, pack, height, width, channels))
    return tf.reshape(tf.transpose(grouped, (0, 2, 3, 1, 4)), (n, height, width, pack * channels))
