"""Decoding for ``melody``: the compiled samplers of ``causal_lm.sampling``, over token
ids, optionally through the meter guard (``guard``).

Every row is one tune: its header tokens are the prompt (rows may differ in length; the
padding mask tells keras-hub which positions to fill), and a row ends at ``</tune>``. Rows
are padded to a power of two and the length is always the whole context, so one compiled
function per sampler serves every request of a model."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..causal_lm.sampling import (
    CompiledSamplers,
    SamplerSpec,
    next_power_of_two,
    reseed,
)
from .guard import GuardedSampler, MeterGuard


class MelodyDecoder:
    def __init__(
        self, lm: Any, end_id: int, jit_compile: bool = True, tokens: tuple[str, ...] = ()
    ) -> None:
        self.lm = lm
        self.end_id = end_id
        self.guard = MeterGuard(tokens) if tokens else None
        """Masks tokens that break the bar (``guard``); needs the vocabulary."""
        self.samplers: CompiledSamplers[tuple[SamplerSpec, int, bool]] = CompiledSamplers(
            lm, jit_compile
        )

    @property
    def context(self) -> int:
        return self.samplers.context

    def sample(
        self, prompts: list[list[int]], spec: SamplerSpec, seed: int, meter_guard: bool = False
    ) -> list[list[int]]:
        """Each prompt continued until ``</tune>`` or the context is full; returns the new
        ids of each row (without the prompt, without ``</tune>``). With ``meter_guard``
        (and a decoder given the vocabulary) every bar is kept to the meter."""
        rows = next_power_of_two(len(prompts))
        token_ids = np.zeros((rows, self.context), dtype=np.int32)
        padding_mask = np.zeros((rows, self.context), dtype=bool)
        for row in range(rows):
            prompt = prompts[row % len(prompts)]
            token_ids[row, : len(prompt)] = prompt
            padding_mask[row, : len(prompt)] = True
        guarded = meter_guard and self.guard is not None
        sampler = self.samplers.select(
            (spec, rows, guarded), lambda: self._new_sampler(spec, guarded)
        )
        reseed(sampler, seed)
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

    def _new_sampler(self, spec: SamplerSpec, guarded: bool) -> Any:
        sampler = spec.build()
        return GuardedSampler(sampler, self.guard) if guarded and self.guard else sampler
