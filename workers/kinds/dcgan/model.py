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

from .augment import diff_augment, pack_images


@dataclass(frozen=True)
class DcganConfig:
    image_size: int = 28
    channels: int = 1
    latent_dim: int = 64
    base_filters: int = 32
    classes: int = 0
    """> 0: a conditional GAN. G draws the class it is given, D judges an image together with
    its class (a projection discriminator). 0: one unlabelled distribution."""
    class_names: tuple[str, ...] = ()
    """The classes' names, class 0 first, as the dataset records them: generation takes a
    name for its index. Not part of the network; empty for models trained before names."""

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
    """z (and, when conditional, each image's class) → an image in [-1, 1].

    A conditional G reads its class as a learned vector beside z (Mirza & Osindero 2014):
    on the built-in digits an unconditional G drew some digits far more often than others
    (8s at a quarter of their share, issue 16) whatever its loss; told the class, it draws
    each one as often as it is asked to (``bench/digits_quality``: the rarest at 0.78 of
    uniform, real digits 0.71)."""
    k = config.upsamplings
    width = config.base_filters * 2**k
    z = keras.Input((config.latent_dim,), name="z")
    inputs, x = [z], z
    if config.classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        embedded = keras.layers.Embedding(config.classes, config.latent_dim)(label)
        x = keras.layers.Concatenate()([z, embedded])
    x = keras.layers.Dense(config.start_size**2 * width, use_bias=False)(x)
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
    return keras.Model(inputs if config.classes else z, image, name="generator")


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
    gives itself away in a pack more easily than in one image. ``mode_seeking`` > 0 (a
    conditional GAN only) weighs the reward for two draws of one class being different
    (``DCGAN._pair_spread``)."""

    loss: str = "bce"
    spectral_norm: bool = False
    minibatch_std: bool = False
    ema_decay: float = 0.0
    augment: tuple[str, ...] = ()
    r1_gamma: float = 0.0
    label_smoothing: float = 0.1
    pack: int = 1
    mode_seeking: float = 0.0


class MinibatchStd(keras.layers.Layer):  # type: ignore[misc]
    """Appends the batch's mean feature standard deviation as one more channel: D sees how
    varied a batch is, so a G that draws few kinds of digit is told apart (Karras et al.
    2018, progressive GANs)."""

    def call(self, x: tf.Tensor) -> tf.Tensor:
        spread = tf.reduce_mean(tf.math.reduce_std(x, axis=0))
        shape = tf.concat([tf.shape(x)[:-1], [1]], axis=0)
        return tf.concat([x, tf.fill(shape, tf.cast(spread, x.dtype))], axis=-1)


class ClassProjection(keras.layers.Layer):  # type: ignore[misc]
    """The projection discriminator's class term (Miyato & Koyama 2018): the inner product
    of D's features with a learned vector per class, summed over a pack's classes. D's
    verdict becomes "a real image *of this class*", so G is pushed towards every class it
    is asked for, not only towards the easiest ones."""

    def __init__(self, classes: int, **kwargs: Any) -> None:
        super().__init__(dtype="float32", **kwargs)
        self.classes = classes

    def build(self, input_shape: Any) -> None:
        features = int(input_shape[0][-1])
        self.embeddings = self.add_weight(
            shape=(self.classes, features), initializer="glorot_uniform", name="embeddings"
        )

    def call(self, inputs: Sequence[tf.Tensor]) -> tf.Tensor:
        features, labels = inputs  # (n, f) and the pack's labels (n, pack)
        vectors = tf.reduce_sum(tf.gather(self.embeddings, labels), axis=1)
        return tf.reduce_sum(tf.cast(features, tf.float32) * vectors, axis=-1, keepdims=True)


def build_discriminator(
    config: DcganConfig, spectral_norm: bool = False, minibatch_std: bool = False, pack: int = 1
) -> keras.Model:
    """An image (a pack of them) → one logit; with classes, [images, labels (n, pack)]."""

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
    if not config.classes:
        return keras.Model(image, logit, name="discriminator")
    labels = keras.Input((pack,), dtype="int32", name="labels")
    logit = keras.layers.Add(dtype="float32")([logit, ClassProjection(config.classes)([x, labels])])
    return keras.Model([image, labels], logit, name="discriminator")


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

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        """``data``: a batch of images, or (images, labels) for a conditional GAN; G draws
        the real batch's classes, so both sides see the dataset's class balance."""
        real, labels = data if self.config.classes else (data, None)
        packed = self._pack_labels(labels)
        batch = tf.shape(real)[0]
        z = tf.random.normal((batch, self.config.latent_dim))
        fake = self._draw(z, labels)
        with tf.GradientTape() as tape:
            d_loss, penalty = self._d_loss(self._augment(real), self._augment(fake), packed)
            # The identity without loss scaling: one path serves both precisions.
            scaled = self.d_optimizer.scale_loss(d_loss + penalty)
        grads = tape.gradient(scaled, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(
            zip(grads, self.discriminator.trainable_weights, strict=True)
        )

        g_loss, spread = self._g_step(batch, labels)
        if self.ema_decay > 0:
            self._update_average()

        # This step's losses, not a running mean: progress shows where training is now.
        losses = {"d_loss": d_loss, "g_loss": g_loss}
        if self.recipe.mode_seeking > 0 and labels is not None:
            losses["spread"] = spread
        return {**losses, "r1": penalty} if self.recipe.r1_gamma > 0 else losses

    def _g_step(self, batch: tf.Tensor, labels: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
        """One G update; returns G's loss and (mode seeking) how far apart its pairs are."""
        z = tf.random.normal((batch, self.config.latent_dim))
        half = batch // 2
        # Conditional models only: on the unlabelled digits it measured no better.
        seeking = self.recipe.mode_seeking > 0 and labels is not None
        if seeking and labels is not None:
            # Pairs: the second half draws the first half's classes from other noise.
            labels = tf.concat([labels[:half], labels[:half], labels[2 * half :]], axis=0)
        with tf.GradientTape() as tape:
            drawn = self._draw(z, labels)
            fake_logits = self._judge(self._augment(drawn), self._pack_labels(labels))
            if self.recipe.loss == "hinge":
                g_loss = -tf.reduce_mean(fake_logits)
            else:
                g_loss = self.bce(tf.ones_like(fake_logits), fake_logits)
            spread = tf.constant(0.0)
            total = g_loss
            if seeking:
                spread = self._pair_spread(z, tf.cast(drawn, tf.float32), half)
                total = g_loss + self.recipe.mode_seeking / (spread + 1e-5)
            scaled = self.g_optimizer.scale_loss(total)
        grads = tape.gradient(scaled, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights, strict=True))
        return g_loss, spread

    @staticmethod
    def _pair_spread(z: tf.Tensor, drawn: tf.Tensor, half: tf.Tensor) -> tf.Tensor:
        """Mode seeking (Mao et al. 2019, MSGAN): how far apart two images of one class are
        for how far apart their noise is. G is rewarded for keeping it large, so it cannot
        draw one prototype per class and ignore z, which our conditional G did."""
        images = tf.reduce_mean(tf.abs(drawn[:half] - drawn[half : 2 * half]))
        noise = tf.reduce_mean(tf.abs(z[:half] - z[half : 2 * half]))
        return images / noise

    def _draw(self, z: tf.Tensor, labels: tf.Tensor | None) -> tf.Tensor:
        return self.generator(z if labels is None else [z, labels], training=True)

    def _judge(self, images: tf.Tensor, packed: tf.Tensor | None) -> tf.Tensor:
        inputs = images if packed is None else [images, packed]
        return self.discriminator(inputs, training=True)

    def _pack_labels(self, labels: tf.Tensor | None) -> tf.Tensor | None:
        """(n,) → (n // pack, pack): the classes of the images ``pack_images`` stacks."""
        if labels is None:
            return None
        pack = self.recipe.pack
        n = tf.shape(labels)[0] // pack
        return tf.reshape(labels[: n * pack], (n, pack))

    def _augment(self, images: tf.Tensor) -> tf.Tensor:
        """What D is shown of a batch: augmented, then packed."""
        return pack_images(diff_augment(images, self.recipe.augment), self.recipe.pack)

    def _d_loss(
        self, real: tf.Tensor, fake: tf.Tensor, packed: tf.Tensor | None
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """D's loss and its R1 penalty: gamma/2 · E‖∇D(real)‖², the slope of D at the real
        images, which keeps D from growing a cliff G cannot climb (Mescheder et al. 2018)."""
        with tf.GradientTape(watch_accessed_variables=False) as slope:
            slope.watch(real)
            real_logits = self._judge(real, packed)
            # The sum must be taken inside the tape: a target the tape did not record
            # has no path back to ``real`` and the gradient comes back None.
            total = tf.reduce_sum(tf.cast(real_logits, tf.float32))
        penalty = tf.constant(0.0)
        if self.recipe.r1_gamma > 0:
            grads = slope.gradient(total, real)
            squared = tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])
            penalty = 0.5 * self.recipe.r1_gamma * tf.reduce_mean(squared)
        fake_logits = self._judge(fake, packed)
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
