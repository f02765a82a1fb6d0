"""In-process generation benchmarks."""

from __future__ import annotations

import time

import numpy as np

from bench.common import Result


def textgen_cache(size: str) -> list[Result]:
    """Tokens/s of keras-hub's cached decoding (what `textgen` generate uses) against
    recomputing the whole sequence for every new token, at 256 new tokens."""
    import keras
    import keras_hub
    import tensorflow as tf

    from workers.kinds.textgen import TextgenConfig, build_language_model, sample_texts

    new_tokens = 256
    prompt = "The Fox and the "
    keras.utils.set_random_seed(0)
    config = TextgenConfig(sequence_length=320, num_layers=2, num_heads=4, hidden_dim=128)
    lm = build_language_model(config)
    greedy = keras_hub.samplers.GreedySampler()

    sample_texts(lm, prompt, new_tokens, 1, greedy)  # trace and compile once
    repeats = 2 if size == "quick" else 5
    started = time.perf_counter()
    for _ in range(repeats):
        sample_texts(lm, prompt, new_tokens, 1, greedy)
    cached = repeats * new_tokens / (time.perf_counter() - started)

    length = len(prompt.encode()) + new_tokens

    @tf.function(jit_compile=False)  # type: ignore[untyped-decorator]
    def next_token(ids: tf.Tensor, mask: tf.Tensor, position: tf.Tensor) -> tf.Tensor:
        logits = lm({"token_ids": ids, "padding_mask": mask}, training=False)
        return tf.argmax(logits[0, position - 1], output_type=tf.int32)

    def recompute() -> None:
        ids = np.zeros((1, length), np.int32)
        start = np.frombuffer(prompt.encode(), np.uint8)
        ids[0, : len(start)] = start
        mask = np.ones((1, length), bool)  # causal attention ignores what comes after
        for position in range(len(start), length):
            ids[0, position] = int(next_token(ids, mask, tf.constant(position)))

    recompute()  # trace once
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
