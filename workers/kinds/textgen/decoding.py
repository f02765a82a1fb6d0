"""Decoding for ``textgen``: text in, text out, through the compiled samplers of
``causal_lm.sampling``. XLA costs about 1.6 s per new input shape, so prompts are padded
to a few bucketed shapes.

Generation longer than the context slides a window: once the context is full, the newest
half of it becomes the prompt of the next call (keras-hub rebuilds the key/value cache from
it), so any length can be asked of any model.

A model with a token n-gram (``causal_lm.ngram``) samples from the interpolation of the two:
each step's network logits are mixed with the n-gram's distribution on the host, so its
loop is traced without XLA (XLA cannot call back into Python)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from keras import ops

from ..causal_lm.ngram import NgramMixture
from ..causal_lm.sampling import (
    CompiledSamplers,
    SamplerSpec,
    next_power_of_two,
    reseed,
)
from .tokens import ByteTokens, TextTokens

LENGTH_BUCKET = 32  # tokens: at most 31 generated and thrown away per row
KEPT_FRACTION = 0.5  # of the context, carried into the next window: context vs. speed


def _bucket(value: int, step: int) -> int:
    return -(-value // step) * step


class Decoder:
    """Samples continuations from one language model, reusing compiled generate functions."""

    def __init__(
        self,
        lm: Any,
        tokens: TextTokens | None = None,
        jit_compile: bool = True,
        mixture: NgramMixture | None = None,
    ) -> None:
        self.lm = lm
        self.tokens = tokens or ByteTokens()
        self.mixture = mixture
        self.samplers: CompiledSamplers[SamplerSpec] = CompiledSamplers(
            lm, jit_compile and mixture is None
        )

    @property
    def context(self) -> int:
        return self.samplers.context

    def sample(
        self, prompt: str, max_new: int, n: int, spec: SamplerSpec, seed: int = 0
    ) -> list[str]:
        """``n`` continuations of ``prompt``, each ``max_new`` tokens long, however long the
        context. An empty prompt starts at a paragraph break, as the corpus does; a prompt
        longer than the context is read from its end. The same seed gives the same text for
        the same arguments."""
        start = self.tokens.encode(prompt or "\n")[-(self.context - 1) :]
        rows = next_power_of_two(n)
        window = np.tile(start, (rows, 1))
        generated = np.zeros((rows, 0), dtype=np.int32)
        kept = max(1, int(self.context * KEPT_FRACTION))
        sampler = self.samplers.select(spec, spec.build, self._step())
        part = 0
        while generated.shape[1] < max_new:
            count = min(max_new - generated.shape[1], self.context - window.shape[1])
            new = self._continue(window, count, sampler, seed, part)
            generated = np.concatenate([generated, new], axis=1)
            window = np.concatenate([window, new], axis=1)[:, -kept:]
            part += 1
        return [self.tokens.decode(row) for row in generated[:n]]

    def _continue(
        self, window: np.ndarray, count: int, sampler: Any, seed: int, part: int
    ) -> np.ndarray:
        """``count`` more tokens after each row of ``window`` (which leaves room for them)."""
        rows, used = window.shape
        length = min(_bucket(used + count, LENGTH_BUCKET), self.context)
        token_ids = np.zeros((rows, length), dtype=np.int32)
        token_ids[:, :used] = window
        padding_mask = np.zeros((rows, length), dtype=bool)
        padding_mask[:, :used] = True
        reseed(sampler, seed, part)  # a fresh sampler's seed state, one per window
        out = self.lm.generate(
            {"token_ids": token_ids, "padding_mask": padding_mask},
            max_length=length,
            stop_token_ids=None,
        )
        return np.asarray(out["token_ids"], dtype=np.int32)[:, used : used + count]

    def traces(self, spec: SamplerSpec) -> int:
        """Input shapes the compiled function of ``spec`` was traced for: what shows that
        prompts of one length bucket share a compilation."""
        return self.samplers.traces(spec)

    def _step(self) -> Callable[..., Any] | None:
        """The generate step of a model with an n-gram; None: keras-hub's own."""
        if self.mixture is None:
            return None
        lm, mixture = self.lm, self.mixture
        return lambda inputs, stop_token_ids=None: mixed_generate_step(lm, mixture, inputs)


def mixed_generate_step(lm: Any, mixture: NgramMixture, inputs: dict[str, Any]) -> dict[str, Any]:
    """keras-hub's GPT-2 generate step (``GPT2CausalLM.generate_step``, without stop
    tokens), with each step's logits replaced by the log of the network-n-gram mixture."""
    token_ids, padding_mask = inputs["token_ids"], inputs["padding_mask"]
    hidden_states, cache = lm._build_cache(token_ids)
    index = ops.min(ops.sum(ops.cast(padding_mask, "int32"), axis=-1))

    def next_logits(prompt: Any, cache: Any, index: Any) -> tuple[Any, Any, Any]:
        position = index - 1
        last = ops.slice(prompt, [0, position], [ops.shape(prompt)[0], 1])
        logits, hidden, cache = lm.call_with_cache(last, cache, position)
        logits = ops.squeeze(logits, axis=1)
        mixed = tf.numpy_function(
            mixture.mixed_logits, [logits, prompt, index], tf.float32, stateful=False
        )
        mixed.set_shape(logits.shape)
        return mixed, ops.squeeze(hidden, axis=1), cache

    token_ids = lm.sampler(
        next=next_logits,
        prompt=token_ids,
        cache=cache,
        index=index,
        mask=padding_mask,
        hidden_states=hidden_states,
        model=lm,
    )
    return {"token_ids": token_ids, "padding_mask": ops.ones_like(token_ids, dtype="bool")}
