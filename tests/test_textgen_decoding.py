"""The textgen decoder: reproducible by seed, exact lengths, any length past the context
(a sliding window), and one compiled function per sampler and shape bucket (a retrace per
call is what made generation slow)."""

from __future__ import annotations

import numpy as np
import pytest

from atelier.workers.kinds.causal_lm.network import LanguageModelConfig, build_language_model
from atelier.workers.kinds.causal_lm.sampling import SamplerSpec
from atelier.workers.kinds.textgen.decoding import Decoder
from atelier.workers.kinds.textgen.tokens import ByteTokens

pytestmark = pytest.mark.slow  # TensorFlow


@pytest.fixture(scope="module")
def decoder() -> Decoder:
    import keras

    keras.utils.set_random_seed(0)
    config = LanguageModelConfig(sequence_length=64, num_layers=1, num_heads=2, hidden_dim=16)
    return Decoder(build_language_model(config))


def test_same_seed_same_text_and_other_seeds_differ(decoder: Decoder) -> None:
    spec = SamplerSpec(temperature=1.0, top_k=0, top_p=0.9)
    first = decoder.sample("ab", 20, 3, spec, seed=1)
    assert len(first) == 3
    assert decoder.sample("ab", 20, 3, spec, seed=1) == first
    assert decoder.sample("ab", 20, 3, spec, seed=2) != first


class Latin1Bytes(ByteTokens):
    """One character per byte: a lossless view of what the decoder generated (greedy bytes
    of an untrained model may not be valid UTF-8, and UTF-8 decoding merges bad bytes)."""

    def decode(self, tokens: np.ndarray) -> str:
        return bytes(np.asarray(tokens, dtype=np.uint8)).decode("latin-1")


def test_lengths_are_exact_whatever_the_bucket_or_the_context(decoder: Decoder) -> None:
    """Each of the ``n`` continuations is exactly ``max_new`` bytes, whether the prompt and
    continuation fill their 32-token bucket, spill into the next, reach the 64-token
    context or go far past it (the window slides), and whatever the prompt's length."""
    lossless = Decoder(decoder.lm, Latin1Bytes())
    greedy = SamplerSpec(temperature=0)
    cases = [("x", 1, 1), ("x", 5, 3), ("x", 31, 1), ("x", 40, 2), ("ab", 62, 1)]
    cases += [("ab", 63, 1), ("x" * 10, 60, 2), ("x", 300, 3), ("y" * 200, 70, 1)]
    for prompt, new, n in cases:
        texts = lossless.sample(prompt, new, n, greedy)
        assert [len(text) for text in texts] == [new] * n, (prompt, new, n)


def test_prompts_in_one_bucket_share_a_compiled_function(decoder: Decoder) -> None:
    spec = SamplerSpec(temperature=0.7, top_k=5)
    decoder.sample("a", 10, 2, spec)
    traced = decoder.traces(spec)
    assert traced >= 1
    decoder.sample("abc", 12, 2, spec)  # 15 tokens: the same 32-token bucket, 2 rows
    decoder.sample("abcd", 3, 1, spec)  # 1 row pads to... 1: a new shape
    decoder.sample("abcd", 3, 1, spec, seed=9)
    assert decoder.traces(spec) == traced + 1


def test_long_generation_is_reproducible_and_continues_its_window(decoder: Decoder) -> None:
    """Past the context, the same seed still gives the same text; the first window's text
    is what a short request gives (the slide only adds to it)."""
    lossless = Decoder(decoder.lm, Latin1Bytes())
    spec = SamplerSpec(temperature=1.0, top_k=20)
    long = lossless.sample("The ", 200, 2, spec, seed=3)
    assert long == lossless.sample("The ", 200, 2, spec, seed=3)
    assert long != lossless.sample("The ", 200, 2, spec, seed=4)
    short = lossless.sample("The ", 60, 2, spec, seed=3)  # fills the 64-token context
    assert [text[:60] for text in long] == short


def test_a_model_with_an_n_gram_samples_from_the_mixture() -> None:
    """An untrained network beside an n-gram that has memorised a phrase: with the
    n-gram's weight high, greedy decoding continues the phrase, through the sliding window
    too; sampling stays reproducible by seed."""
    import keras

    from atelier.workers.kinds.causal_lm.ngram import NgramMixture, TokenNgram

    keras.utils.set_random_seed(0)
    config = LanguageModelConfig(sequence_length=32, num_layers=1, num_heads=2, hidden_dim=16)
    # No three bytes of it recur, so an order-4 n-gram knows each next byte for sure.
    phrase = b"abcdefghijklmnopqrstuvwxyz 0123456789."
    corpus = np.frombuffer(phrase * 20, dtype=np.uint8).astype(np.int64)
    mixture = NgramMixture(TokenNgram(corpus, 256, 4), 0.01)
    decoder = Decoder(build_language_model(config), Latin1Bytes(), mixture=mixture)
    greedy = decoder.sample("abc", 100, 1, SamplerSpec(temperature=0.0))[0]
    assert ("abc" + greedy).encode() == (phrase * 4)[: 3 + 100]
    spec = SamplerSpec(temperature=1.0, top_k=0, top_p=0.9)
    assert decoder.sample("ab", 40, 2, spec, seed=3) == decoder.sample("ab", 40, 2, spec, seed=3)
