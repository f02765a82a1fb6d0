"""In-process generation benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from atelier.shared.settings import Settings
from bench.common import (
    Result,
    model_weights,
    seconds_between,
    stack,
    succeeded,
    timed,
    train_dcgan,
)

NEW_TOKENS = 256
PROMPT = "The Fox and the "
IMAGES = 1000


def textgen_cache(size: str) -> list[Result]:
    """Tokens/s of the cached decoding `textgen` jobs use (keras-hub's key/value cache,
    compiled by `Decoder`) against recomputing the whole sequence for every new token. Both
    sides are XLA-compiled and greedy, on the same model, so only the cache differs."""
    import keras

    from atelier.workers.kinds.causal_lm.network import LanguageModelConfig, build_language_model
    from atelier.workers.kinds.causal_lm.sampling import SamplerSpec
    from atelier.workers.kinds.textgen.decoding import Decoder

    keras.utils.set_random_seed(0)
    config = LanguageModelConfig(sequence_length=320, num_layers=2, num_heads=4, hidden_dim=128)
    lm = build_language_model(config)
    decoder = Decoder(lm)
    greedy = SamplerSpec(temperature=0)
    repeats = 3 if size == "quick" else 10

    decoder.sample(PROMPT, NEW_TOKENS, 1, greedy)  # compile once
    cached = (
        repeats
        * NEW_TOKENS
        / timed(lambda: [decoder.sample(PROMPT, NEW_TOKENS, 1, greedy) for _ in range(repeats)])
    )
    recompute = _recomputing_decoder(lm)
    recompute()  # compile once
    full = repeats * NEW_TOKENS / timed(lambda: [recompute() for _ in range(repeats)])
    ratio = cached / full
    return [
        Result(
            "textgen tokens/s with the KV cache (256 new)",
            cached,
            full,
            "full recomputation",
            "tokens/s",
            ratio,
            ">= 5",
            ratio >= 5,
        )
    ]


def _recomputing_decoder(lm: Any) -> Callable[[], None]:
    """Greedy decoding of ``NEW_TOKENS`` after ``PROMPT`` that runs the whole sequence
    through ``lm`` for every new token (no cache)."""
    import tensorflow as tf

    length = len(PROMPT.encode()) + NEW_TOKENS

    @tf.function(jit_compile=True)  # type: ignore[untyped-decorator]
    def next_token(ids: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
        # Causal attention ignores what comes after `position`, so one fixed shape serves
        # every step; each step still recomputes every layer over the whole sequence.
        mask = tf.ones_like(ids, dtype=tf.bool)
        logits = lm({"token_ids": ids, "padding_mask": mask}, training=False)
        return tf.argmax(logits[0, position - 1], output_type=tf.int32)

    def recompute() -> None:
        ids = np.zeros((1, length), np.int32)
        start = np.frombuffer(PROMPT.encode(), np.uint8)
        ids[0, : len(start)] = start
        for position in range(len(start), length):
            ids[0, position] = int(next_token(ids, tf.constant(position)))

    return recompute


def bulk_generation(size: str) -> list[Result]:
    """A 1,000-image `dcgan` generate job on a loaded model (its run time, claim to
    finish: generating, encoding, storing, recording) against the raw batched forward
    pass of the same generator in this process."""
    repeats = 3 if size == "quick" else 7
    with stack() as (running, client):
        assert running.settings is not None
        model_id = train_dcgan(client)
        raw = _raw_forward_pass(running.settings, model_id)

        def job(image_format: str) -> float:
            params = {"model_id": model_id, "n": IMAGES, "format": image_format}
            done = client.wait(
                client.submit("generate", "dcgan", params)["id"], poll_seconds=0.05, timeout=300
            )
            return seconds_between(succeeded(done)["started_at"], done["finished_at"])

        raw()  # trace
        job("png")  # load the model in the worker and trace there
        raw_times, png_times, npy_times = [], [], []
        for _ in range(repeats):  # interleaved, so drift hits all alike
            raw_times.append(raw())
            png_times.append(job("png"))
            npy_times.append(job("npy"))
    raw_rate = IMAGES / min(raw_times)
    return [
        _bulk_result(label, IMAGES / min(times), raw_rate, repeats, goal)
        # Issue 26 asks 0.85 of the forward pass for the PNG zip; npy keeps its 0.8.
        for label, times, goal in (
            ("PNGs in images.zip", png_times, 0.85),
            ("format=npy", npy_times, 0.8),
        )
    ]


def _raw_forward_pass(settings: Settings, model_id: str) -> Callable[[], float]:
    """A timer of the stored generator's batched forward pass over ``IMAGES`` latents, in
    this process, with the same conversion to uint8 the job does."""
    from atelier.shared.images import to_uint8
    from atelier.workers.checkpoints import restore_checkpoint
    from atelier.workers.kinds.dcgan.inference import CompiledGenerator
    from atelier.workers.kinds.dcgan.model import DcganConfig, build_generator

    record, weights = model_weights(settings, model_id)
    config = DcganConfig(**record.config)
    generator = build_generator(config)
    restore_checkpoint({"g": generator.weights}, weights)
    forward = CompiledGenerator(generator, config)
    z = np.random.default_rng(0).standard_normal((IMAGES, config.latent_dim)).astype(np.float32)
    return lambda: timed(lambda: to_uint8(forward(z)))


def _bulk_result(
    label: str, rate: float, raw_rate: float, repeats: int, goal: float
) -> Result:
    return Result(
        f"1,000-image dcgan job, {label}",
        rate,
        raw_rate,
        "raw batched forward pass",
        "images/s",
        rate / raw_rate,
        f">= {goal}",
        rate / raw_rate >= goal,
        f"job run time (claim to finish), best of {repeats}",
    )
