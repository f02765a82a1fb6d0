"""What the token-model kinds (``textgen``, ``melody``) share on the TF-free side, written
once beneath them as their worker halves share ``workers/kinds/causal_lm/``: the network's
params and the check that its shape can be built, and the estimates of training and
sampling one."""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, model_validator

from ..estimates import (
    BYTE_VOCABULARY,
    Estimate,
    JobFacts,
    gpt2_size,
    gpt2_training_activations,
    inference_memory,
    kept_checkpoint_bytes,
    samples_written,
    training_memory,
)
from .base import Continuation, TrainParams


class Gpt2TrainParams(TrainParams):
    """A GPT-2-style network (``workers/kinds/causal_lm/network.py``) and its batch; a kind
    sets its own context (``sequence_length``) and peak ``learning_rate``."""

    batch_size: int = Field(32, ge=1, le=512, description="Sequences per step.")
    sequence_length: int = Field(ge=16, le=2048, description="Context in tokens.")
    num_layers: int = Field(2, ge=1, le=24, description="Transformer layers.")
    num_heads: int = Field(4, ge=1, le=32, description="Attention heads per layer.")
    hidden_dim: int = Field(128, ge=8, le=2048, description="A multiple of num_heads.")
    learning_rate: float = Field(gt=0, le=0.1, description="Peak AdamW rate.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout rate while training.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> Self:
        """Each attention head gets an equal slice of the width."""
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim ({self.hidden_dim}) must be a multiple of num_heads "
                f"({self.num_heads})"
            )
        return self


def gpt2_training(
    recipe: Gpt2TrainParams,
    facts: JobFacts,
    *,
    data_elements: int,
    sample_bytes: int,
    vocabulary_size: int = BYTE_VOCABULARY,
) -> Estimate:
    """GPT-2 blocks with AdamW at the batch and sequence size, ``data_elements`` (float-sized:
    the corpus, an n-gram) held beside them, and a sample of ``sample_bytes`` written every
    ``sample_every`` steps."""
    size = gpt2_size(recipe.sequence_length, recipe.num_layers, recipe.hidden_dim, vocabulary_size)
    activations = gpt2_training_activations(
        recipe.batch_size,
        recipe.sequence_length,
        recipe.num_layers,
        recipe.num_heads,
        recipe.hidden_dim,
        vocabulary_size,
    )
    samples = samples_written(recipe.steps, recipe.sample_every)
    checkpoint = size.checkpoint_bytes()
    kept = kept_checkpoint_bytes(
        checkpoint, recipe.steps, recipe.checkpoint_every, facts.checkpoints_kept
    )
    return Estimate(
        parameters=size.total,
        memory_bytes=training_memory(size, activations + data_elements),
        checkpoint_bytes=checkpoint,
        output_bytes=kept + samples * sample_bytes + size.checkpoint_bytes(False),
        samples=samples,
    )


def gpt2_sampling(
    config: dict[str, Any],
    rows: int,
    *,
    default_length: int,
    vocabulary_size: int,
    output_bytes: int,
    extra_elements: int = 0,
) -> Estimate:
    """The weights of the model a record's ``config`` describes; per row sampled at once a
    key/value cache and the full context's activations; ``extra_elements`` beside them."""
    length, layers = config.get("sequence_length", default_length), config.get("num_layers", 2)
    hidden = config.get("hidden_dim", 128)
    size = gpt2_size(length, layers, hidden, vocabulary_size)
    per_row = 2 * layers * length * hidden + length * (4 * hidden + vocabulary_size)
    return Estimate(
        parameters=size.total,
        memory_bytes=inference_memory(size, rows * per_row + extra_elements),
        checkpoint_bytes=0,
        output_bytes=output_bytes,
        samples=0,
    )


GPT2_SHAPE = ("sequence_length", "num_layers", "num_heads", "hidden_dim")
"""The network's shape params, each kept under its own name in a model's config."""


def gpt2_continuation(*also: str) -> Continuation:
    """A token model's network shape (and ``also``: its vocabulary's), as its record's
    params say, else its config (records from before models kept their params)."""
    names = (*GPT2_SHAPE, *also)

    def shape(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        return {n: params.get(n, config.get(n)) for n in names if n in params or n in config}

    return Continuation(shape=shape)
