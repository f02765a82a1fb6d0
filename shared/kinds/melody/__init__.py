"""The ``melody`` kind's TF-free half: its row in the table, its parameters and estimates
(``params``), ABC tunes as tokens (``abc``), what music21 says about a tune (``music``),
transposing one (``transpose``), and which tunes of an upload are kept (``ingest``). The
API imports it (music21 only on first use); the worker half is ``workers/kinds/melody/``."""

from __future__ import annotations

from ..base import KindSpec
from ..causal_lm import gpt2_continuation
from .params import (
    MelodyGenerateParams,
    MelodyTrainParams,
    estimate_melody_generate,
    estimate_melody_train,
)

KIND = KindSpec(
    name="melody",
    description="Decoder-only Transformer over ABC tokens for folk tunes (ABC, MIDI, WAV).",
    train_params=MelodyTrainParams,
    generate_params=MelodyGenerateParams,
    implementation="atelier.workers.kinds.melody.kind:MelodyKind",
    modality="music",
    estimate_train=estimate_melody_train,
    estimate_generate=estimate_melody_generate,
    # The vocabulary is the model's: tunes with a token it never saw are left out.
    continuation=gpt2_continuation(),
    exportable=True,
)
