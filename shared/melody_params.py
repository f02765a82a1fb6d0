"""The ``melody`` kind's parameters and estimates (pure pydantic: the API imports them,
``shared.kinds`` puts them in the table)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from atelier.shared.abc import RHYTHMS
from atelier.shared.estimates import (
    Estimate,
    JobFacts,
    gpt2_size,
    gpt2_training_activations,
    inference_memory,
    kept_checkpoint_bytes,
    samples_written,
    training_memory,
)
from atelier.shared.kinds_base import StrictParams, TrainParams, model_id_field

WAV_BYTES_PER_TUNE = 44_100 * 2 * 2 * 60
"""A minute of 16-bit stereo at 44.1 kHz: longer than a generated tune plays."""


class MelodyTrainParams(TrainParams):
    dataset: str = Field("folk", description="An ABC dataset; see GET /v1/datasets.")
    steps: int = Field(1200, ge=1, le=1_000_000, description="Optimizer steps.")
    batch_size: int = Field(32, ge=1, le=512)
    sequence_length: int = Field(
        256, ge=32, le=2048, description="Context in ABC tokens; a generated tune fits in it."
    )
    num_layers: int = Field(2, ge=1, le=24)
    num_heads: int = Field(4, ge=1, le=32)
    hidden_dim: int = Field(128, ge=8, le=2048, description="A multiple of num_heads.")
    learning_rate: float = Field(
        2e-3, gt=0, le=0.1, description="Peak rate: 5% warm-up, then cosine decay to a tenth."
    )
    dropout: float = Field(0.0, ge=0, lt=1)
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

    @model_validator(mode="after")
    def _heads_divide_width(self) -> MelodyTrainParams:
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim ({self.hidden_dim}) must be a multiple of num_heads ({self.num_heads})"
            )
        return self


Rhythm = Literal[RHYTHMS]  # type: ignore[valid-type]


class MelodyGenerateParams(StrictParams):
    model_id: str = model_id_field("melody")
    n: int = Field(4, ge=1, le=32, description="Tunes to write.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Same seed, same tunes.")
    temperature: float = Field(0.8, gt=0, le=5.0)
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
    """GPT-2 blocks with AdamW over a few hundred tokens; the corpus held as tokens."""
    size = gpt2_size(params.sequence_length, params.num_layers, params.hidden_dim)
    activations = gpt2_training_activations(
        params.batch_size,
        params.sequence_length,
        params.num_layers,
        params.num_heads,
        params.hidden_dim,
    )
    samples = samples_written(params.steps, params.sample_every)
    checkpoint = size.checkpoint_bytes()
    kept = kept_checkpoint_bytes(
        checkpoint, params.steps, params.checkpoint_every, facts.checkpoints_kept
    )
    tokens = 200 * max(facts.dataset_count, 1)  # tunes: ~120 tokens each, 4-byte ids
    return Estimate(
        parameters=size.total,
        memory_bytes=training_memory(size, activations + 4 * tokens),
        checkpoint_bytes=checkpoint,
        output_bytes=kept + samples * 8 * params.sequence_length + size.checkpoint_bytes(False),
        samples=samples,
    )


def estimate_melody_generate(params: MelodyGenerateParams, facts: JobFacts) -> Estimate:
    """The weights; per tune a key/value cache, and its files (the .wav dominates)."""
    config = facts.model_config or {}
    length, layers = config.get("sequence_length", 256), config.get("num_layers", 2)
    hidden = config.get("hidden_dim", 128)
    vocabulary = len(config.get("vocabulary", [])) or 256
    size = gpt2_size(length, layers, hidden)
    per_tune = 2 * layers * length * hidden + length * (4 * hidden + vocabulary)
    files = WAV_BYTES_PER_TUNE if params.audio else 0
    return Estimate(
        parameters=size.total,
        memory_bytes=inference_memory(size, min(params.n * params.candidates, 64) * per_tune),
        checkpoint_bytes=0,
        output_bytes=params.n * (files + 64 * 1024),
        samples=0,
    )
