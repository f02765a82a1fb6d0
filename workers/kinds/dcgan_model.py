"""The DCGAN network: a frozen config, pure builders, and a ``keras.Model`` whose
``train_step`` does one discriminator and one generator update.

The shape follows Radford et al. (strided transposed convolutions, batch norm in G,
LeakyReLU in D, no pooling). Kernel 4 with stride 2 tiles evenly, which avoids the
checkerboard artefacts kernel 5 / stride 2 leaves on 28 px images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import keras
import tensorflow as tf


@dataclass(frozen=True)
class DcganConfig:
    image_size: int = 28
    channels: int = 1
    latent_dim: int = 64
    base_filters: int = 32

    @classmethod
    def tiny(cls) -> DcganConfig:
        """A network small enough for unit tests (a few thousand weights)."""
        return cls(latent_dim=8, base_filters=4)

    @property
    def start_size(self) -> int:
        """Side of the first feature map: 7 for 28 px, 4 for 32/64 px."""
        return 7 if self.image_size % 7 == 0 else 4

    @property
    def upsamplings(self) -> int:
        steps = math.log2(self.image_size / self.start_size)
        if not steps.is_integer() or steps < 1:
            raise ValueError(f"image_size {self.image_size} is not 7·2^k or 4·2^k")
        return int(steps)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_generator(config: DcganConfig) -> keras.Model:
    k = config.upsamplings
    width = config.base_filters * 2**k
    z = keras.Input((config.latent_dim,), name="z")
    x = keras.layers.Dense(config.start_size**2 * width, use_bias=False)(z)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Reshape((config.start_size, config.start_size, width))(x)
    for _ in range(k - 1):
        width //= 2
        x = keras.layers.Conv2DTranspose(width, 4, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    # float32 output even under mixed precision: tanh's saturation needs the range.
    image = keras.layers.Conv2DTranspose(
        config.channels, 4, strides=2, padding="same", activation="tanh", dtype="float32"
    )(x)
    assert image.shape[1:] == (config.image_size, config.image_size, config.channels)
    return keras.Model(z, image, name="generator")


def build_discriminator(config: DcganConfig) -> keras.Model:
    image = keras.Input((config.image_size, config.image_size, config.channels), name="image")
    x = image
    width = config.base_filters
    for _ in range(config.upsamplings):
        x = keras.layers.Conv2D(width, 4, strides=2, padding="same")(x)
        x = keras.layers.LeakyReLU(0.2)(x)
        width *= 2
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.2)(x)
    logit = keras.layers.Dense(1, dtype="float32")(x)
    return keras.Model(image, logit, name="discriminator")


class DCGAN(keras.Model):  # type: ignore[misc]
    """G and D trained together; ``fit`` runs one D step and one G step per batch."""

    def __init__(self, config: DcganConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.generator = build_generator(config)
        self.discriminator = build_discriminator(config)
        self.bce = keras.losses.BinaryCrossentropy(from_logits=True)

    def compile(self, d_optimizer: keras.Optimizer, g_optimizer: keras.Optimizer) -> None:
        super().compile()
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            # float16 gradients underflow without loss scaling.
            d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
            g_optimizer = keras.optimizers.LossScaleOptimizer(g_optimizer)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    def train_step(self, real: tf.Tensor) -> dict[str, tf.Tensor]:
        batch = tf.shape(real)[0]
        z = tf.random.normal((batch, self.config.latent_dim))
        fake = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(real, training=True)
            fake_logits = self.discriminator(fake, training=True)
            # One-sided label smoothing (0.9 for real) keeps D from over-confidence,
            # which on small datasets is what stalls G.
            d_loss = self.bce(tf.fill(tf.shape(real_logits), 0.9), real_logits) + self.bce(
                tf.zeros_like(fake_logits), fake_logits
            )
            # The identity without loss scaling: one path serves both precisions.
            scaled = self.d_optimizer.scale_loss(d_loss)
        grads = tape.gradient(scaled, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(
            zip(grads, self.discriminator.trainable_weights, strict=True)
        )

        z = tf.random.normal((batch, self.config.latent_dim))
        with tf.GradientTape() as tape:
            fake_logits = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = self.bce(tf.ones_like(fake_logits), fake_logits)
            scaled = self.g_optimizer.scale_loss(g_loss)
        grads = tape.gradient(scaled, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights, strict=True))

        # This step's losses, not a running mean: progress shows where training is now.
        return {"d_loss": d_loss, "g_loss": g_loss}


def training_state(gan: DCGAN) -> dict[str, Sequence[Any]]:
    """What a checkpoint holds: G and D (with batch-norm statistics) and both optimizers'
    state. ``build_optimizer_state`` first, when restoring into a fresh model."""
    return {
        "g": gan.generator.weights,
        "d": gan.discriminator.weights,
        "g_opt": gan.g_optimizer.variables,
        "d_opt": gan.d_optimizer.variables,
    }


def build_optimizer_state(gan: DCGAN) -> None:
    gan.g_optimizer.build(gan.generator.trainable_variables)
    gan.d_optimizer.build(gan.discriminator.trainable_variables)


class CompiledGenerator:
    """A generator's inference pass, traced once for every batch size.

    Calling the Keras model eagerly dispatches each layer from Python: 8 ms for one
    image here (cProfile), most of a minimal generate job. The traced graph runs the same
    ops without that; it is built on first use, so a worker's model cache keeps it warm.
    """

    def __init__(self, generator: keras.Model, latent_dim: int, batch_size: int = 500) -> None:
        self.generator = generator
        self.batch_size = batch_size
        self._forward = tf.function(
            lambda z: generator(z, training=False),
            input_signature=[tf.TensorSpec([None, latent_dim], tf.float32)],
        )

    def __call__(self, z: Any) -> Any:
        """[-1, 1] floats for the rows of ``z`` (float32, (n, latent_dim))."""
        return _in_batches(self._forward, z, self.batch_size)


def generate_images(generator: keras.Model, z: Any, batch_size: int = 500) -> Any:
    """Run the generator in inference mode over ``z`` in batches; returns [-1, 1] floats."""
    return _in_batches(lambda batch: generator(batch, training=False), z, batch_size)


def _in_batches(forward: Any, z: Any, batch_size: int) -> Any:
    import numpy as np

    outputs = [
        np.asarray(forward(z[start : start + batch_size])) for start in range(0, len(z), batch_size)
    ]
    return np.concatenate(outputs, axis=0)
