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


@dataclass(frozen=True)
class GanRecipe:
    """How G and D are trained (not what G is: generation needs only ``DcganConfig``).

    ``loss``: "bce", the non-saturating cross-entropy with one-sided label smoothing, or
    "hinge" (SNGAN, BigGAN). ``spectral_norm`` bounds each D layer's Lipschitz constant
    (Miyato et al. 2018); ``minibatch_std`` shows D each batch's spread; ``ema_decay`` > 0
    keeps a moving average of G for generation. ``augment`` names DiffAugment policies
    ("translation", "cutout", "brightness") applied to every image D sees; ``r1_gamma`` > 0
    penalises D's gradient on real images (Mescheder et al. 2018); ``label_smoothing`` is
    the one-sided smoothing of bce's real label. ``pack`` > 1 lets D judge that many images
    at once, stacked as channels (PacGAN, Lin et al. 2018): a G drawing few kinds of image
    gives itself away in a pack more easily than in one image."""

    loss: str = "bce"
    spectral_norm: bool = False
    minibatch_std: bool = False
    ema_decay: float = 0.0
    augment: tuple[str, ...] = ()
    r1_gamma: float = 0.0
    label_smoothing: float = 0.1
    pack: int = 1


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


class MinibatchStd(keras.layers.Layer):  # type: ignore[misc]
    """Appends the batch's mean feature standard deviation as one more channel: D sees how
    varied a batch is, so a G that draws few kinds of digit is told apart (Karras et al.
    2018, progressive GANs)."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        spread = tf.reduce_mean(tf.math.reduce_std(x, axis=0))
        shape = tf.concat([tf.shape(x)[:-1], [1]], axis=0)
        return tf.concat([x, tf.fill(shape, tf.cast(spread, x.dtype))], axis=-1)


def build_discriminator(
    config: DcganConfig, spectral_norm: bool = False, minibatch_std: bool = False, pack: int = 1
) -> keras.Model:
    def bounded(layer: keras.layers.Layer) -> keras.layers.Layer:
        return keras.layers.SpectralNormalization(layer) if spectral_norm else layer

    side = config.image_size
    image = keras.Input((side, side, config.channels * pack), name="image")
    x = image
    width = config.base_filters
    for _ in range(config.upsamplings):
        x = bounded(keras.layers.Conv2D(width, 4, strides=2, padding="same"))(x)
        x = keras.layers.LeakyReLU(0.2)(x)
        width *= 2
    if minibatch_std:
        x = MinibatchStd()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.2)(x)
    logit = bounded(keras.layers.Dense(1, dtype="float32"))(x)
    return keras.Model(image, logit, name="discriminator")


class DCGAN(keras.Model):  # type: ignore[misc]
    """G and D trained together; ``fit`` runs one D step and one G step per batch.

    With ``ema_decay`` > 0 an exponential moving average of G's weights is kept beside G
    (``averaged``): the average of G along its noisy adversarial path draws cleaner
    images than G at any one step (Yazici et al. 2019; StyleGAN), for a few multiply-adds
    a step. Generation uses the average."""

    def __init__(self, config: DcganConfig, recipe: GanRecipe | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.recipe = recipe or GanRecipe()
        self.ema_decay = self.recipe.ema_decay
        self.generator = build_generator(config)
        self.discriminator = build_discriminator(
            config, self.recipe.spectral_norm, self.recipe.minibatch_std, self.recipe.pack
        )
        self.averaged = build_generator(config) if self.ema_decay > 0 else self.generator
        if self.ema_decay > 0:
            self.averaged.set_weights(self.generator.get_weights())
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
            d_loss, penalty = self._d_loss(self._augment(real), self._augment(fake))
            # The identity without loss scaling: one path serves both precisions.
            scaled = self.d_optimizer.scale_loss(d_loss + penalty)
        grads = tape.gradient(scaled, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(
            zip(grads, self.discriminator.trainable_weights, strict=True)
        )

        z = tf.random.normal((batch, self.config.latent_dim))
        with tf.GradientTape() as tape:
            fake = self._augment(self.generator(z, training=True))
            fake_logits = self.discriminator(fake, training=True)
            if self.recipe.loss == "hinge":
                g_loss = -tf.reduce_mean(fake_logits)
            else:
                g_loss = self.bce(tf.ones_like(fake_logits), fake_logits)
            scaled = self.g_optimizer.scale_loss(g_loss)
        grads = tape.gradient(scaled, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights, strict=True))
        if self.ema_decay > 0:
            self._update_average()

        # This step's losses, not a running mean: progress shows where training is now.
        losses = {"d_loss": d_loss, "g_loss": g_loss}
        return {**losses, "r1": penalty} if self.recipe.r1_gamma > 0 else losses

    def _augment(self, images: tf.Tensor) -> tf.Tensor:
        """What D is shown of a batch: augmented, then packed."""
        return pack_images(diff_augment(images, self.recipe.augment), self.recipe.pack)

    def _d_loss(self, real: tf.Tensor, fake: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """D's loss and its R1 penalty: gamma/2 · E‖∇D(real)‖², the slope of D at the real
        images, which keeps D from growing a cliff G cannot climb (Mescheder et al. 2018)."""
        with tf.GradientTape(watch_accessed_variables=False) as slope:
            slope.watch(real)
            real_logits = self.discriminator(real, training=True)
            # The sum must be taken inside the tape: a target the tape did not record
            # has no path back to ``real`` and the gradient comes back None.
            total = tf.reduce_sum(tf.cast(real_logits, tf.float32))
        penalty = tf.constant(0.0)
        if self.recipe.r1_gamma > 0:
            grads = slope.gradient(total, real)
            squared = tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])
            penalty = 0.5 * self.recipe.r1_gamma * tf.reduce_mean(squared)
        fake_logits = self.discriminator(fake, training=True)
        if self.recipe.loss == "hinge":
            loss = tf.reduce_mean(tf.nn.relu(1.0 - real_logits)) + tf.reduce_mean(
                tf.nn.relu(1.0 + fake_logits)
            )
        else:
            # One-sided label smoothing (0.9 for real) keeps D from over-confidence,
            # which on small datasets is what stalls G (R1 does that job when it is on).
            real_label = 1.0 - self.recipe.label_smoothing
            loss = self.bce(tf.fill(tf.shape(real_logits), real_label), real_logits) + self.bce(
                tf.zeros_like(fake_logits), fake_logits
            )
        return loss, penalty

    def _update_average(self) -> None:
        # Warm-up: early on the average follows G closely (decay (1+t)/(10+t)), so a short
        # run's average is not dominated by the untrained start.
        step = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        # Batch-norm statistics are averaged too: they belong to the averaged weights.
        for average, weight in zip(self.averaged.weights, self.generator.weights, strict=True):
            average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))


def training_state(gan: DCGAN) -> dict[str, Sequence[Any]]:
    """What a checkpoint holds: G and D (with batch-norm statistics) and both optimizers'
    state. ``build_optimizer_state`` first, when restoring into a fresh model."""
    state = {
        "g": gan.generator.weights,
        "d": gan.discriminator.weights,
        "g_opt": gan.g_optimizer.variables,
        "d_opt": gan.d_optimizer.variables,
    }
    if gan.ema_decay > 0:
        state["g_ema"] = gan.averaged.weights
    return state


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
