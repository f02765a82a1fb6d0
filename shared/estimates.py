"""What a job will cost before it runs: peak memory and output volume, from its params alone.

Pure arithmetic (no TensorFlow), so the API can refuse at submit a job that would kill a
worker (``api.admission``). Each kind's formulas mirror its builders
(``workers/kinds/dcgan/model.py``, ``causal_lm/network.py``); ``tests/test_estimates_real.py``
builds the networks and checks the parameter counts and checkpoint sizes against them.

Peak memory of a training step::

    RUNTIME_BYTES + SAFETY_FACTOR x (weights + gradients + Adam's two moments   16 B/param
                                     + the activations a backward pass keeps    4 B each
                                     + a checkpoint being written, 3 copies)

The activations are counted per layer at the batch (and sequence, or image) size, as the
backward pass must keep them: for a Transformer block 16·B·S·H (LayerNorm in and out, Q/K/V,
the 4H feed-forward before and after GELU, residuals) plus 3·B·A·S² (attention scores, their
softmax, its gradient); for a conv net each feature map three times (conv out, batch norm,
LeakyReLU). ``SAFETY_FACTOR`` covers what the count leaves out (the allocator's
fragmentation, tf.data's prefetch, temporaries of the backward pass); ``RUNTIME_BYTES`` is a
TensorFlow process training a small model: its peak RSS was 0.71-0.84 GiB in most runs and
1.17 GiB in one (a clean CI run: glibc's per-thread arenas vary), so 1.5 GiB.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

FLOAT_BYTES = 4
TRAINING_BYTES_PER_PARAM = 4 * FLOAT_BYTES  # weights, gradients, Adam's m and v
SAFETY_FACTOR = 1.5
RUNTIME_BYTES = 3 << 29  # 1.5 GiB
NPZ_ARRAY_OVERHEAD = 256
"""Bytes a checkpoint (``np.savez``: a zip of .npy files) spends per array beyond its data:
a zip local header and central-directory entry with the name, and the .npy header."""
BYTE_VOCABULARY = 256


@dataclass(frozen=True)
class Estimate:
    """A job's predicted cost; what a 422 ``too-large`` reports."""

    parameters: int
    """Weights of the network(s) (trainable and not)."""
    memory_bytes: int
    """Peak resident memory of the job's process, safety factor and runtime included."""
    checkpoint_bytes: int
    """One checkpoint: weights and optimizer state (``workers.checkpoints``)."""
    output_bytes: int
    """What the job keeps in storage at most: kept checkpoints, samples, weights, outputs."""
    samples: int
    """Sample objects a training job writes (0 for generation)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NetworkSize:
    """Elements of a network's variables: ``trainable`` get Adam moments."""

    trainable: int
    frozen: int = 0
    arrays: int = 0
    """Variables (each one array in a checkpoint)."""
    frozen_arrays: int = 0

    def __add__(self, other: NetworkSize) -> NetworkSize:
        return NetworkSize(
            self.trainable + other.trainable,
            self.frozen + other.frozen,
            self.arrays + other.arrays,
            self.frozen_arrays + other.frozen_arrays,
        )

    @property
    def total(self) -> int:
        return self.trainable + self.frozen

    def checkpoint_bytes(self, with_optimizer: bool = True) -> int:
        """An npz of the weights, plus (training state) Adam's m and v of each trainable
        variable and its two scalars (iterations, learning rate)."""
        elements, arrays = self.total, self.arrays
        if with_optimizer:
            elements += 2 * self.trainable + 2
            trainable_arrays = self.arrays - self.frozen_arrays
            arrays += 2 * trainable_arrays + 2
        return FLOAT_BYTES * elements + NPZ_ARRAY_OVERHEAD * (arrays + 1)


def training_memory(size: NetworkSize, activation_elements: int) -> int:
    """Training state, activations, and a checkpoint being written: its arrays copied out
    of the variables, the npz buffer, and the bytes handed to the upload queue."""
    work = TRAINING_BYTES_PER_PARAM * size.trainable + FLOAT_BYTES * size.frozen
    work += 3 * size.checkpoint_bytes() + FLOAT_BYTES * activation_elements
    return RUNTIME_BYTES + math.ceil(SAFETY_FACTOR * work)


def inference_memory(size: NetworkSize, activation_elements: int) -> int:
    work = FLOAT_BYTES * (size.total + activation_elements)
    return RUNTIME_BYTES + math.ceil(SAFETY_FACTOR * work)


GPU_RUNTIME_BYTES = 1 << 30
"""What a GPU holds for TensorFlow beyond the job's own tensors: the CUDA context and the
cuDNN/cuBLAS workspaces. An allowance from TensorFlow's and CUDA's documented footprints,
not measured here (this project's machines have no GPU)."""


def device_memory(found: Estimate) -> int:
    """Peak GPU memory of a job whose estimate is ``found``: its work (the same safety
    factor) without the host runtime, plus the GPU's own runtime. What the host alone holds
    (a checkpoint's copies, the dataset) is still counted: a safe over-estimate."""
    return found.memory_bytes - RUNTIME_BYTES + GPU_RUNTIME_BYTES


def samples_written(steps: int, sample_every: int) -> int:
    """Every ``sample_every`` steps, and once more at the end when that is not one of them."""
    return steps // sample_every + (1 if steps % sample_every else 0)


