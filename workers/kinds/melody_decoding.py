"""Cached decoding for ``melody``: keras-hub's key/value-cache generation loop with its
samplers (``SamplerSpec`` from ``textgen_decoding``), over token ids.

Every row is one tune: its header tokens are the prompt (rows may differ in length; the
padding mask tells keras-hub which positions to fill), and a row ends at ``</tune>``. Rows
are padded to a power of two and the length is always the whole context, so one compiled
function per sampler serves every request of a model."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import tensorflow as tf

from atelier.workers.kinds.melody_guard import GuardedSampler, MeterGuard
from atelier.workers.kinds.textgen_decoding import SamplerSpec

COMPILED_SAMPLERS = 8


def _next_power_of_two(value: int) -> int:
    return 1 << max(value - 1, 0).bit_length()


class MelodyDecoder:
    def __init__(
        self, lm: Any, end_id: int, jit_compile: bool = True, tokens: tuple[str, ...] = ()
    ) -> None:
        self.lm = lm
        self.end_id = end_id
        self.jit_compile = jit_compile
        self.guard = MeterGuard(tokens) if tokens else None
        """Masks tokens that break the bar (``melody_guard``); needs the vocabulary."""
        self._compiled: OrderedDict[tuple[SamplerSpec, int, bool], tuple[Any, Any]] = OrderedDict()

    @property
    def context(self) -> int:
        return int(self.lm.backbone.max_sequence_length)

    def sample(
        self, prompts: list[list[int]], spec: SamplerSpec, seed: int, meter_guard: bool = False
    ) -> list[list[int]]:
        """Each prompt continued until ``</tune>`` or the context is full; returns the new
        ids of each row (without the prompt, without ``</tune>``). With ``meter_guard``
        (and a decoder given the vocabulary) every bar is kept to the meter."""
        rows = _next_power_of_two(len(prompts))
        token_ids = np.zeros((rows, self.context), dtype=np.int32)
        padding_mask = np.zeros((rows, self.context), dtype=bool)
        for row in range(rows):
            prompt = prompts[row % len(prompts)]
            token_ids[row, : len(prompt)] = prompt
            padding_mask[row, : len(prompt)] = True
        sampler, function = self._function(spec, rows, meter_guard and self.guard is not None)
        for state in sampler.variables:  # the seed, as a fresh sampler's state holds it
            state.assign(np.array([seed, 0], dtype=state.dtype))
        self.lm.sampler = sampler
        self.lm.generate_function = function
        out = self.lm.generate(
            {"token_ids": token_ids, "padding_mask": padding_mask},
            max_length=self.context,
            stop_token_ids=[self.end_id],
        )
        generated = np.asarray(out["token_ids"])
        results = []
        for row, prompt in enumerate(prompts):
            new = [int(i) for i in generated[row, len(prompt) :]]
            results.append(new[: new.index(self.end_id)] if self.end_id in new else new)
        return results

    def _function(self, spec: SamplerSpec, rows: int, guarded: bool) -> tuple[Any, Any]:
        entry = (spec, rows, guarded)
        if entry in self._compiled:
            self._compiled.move_to_end(entry)
            return self._compiled[entry]
        sampler = spec.build()
        if guarded and self.guard is not None:
            sampler = GuardedSampler(sampler, self.guard)
        # Traced while this sampler is the model's: each entry keeps its own sampler.
        self.lm.sampler = sampler
        function = tf.function(self.lm.generate_step, jit_compile=self.jit_compile)
        self._compiled[entry] = (sampler, function)
        if len(self._compiled) > COMPILED_SAMPLERS:
            self._compiled.popitem(last=False)
        return sampler, function
