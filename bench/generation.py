"""In-process generation benchmarks."""

from __future__ import annotations

import time

import numpy as np

from bench.common import Result


def textgen_cache(size: str) -> list[Result]:
    """Tokens/s of the cached decoding `textgen` jobs use (keras-hub's key/value cache,
    compiled by `Decoder`) against recomputing the whole sequence for every new token. Both
    sides are XLA-compiled and greedy, on the same model, so only the cache differs."""
    import keras
    import tensorflow as tf

    from workers.kinds.textgen import TextgenConfig, build_language_model
    from workers.kinds.textgen_decoding import Decoder, SamplerSpec

    new_tokens = 256
    prompt = "The Fox and the "
    keras.utils.set_random_seed(0)
    config = TextgenConfig(sequence_length=320, num_layers=2, num_heads=4, hidden_dim=128)
    lm = build_language_model(config)
    decoder = Decoder(lm)
    greedy = SamplerSpec(temperature=0)
    repeats = 3 if size == "quick" else 10

    decoder.sample(prompt, new_tokens, 1, greedy)  # compile once
    started = time.perf_counter()
    for _ in range(repeats):
        decoder.sample(prompt, new_tokens, 1, greedy)
    cached = repeats * new_tokens / (time.perf_counter() - started)

    length = len(prompt.encode()) + new_tokens

    @tf.function(jit_compile=True)  # type: ignore[untyped-decorator]
    def next_token(ids: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
        # Causal attention ignores what comes after `position`, so one fixed shape serves
        # every step; each step still recomputes every layer over the whole sequence.
        mask = tf.ones_like(ids, dtype=tf.bool)
        logits = lm({"token_ids": ids, "padding_mask": mask}, training=False)
        return tf.argmax(logits[0, position - 1], output_type=tf.int32)

    def recompute() -> None:
        ids = np.zeros((1, length), np.int32)
        start = np.frombuffer(prompt.encode(), np.uint8)
        ids[0, : len(start)] = start
        for position in range(len(start), length):
            ids[0, position] = int(next_token(ids, tf.constant(position)))

    recompute()  # compile once
    started = time.perf_counter()
    for _ in range(repeats):
        recompute()
    full = repeats * new_tokens / (time.perf_counter() - started)
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