def checkpoints_written(steps: int, checkpoint_every: int) -> int:
    """Periodic checkpoints (none at the last step: the weights are stored then)."""
    return (steps - 1) // checkpoint_every


def kept_checkpoint_bytes(
    checkpoint: int, steps: int, checkpoint_every: int, checkpoints_kept: int
) -> int:
    """The most checkpoints one job holds at once: the kept ones and the one being stored."""
    written = checkpoints_written(steps, checkpoint_every)
    return checkpoint * min(written, max(checkpoints_kept, 1) + 1)


@dataclass(frozen=True)
class JobFacts:
    """What an estimate needs beyond the params: the dataset (training), the model's
    config (generation), and how many checkpoints a job keeps."""

    image_size: int = 28
    channels: int = 1
    dataset_count: int = 0
    """Images, or bytes of text, the worker holds in memory."""
    classes: int = 0
    """The image dataset's class labels (0: unlabelled)."""
    model_config: dict[str, Any] | None = None
    checkpoints_kept: int = 2


# --- dcgan (workers/kinds/dcgan/model.py) ----------------------------------------------------
@dataclass(frozen=True)
class ConvNetShape:
    """A DCGAN's geometry: ``image_size`` = ``start`` x 2^``upsamplings``; ``classes`` > 0
    for a conditional one."""

    image_size: int
    channels: int
    latent_dim: int
    base_filters: int
    classes: int = 0

    @property
    def start(self) -> int:
        return 7 if self.image_size % 7 == 0 else 4

    @property
    def upsamplings(self) -> int:
        return max(1, round(math.log2(self.image_size / self.start)))

    def generator(self) -> NetworkSize:
        """A class embedding of z's width (conditional), Dense (no bias) + batch norm on its
        flat output, then k-1 transposed convs (4x4, no bias) halving the width with batch
        norm, then a 4x4 conv to the image."""
        k, base, flat = self.upsamplings, self.base_filters, self.start**2
        width = base << k
        inputs = self.latent_dim * (2 if self.classes else 1)
        size = NetworkSize(self.classes * self.latent_dim, arrays=1 if self.classes else 0)
        size += NetworkSize(inputs * flat * width, arrays=1) + batch_norm(flat * width)
        for _ in range(k - 1):
            size += NetworkSize(16 * width * (width // 2), arrays=1) + batch_norm(width // 2)
            width //= 2
        return size + NetworkSize(16 * width * self.channels + self.channels, arrays=2)

    def discriminator(self) -> NetworkSize:
        """k strided 4x4 convs doubling from ``base_filters``, then Dense(1) and (conditional)
        a class projection of the flat features."""
        size, width_in, width = NetworkSize(0), self.channels, self.base_filters
        for _ in range(self.upsamplings):
            size += NetworkSize(16 * width_in * width + width, arrays=2)
            width_in, width = width, width * 2
        features = self.start**2 * width_in
        projection = NetworkSize(self.classes * features, arrays=1 if self.classes else 0)
        return size + NetworkSize(features + 1, arrays=2) + projection

    def generator_activations(self) -> int:
        """Per image: each feature map three times (layer out, batch norm, LeakyReLU)."""
        k, side, width = self.upsamplings, self.start, self.base_filters << self.upsamplings
        elements = 3 * side * side * width
        for _ in range(k - 1):
            side, width = side * 2, width // 2
            elements += 3 * side * side * width
        return elements + 2 * self.image_size * self.image_size * self.channels

    def discriminator_activations(self) -> int:
        """Per image: the input, and each feature map twice (conv out, LeakyReLU)."""
        side, width = self.image_size, self.base_filters
        elements = side * side * self.channels
        for _ in range(self.upsamplings):
            side //= 2
            elements += 2 * side * side * width
            width *= 2
        return elements


def batch_norm(features: int) -> NetworkSize:
    """gamma and beta (trainable), moving mean and variance (not)."""
    return NetworkSize(2 * features, 2 * features, arrays=4, frozen_arrays=2)


# --- textgen and melody (workers/kinds/causal_lm/network.py: keras-hub's GPT2Backbone) ---------
def gpt2_size(
    sequence_length: int,
    num_layers: int,
    hidden_dim: int,
    vocabulary_size: int = BYTE_VOCABULARY,
) -> NetworkSize:
    """Token embedding (tied to the output layer) and position embedding; per block two
    LayerNorms, Q/K/V/output projections with bias, a 4H feed-forward with bias
    (12H² + 13H); a final LayerNorm."""
    h = hidden_dim
    block = NetworkSize(12 * h * h + 13 * h, arrays=16)
    size = NetworkSize((vocabulary_size + sequence_length) * h + 2 * h, arrays=4)
    for _ in range(num_layers):
        size += block
    return size


def gpt2_training_activations(
    batch: int,
    sequence_length: int,
    num_layers: int,
    num_heads: int,
    hidden_dim: int,
    vocabulary_size: int = BYTE_VOCABULARY,
) -> int:
    b, s, h = batch, sequence_length, hidden_dim
    per_block = 16 * b * s * h + 3 * b * num_heads * s * s
    return num_layers * per_block + b * s * h + 3 * b * s * vocabulary_size
