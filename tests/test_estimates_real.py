"""The admission estimates (``shared.estimates``, pure arithmetic) against the real networks:
parameter counts and checkpoint sizes of the tiny and default configs, and peak memory of
a few real training steps.

Slow tier (TensorFlow): ``flock /tmp/atelier-tf.lock ./dev test tests/test_estimates_real.py``.

Tolerances: parameter counts must match exactly (the formulas mirror the builders layer by
layer). A checkpoint may differ from the estimate by 1% plus 64 bytes per array: its data
is exact, but each array's zip and .npy headers depend on the array's name and shape, which
the estimate prices at a flat ``NPZ_ARRAY_OVERHEAD``. Memory is an upper bound: the
measured peak RSS must be below the estimate, and above a fifth of it (an estimate that
far off would refuse jobs that fit).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

from atelier.shared.estimates import ConvNetShape, JobFacts, NetworkSize, gpt2_size
from atelier.shared.kinds.dcgan import DcganTrainParams, estimate_dcgan_train
from atelier.shared.kinds.textgen import TextgenTrainParams, estimate_textgen_train

pytestmark = pytest.mark.slow


def elements(variables: Any) -> int:
    return sum(int(np.prod(v.shape)) for v in variables)


def assert_checkpoint_close(estimated: NetworkSize, real: bytes) -> None:
    predicted = estimated.checkpoint_bytes()
    arrays = estimated.arrays * 3
    assert abs(len(real) - predicted) <= 0.01 * len(real) + 64 * arrays, (len(real), predicted)


@pytest.mark.parametrize(
    "config",
    [
        {"latent_dim": 8, "base_filters": 4},
        {},
        {"classes": 10},
        {"image_size": 64, "channels": 3},
    ],
    ids=["tiny", "default", "conditional", "default-64px-rgb"],
)
def test_dcgan_estimate_matches_the_network(config: dict[str, Any]) -> None:
    import keras

    from atelier.workers.checkpoints import encode_checkpoint
    from atelier.workers.kinds.dcgan.model import (
        DCGAN,
        DcganConfig,
        build_optimizer_state,
        training_state,
    )

    real_config = DcganConfig(**config)
    gan = DCGAN(real_config)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3))
    build_optimizer_state(gan)
    shape = ConvNetShape(
        real_config.image_size,
        real_config.channels,
        real_config.latent_dim,
        real_config.base_filters,
        real_config.classes,
    )
    generator, discriminator = shape.generator(), shape.discriminator()
    assert generator.total == elements(gan.generator.weights)
    assert discriminator.total == elements(gan.discriminator.weights)
    assert generator.trainable == elements(gan.generator.trainable_weights)
    assert (generator + discriminator).arrays == len(gan.generator.weights) + len(
        gan.discriminator.weights
    )
    assert_checkpoint_close(generator + discriminator, encode_checkpoint(training_state(gan), 1))


@pytest.mark.parametrize(
    "config",
    [
        {"sequence_length": 64, "num_layers": 1, "num_heads": 2, "hidden_dim": 16},
        {},
        {"sequence_length": 512, "num_layers": 4, "num_heads": 8, "hidden_dim": 256},
    ],
    ids=["tiny", "default", "medium"],
)
def test_textgen_estimate_matches_the_network(config: dict[str, Any]) -> None:
    from atelier.workers.checkpoints import encode_checkpoint
    from atelier.workers.kinds.causal_lm.network import (
        LanguageModelConfig,
        build_language_model,
        compile_for_training,
    )

    real_config = LanguageModelConfig(**config)
    lm = build_language_model(real_config)
    compile_for_training(lm, 1e-3)
    lm.optimizer.build(lm.trainable_variables)
    size = gpt2_size(real_config.sequence_length, real_config.num_layers, real_config.hidden_dim)
    assert size.total == elements(lm.weights)
    assert size.arrays == len(lm.weights)
    state = {"lm": lm.weights, "opt": lm.optimizer.variables}
    assert_checkpoint_close(size, encode_checkpoint(state, 1))


# Trains a few steps in a fresh process and prints its peak RSS: the job process's shape.
PEAK_RSS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    kind, params = sys.argv[1], json.loads(sys.argv[2])
    if kind == "textgen":
        from atelier.workers.kinds.causal_lm.network import (
            LanguageModelConfig, build_language_model, compile_for_training, training_windows)
        config = LanguageModelConfig(params["sequence_length"], params["num_layers"],
                               params["num_heads"], params["hidden_dim"])
        model = build_language_model(config)
        compile_for_training(model, 1e-3)
        data = np.random.default_rng(0).integers(0, 256, 300_000).astype(np.uint8)
        batches = training_windows(data, config.sequence_length, params["batch_size"], 0)
    else:
        import keras
        from atelier.shared.kinds.dcgan import DcganTrainParams
        from atelier.workers.kinds.dcgan.training import build_gan, image_batches
        # The job's own builders: conditional on the digits' ten classes, as the default is.
        model = build_gan(DcganTrainParams.model_validate(params), 28, 1, classes=10)
        images = np.random.default_rng(0).uniform(-1, 1, (1797, 28, 28, 1)).astype("float32")
        labels = (np.arange(1797) % 10).astype("int32")
        batches = image_batches(images, labels, params["batch_size"], seed=0)
    model.fit(batches, steps_per_epoch=2, epochs=1, verbose=0)  # the peak is in the first step
    # VmHWM, this process's own peak: ru_maxrss survives exec, so it starts at the RSS of
    # whoever forked us (a test process that had trained in-process read 1.75 GiB for both
    # default configs).
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    print(int(status.split()[0]) * 1024)
    """
)


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("dcgan", {}),
        ("dcgan", {"batch_size": 512, "base_filters": 64}),
        ("textgen", {}),
        ("textgen", {"sequence_length": 512, "num_layers": 4, "num_heads": 8, "hidden_dim": 256}),
    ],
    ids=["dcgan-default", "dcgan-wide", "textgen-default", "textgen-medium"],
)
def test_peak_memory_is_within_the_estimate(kind: str, params: dict[str, Any]) -> None:
    if kind == "dcgan":
        p: Any = DcganTrainParams.model_validate(params)
        found = estimate_dcgan_train(p, JobFacts(28, 1, dataset_count=1797, classes=10))
    else:
        p = TextgenTrainParams.model_validate(params)
        found = estimate_textgen_train(p, JobFacts(dataset_count=300_000))
    run = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, kind, json.dumps(p.model_dump())],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    peak = int(run.stdout.strip().splitlines()[-1])
    estimated = found.memory_bytes
    print(f"{kind} {params}: peak RSS {peak / 2**30:.2f} GiB, estimate {estimated / 2**30:.2f}")
    assert found.memory_bytes / 5 < peak < found.memory_bytes
