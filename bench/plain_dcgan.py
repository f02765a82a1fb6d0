"""The training benchmark's baseline, in a fresh process of its own like a worker's job
process: the same DCGAN, batch and data trained by a plain Keras `fit`, no hooks.

    python -m bench.plain_dcgan --steps 300 --batch 64 --filters 32 --latent 64

Prints one JSON line with steady-state steps/s (the first fifth of the steps, where
TensorFlow traces and warms up, is not timed, as in the job's figure)."""

from __future__ import annotations

import argparse
import json
import time


def steps_per_second(steps: int, batch: int, filters: int, latent: int) -> float:
    import keras

    from atelier.workers.datasets import load_builtin, load_labels
    from atelier.workers.kinds.dcgan.model import DCGAN, DcganConfig
    from atelier.workers.kinds.dcgan.training import image_batches

    keras.utils.set_random_seed(0)
    images, labels = load_builtin("digits"), load_labels("digits")
    # The default job's network: conditional on the digits' ten classes.
    gan = DCGAN(DcganConfig(latent_dim=latent, base_filters=filters, classes=10))
    gan.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(5e-4, beta_1=0.5))
    data = image_batches(images, labels, batch, seed=0)
    warm = steps // 5
    gan.fit(data, steps_per_epoch=warm, epochs=1, verbose=0)
    started = time.perf_counter()
    gan.fit(data, steps_per_epoch=steps - warm, epochs=1, verbose=0)
    return (steps - warm) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--filters", type=int, required=True)
    parser.add_argument("--latent", type=int, required=True)
    args = parser.parse_args(argv)
    rate = steps_per_second(args.steps, args.batch, args.filters, args.latent)
    print(json.dumps({"steps_per_second": rate}))


if __name__ == "__main__":
    main()
