"""The ``melody`` kind's parameters and estimates (pure pydantic: the API imports them,
``shared.kinds.melody`` puts them in its row of the table)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...estimates import Estimate, JobFacts
from ..base import StrictParams, model_id_field
from ..causal_lm import Gpt2TrainParams, gpt2_sampling, gpt2_training
from .abc import RHYTHMS

WAV_BYTES_PER_TUNE = 44_100 * 2 * 2 * 60
"""A minute of 16-bit stereo at 44.1 kHz: longer than a generated tune plays."""


class MelodyTrainParams(Gpt2TrainParams):
    dataset: str = Field("folk", description="An ABC dataset; see GET /v1/datasets.")
    steps: int = Field(1200, ge=1, le=1_000_000, description="Optimizer steps.")
    sequence_length: int = Field(
        256, ge=32, le=2048, description="Context in ABC tokens; a generated tune fits in it."
    )
    learning_rate: float = Field(
        2e-3, gt=0, le=0.1, description="Peak rate: 5% warm-up, then cosine decay to a tenth."
    )
    transpose_to: str | None = Field(
        None,
        pattern=r"^[A-G][#b]?$",
        description="Transpose every tune to this tonic, its mode kept (e.g. D), before "
        "training; none: as written.",
    )
    sample_every: int = Field(
        300, ge=1, le=1_000_000, description="Steps between validation and a sample tune."
    )
    checkpoint_every: int = Field(300, ge=1, le=1_000_000, description="Steps between checkpoints.")


Rhythm = Literal[RHYTHMS]  # type: ignore[valid-type]


class MelodyGenerateParams(StrictParams):
    model_id: str = model_id_field("melody")
    n: int = Field(4, ge=1, le=32, description="Tunes to write.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Same seed, same tunes.")
    temperature: float = Field(
        0.8, gt=0, le=5.0, description="Below 1: safer choices; above 1: more varied."
    )
    top_k: int = Field(0, ge=0, le=256, description="0 turns top-k off.")
    top_p: float = Field(0.95, gt=0, le=1.0, description="1 turns nucleus sampling off.")
    meter: str | None = Field(
        None, pattern=r"^[1-9][0-9]?/(1|2|4|8|16)$", description="M: of every tune, e.g. 6/8."
    )
    key: str | None = Field(
        None,
        pattern=r"^[A-G][#b]?(m|dor|mix|lyd|phr|loc)?$",
        description="K: of every tune, e.g. D, Em, Ador.",
    )
    rhythm: Rhythm | None = Field(None, description="R: of every tune, e.g. jig or reel.")
    candidates: int = Field(
        8,
        ge=1,
        le=16,
        description="Tunes sampled for each one written; the one whose bars best fit its "
        "meter is kept (1: the first, unranked).",
    )
    meter_guard: bool = Field(
        True,
        description="Keep every bar to the meter while sampling: a bar line only where the "
        "bar is full (the first bar may be a pickup), no note that would overflow it.",
    )
    audio: bool = Field(True, description="Render each tune to .wav (FluidSynth) too.")


def estimate_melody_train(params: MelodyTrainParams, facts: JobFacts) -> Estimate:
    """The corpus held as tokens (a tune ~120 tokens, 4-byte ids) beside the network; a sample
    tune's files at most 8 bytes a context token."""
    tokens = 200 * max(facts.dataset_count, 1)
    return gpt2_training(
        params, facts, data_elements=4 * tokens, sample_bytes=8 * params.sequence_length
    )


def estimate_melody_generate(params: MelodyGenerateParams, facts: JobFacts) -> Estimate:
    """The weights; per candidate sampled at once (at most 64) a key/value cache; each tune's
    files (the .wav dominates)."""
    config = facts.model_config or {}
    files = WAV_BYTES_PER_TUNE if params.audio else 0
    return gpt2_sampling(
        config,
        min(params.n * params.candidates, 64),
        default_length=256,
        vocabulary_size=len(config.get("vocabulary", [])) or 256,
        output_bytes=params.n * (files + 64 * 1024),
    )
