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

    from atelier.workers.kinds.textgen import TextgenConfig, build_language_model
    from atelier.workers.kinds.textgen_decoding import Decoder, SamplerSpec

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


def bulk_generation(size: str) -> list[Result]:
    """A 1,000-image `dcgan` generate job on a loaded model (its run time, claim to
    finish: generating, encoding, storing, recording) against the raw batched forward
    pass of the same generator in this process."""
    from atelier.client import epoch_seconds
    from atelier.shared.images import to_uint8
    from atelier.shared.models import ModelStore
    from atelier.shared.redis_client import connect
    from atelier.shared.storage import make_object_store
    from atelier.workers.checkpoints import restore_checkpoint
    from atelier.workers.kinds.dcgan_model import CompiledGenerator, DcganConfig, build_generator
    from bench.common import stack

    images, repeats = 1000, (3 if size == "quick" else 7)
    tiny = {"steps": 20, "batch_size": 16, "base_filters": 32, "latent_dim": 64}
    with stack() as (running, client):
        settings = running.settings
        assert settings is not None
        model_id = client.wait(client.submit("train", "dcgan", tiny)["id"], timeout=600)["model_id"]
        record = ModelStore(connect(settings.redis_url)).get(model_id)
        assert record is not None
        config = DcganConfig(**record.config)
        generator = build_generator(config)
        restore_checkpoint(
            {"g": generator.weights}, make_object_store(settings).get_bytes(record.weights_key)
        )
        forward = CompiledGenerator(generator, config.latent_dim)
        z = np.random.default_rng(0).standard_normal((images, config.latent_dim))
        z = z.astype(np.float32)

        def raw() -> float:
            started = time.perf_counter()
            to_uint8(forward(z))
            return time.perf_counter() - started

        def job(image_format: str) -> float:
            params = {"model_id": model_id, "n": images, "format": image_format}
            done = client.wait(
                client.submit("generate", "dcgan", params)["id"], poll_seconds=0.05, timeout=300
            )
            assert done["status"] == "succeeded", done["error"]
            return epoch_seconds(done["finished_at"]) - epoch_seconds(done["started_at"])

        raw()  # trace
        job("png")  # load the model in the worker and trace there
        raw_times, png_times, npy_times = [], [], []
        for _ in range(repeats):  # interleaved, so drift hits all alike
            raw_times.append(raw())
            png_times.append(job("png"))
            npy_times.append(job("npy"))
    raw_rate = images / min(raw_times)
    results = []
    for label, times in (("PNGs in images.zip", png_times), ("format=npy", npy_times)):
        rate = images / min(times)
        results.append(
            Result(
                f"1,000-image dcgan job, {label}",
                rate,
                raw_rate,
                "raw batched forward pass",
                "images/s",
                rate / raw_rate,
                ">= 0.8",
                rate / raw_rate >= 0.8,
                f"job run time (claim to finish), best of {repeats}",
            )
        )
    return results
