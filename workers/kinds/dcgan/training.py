"""The DCGAN's part of a training run (``workers.training`` runs the loop): image batches,
what a checkpoint holds, what a sample grid shows."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ....shared.images import encode_png, grid, to_uint8
from ....shared.kinds.dcgan import DcganTrainParams
from ...checkpoints import checkpoint_groups, restore_checkpoint
from ...context import JobContext
from ...datasets import LabelledImages, load_labelled
from ...training import Groups, Sample, Trainer
from .inference import generate_images, labels_in_turn
from .model import (
    DCGAN,
    DcganConfig,
    GanRecipe,
    build_optimizer_state,
    training_state,
)

SAMPLE_GRID_SIZE = 64  # an 8x8 grid, from noise fixed for the whole run


def image_batches(
    images: np.ndarray, labels: np.ndarray | None, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Shuffled batches, forever: images, or (images, labels) for a conditional GAN."""
    data = images if labels is None else (images, labels)
    return (
        tf.data.Dataset.from_tensor_slices(data)
        .shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def build_gan(
    p: DcganTrainParams,
    image_size: int,
    channels: int,
    classes: int = 0,
    class_names: tuple[str, ...] = (),
) -> DCGAN:
    """The GAN of a training job's params, compiled with its optimizers; conditional on
    ``classes`` labels (named ``class_names``) when the dataset has them and the params
    allow it."""
    conditional = bool(classes) and p.conditional is not False
    config = DcganConfig(
        image_size=image_size,
        channels=channels,
        latent_dim=p.latent_dim,
        base_filters=p.base_filters,
        classes=classes if conditional else 0,
        class_names=class_names if conditional else (),
    )
    recipe = GanRecipe(
        p.loss,
        p.spectral_norm,
        p.minibatch_std,
        p.ema_decay,
        augment=p.augment,
        r1_gamma=p.r1_gamma,
        label_smoothing=p.label_smoothing,
        pack=p.pack,
        mode_seeking=p.mode_seeking,
    )
    gan = DCGAN(config, recipe)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(p.discriminator_lr, beta_1=p.beta_1),
        g_optimizer=keras.optimizers.Adam(p.generator_lr, beta_1=p.beta_1),
    )
    return gan


TrainingImages = LabelledImages
"""A job's images; with labels, a conditional GAN (``labels`` None: unconditional)."""


def read_images(p: DcganTrainParams, ctx: JobContext) -> TrainingImages:
    """A job's images, with the dataset's labels (a built-in's or an upload's) unless the
    params ignore them."""
    found = load_labelled(p.dataset, ctx)
    return found if p.conditional is not False else TrainingImages(found.pixels)


class DcganTrainer(Trainer[DcganTrainParams, TrainingImages]):
    gan: DCGAN

    def build(self) -> keras.Model:
        p = self.params
        self.images, labels, names = self.data.pixels, self.data.labels, self.data.class_names
        classes = 0 if labels is None else max(len(names), int(labels.max()) + 1)
        size, channels = self.images.shape[1], self.images.shape[3]
        self.gan = build_gan(p, size, channels, classes, names if len(names) == classes else ())
        self.labels = labels
        self._noise = (
            np.random.default_rng(p.seed + 1)
            .standard_normal((SAMPLE_GRID_SIZE, p.latent_dim))
            .astype(np.float32)
        )
        # The grid draws every class in turn, so each sample shows all of them.
        self._grid_labels = labels_in_turn(SAMPLE_GRID_SIZE, max(classes, 1))
        return self.gan

    def batches(self, start_step: int) -> tf.data.Dataset:
        # A resumed run sees a different data order, not a replay of the first.
        p = self.params
        return image_batches(self.images, self.labels, p.batch_size, p.seed + start_step)

    def state(self) -> Groups:
        return training_state(self.gan)

    def build_optimizers(self) -> None:
        build_optimizer_state(self.gan)

    def weights(self) -> Groups:
        """``g``: what generation draws with, the averaged generator when there is one (it
        draws the cleaner digits). Then what a run continuing the model starts from: D, and
        G itself beside its average (``g_train``)."""
        gan = self.gan
        groups = {"g": gan.averaged.weights, "d": gan.discriminator.weights}
        if gan.averaged is not gan.generator:
            groups["g_train"] = gan.generator.weights
        return groups

    def start_from(self, weights: bytes) -> str:
        """G (and its average) and D from a model's weights file; optimizers afresh. A
        model stored before its file kept D and G's own weights starts G and its average
        from the average, and D afresh."""
        gan, stored = self.gan, checkpoint_groups(weights)
        groups = {"g_train" if "g_train" in stored else "g": gan.generator.weights}
        if gan.averaged is not gan.generator:
            groups["g"] = gan.averaged.weights
        if "d" in stored:
            groups["d"] = gan.discriminator.weights
        restore_checkpoint(groups, weights)
        if "g_train" not in stored and gan.averaged is not gan.generator:
            gan.generator.set_weights(gan.averaged.get_weights())
        return "G and D" if "d" in stored else "G (the model kept no D: D starts afresh)"

    def sample(self, step: int) -> Sample:
        pixels = to_uint8(generate_images(self.gan.averaged, self._noise, self._grid_labels))
        return Sample(encode_png(grid(pixels)), "png", "image/png")

    def config(self) -> dict[str, Any]:
        return self.gan.config.to_dict()

    def describe(self) -> str:
        return f"{self.gan.config} on {self.params.dataset} ({len(self.images)} images)"
