"""The table of model kinds. The API validates params with it; the worker dispatches on it.

A kind's parameter schemas live here (pure pydantic, cheap to import); its implementation
is named by import path and loaded only inside a worker process, so neither the API nor
a Celery parent ever imports TensorFlow.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, model_validator

from atelier.shared.dcgan_params import DcganGenerateParams as DcganGenerateParams
from atelier.shared.dcgan_params import DcganTrainParams as DcganTrainParams
from atelier.shared.dcgan_params import (
    check_dcgan_generate,
    estimate_dcgan_generate,
    estimate_dcgan_train,
)
from atelier.shared.estimates import (
    FLOAT_BYTES,
    Estimate,
    JobFacts,
    gpt2_size,
    gpt2_training_activations,
    inference_memory,
    kept_checkpoint_bytes,
    samples_written,
    training_memory,
)
from atelier.shared.kinds_base import StrictParams as StrictParams
from atelier.shared.kinds_base import TrainParams as TrainParams
from atelier.shared.kinds_base import model_id_field
from atelier.shared.melody_params import (
    MelodyGenerateParams,
    MelodyTrainParams,
    estimate_melody_generate,
    estimate_melody_train,
)


class TextgenTrainParams(TrainParams):
    """The defaults are the recipe measured by ``bench/text_quality.py`` on a real corpus:
    a 1,024-token byte-pair vocabulary (~2.6 bytes a token: more text per step and per
    context than bytes), 2 layers of width 128, a 64-token context, batch 32, a warm-up and
    cosine decay from 3e-3 over 1,800 steps (more small steps beat fewer large ones at the
    same cost: 1.86 bits per byte against 1.91 and 2.01 for batch 64 or a 128-token
    context), interpolated with a 4-gram over the same tokens."""

    dataset: str = Field("fables", description="A text dataset; see GET /v1/datasets.")
    steps: int = Field(1800, ge=1, le=1_000_000, description="Optimizer steps.")
    batch_size: int = Field(32, ge=1, le=512)
    sequence_length: int = Field(
        64, ge=16, le=2048, description="Context in tokens (generation slides past it)."
    )
    vocabulary_size: int = Field(
        1024,
        ge=256,
        le=16384,
        description=(
            "256: one token per byte; more: a byte-pair vocabulary of this size learned "
            "from the corpus (any UTF-8 text still round-trips)."
        ),
    )
    num_layers: int = Field(2, ge=1, le=24)
    num_heads: int = Field(4, ge=1, le=32)
    hidden_dim: int = Field(128, ge=8, le=2048, description="A multiple of num_heads.")
    learning_rate: float = Field(
        3e-3, gt=0, le=0.1, description="Peak AdamW rate (warm-up, then cosine decay to 1/10)."
    )
    dropout: float = Field(0.0, ge=0, lt=1)
    ngram_order: int = Field(
        4,
        ge=0,
        le=5,
        description=(
            "0: the network alone; n: the network interpolated with a Kneser-Ney n-gram of "
            "order n over the same tokens, counted from the corpus (its weight fitted on the "
            "held-out text)."
        ),
    )
    sample_every: int = Field(
        250, ge=1, le=1_000_000, description="Steps between validation and a text sample."
    )
    sample_prompt: str = Field("The ", max_length=64)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TextgenTrainParams:
        if self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim ({self.hidden_dim}) must be a multiple of num_heads ({self.num_heads})"
            )
        # An n-gram's code (order tokens in base vocabulary_size) must fit an int64.
        if self.vocabulary_size**self.ngram_order >= 2**62:
            raise ValueError(
                f"ngram_order {self.ngram_order} is too long for a vocabulary of "
                f"{self.vocabulary_size}; at most 4 above 4,096 tokens"
            )
        return self


NGRAM_BYTES_PER_TOKEN_AND_ORDER = 32
"""Peak memory of counting a token n-gram (workers/kinds/causal_lm/ngram.py), per training
token and order: measured 20 (order 4) and 24 (order 5) on Sherlock Holmes' 202,000
tokens of a 1,024-token vocabulary, with room."""


def ngram_elements(tokens: int, order: int) -> int:
    """An n-gram's memory in float-sized elements, as the estimates count activations."""
    return tokens * order * NGRAM_BYTES_PER_TOKEN_AND_ORDER // FLOAT_BYTES


def estimate_textgen_train(params: TextgenTrainParams, facts: JobFacts) -> Estimate:
    """GPT-2 blocks with AdamW at the batch and sequence size; the corpus held once; the
    n-gram counted from it (at most one token per byte)."""
    size = gpt2_size(
        params.sequence_length, params.num_layers, params.hidden_dim, params.vocabulary_size
    )
    activations = gpt2_training_activations(
        params.batch_size,
        params.sequence_length,
        params.num_layers,
        params.num_heads,
        params.hidden_dim,
        params.vocabulary_size,
    )
    samples = samples_written(params.steps, params.sample_every)
    checkpoint = size.checkpoint_bytes()
    kept = kept_checkpoint_bytes(
        checkpoint, params.steps, params.checkpoint_every, facts.checkpoints_kept
    )
    text_bytes = 4 * params.sequence_length  # a sample fits the context; UTF-8 at most 4x
    ngram = ngram_elements(facts.dataset_count, params.ngram_order)
    return Estimate(
        parameters=size.total,
        memory_bytes=training_memory(size, activations + facts.dataset_count + ngram),
        checkpoint_bytes=checkpoint,
        output_bytes=kept + samples * text_bytes + size.checkpoint_bytes(False),
        samples=samples,
    )


class TextgenGenerateParams(StrictParams):
    model_id: str = model_id_field("textgen")
    prompt: str = Field("", max_length=2000, description="Text to continue.")
    max_new_tokens: int = Field(
        160,
        ge=1,
        le=2048,
        description=(
            "Tokens to generate (bytes for a byte-level model), past the model's context if "
            "need be: the window slides."
        ),
    )
    temperature: float = Field(0.8, gt=0, le=5.0)
    top_k: int = Field(40, ge=0, le=256, description="0 turns top-k off.")
    top_p: float = Field(0.95, gt=0, le=1.0, description="1 turns nucleus sampling off.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Same seed, same text.")
    n: int = Field(1, ge=1, le=16, description="Independent samples.")
    stop: list[Annotated[str, Field(max_length=256)]] = Field(
        default_factory=list,
        max_length=8,
        description="Each sample ends before the first of these (at most 8, each up to 256 chars).",
    )


def estimate_textgen_generate(params: TextgenGenerateParams, facts: JobFacts) -> Estimate:
    """The weights; per sample a key/value cache and the full context's activations; the
    n-gram recounted from the model's training tokens, if it has one."""
    config = facts.model_config or {}
    length, layers = config.get("sequence_length", 192), config.get("num_layers", 2)
    hidden, vocabulary = config.get("hidden_dim", 128), config.get("vocabulary_size", 256)
    size = gpt2_size(length, layers, hidden, vocabulary)
    per_sample = 2 * layers * length * hidden + length * (4 * hidden + vocabulary)
    return Estimate(
        parameters=size.total,
        memory_bytes=inference_memory(size, params.n * per_sample + _ngram_of(config)),
        checkpoint_bytes=0,
        output_bytes=params.n * params.max_new_tokens * FLOAT_BYTES,
        samples=0,
    )


def _ngram_of(config: dict[str, Any]) -> int:
    tokens, order = config.get("ngram_tokens", 0), config.get("ngram_order", 0)
    valid = isinstance(tokens, int) and isinstance(order, int)
    return ngram_elements(tokens, order) if valid else 0


TEXTGEN_MODEL_FIELDS = ("sequence_length", "num_layers", "num_heads", "hidden_dim")


def check_textgen_generate(
    params: TextgenGenerateParams, config: dict[str, Any]
) -> list[tuple[str, str]]:
    """A textgen model generates any length from any prompt (the window slides), so what
    can fail is the model itself: a record that cannot rebuild its network or tokenizer."""
    missing = [name for name in TEXTGEN_MODEL_FIELDS if not isinstance(config.get(name), int)]
    if missing:
        message = (
            f"the model's record has no {', '.join(missing)}: it cannot be rebuilt by this "
            "version of textgen; train it again"
        )
        return [("model_id", message)]
    vocabulary = config.get("vocabulary_size", 256)
    if not isinstance(vocabulary, int) or (vocabulary > 256 and not config.get("tokenizer")):
        return [("model_id", f"the model's {vocabulary}-token vocabulary has no tokenizer")]
    return []


Estimator = Callable[[Any, JobFacts], Estimate]
"""``(validated params, facts) -> Estimate``: a job's cost before it runs (``api.admission``)."""


@dataclass(frozen=True)
class KindSpec:
    name: str
    description: str
    train_params: type[StrictParams]
    generate_params: type[StrictParams]
    implementation: str
    """``module:Class`` of the worker-side plug-in."""
    modality: str
    estimate_train: Estimator | None = None
    """Peak memory and output volume of a training job; None: not estimated (admitted)."""
    estimate_generate: Estimator | None = None
    check_generate: Callable[[Any, dict[str, Any]], list[tuple[str, str]]] | None = None
    """Why validated generation params cannot work with a model of this config: (param,
    message) pairs for a 422 at submit, never a failure at run time ("model_id" when the
    record itself cannot serve); empty when they can."""


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec(
            name="dcgan",
            description="Deep convolutional GAN for small images (28-64 px, grey or RGB).",
            train_params=DcganTrainParams,
            generate_params=DcganGenerateParams,
            implementation="atelier.workers.kinds.dcgan:DcganKind",
            modality="image",
            estimate_train=estimate_dcgan_train,
            estimate_generate=estimate_dcgan_generate,
            check_generate=check_dcgan_generate,
        ),
        KindSpec(
            name="textgen",
            description="Decoder-only Transformer (GPT-2 style) for text, over bytes or subwords.",
            train_params=TextgenTrainParams,
            generate_params=TextgenGenerateParams,
            implementation="atelier.workers.kinds.textgen:TextgenKind",
            modality="text",
            estimate_train=estimate_textgen_train,
            estimate_generate=estimate_textgen_generate,
            check_generate=check_textgen_generate,
        ),
        KindSpec(
            name="melody",
            description="Decoder-only Transformer over ABC tokens for folk tunes (ABC, MIDI, WAV).",
            train_params=MelodyTrainParams,
            generate_params=MelodyGenerateParams,
            implementation="atelier.workers.kinds.melody:MelodyKind",
            modality="music",
            estimate_train=estimate_melody_train,
            estimate_generate=estimate_melody_generate,
        ),
    )
}


def load_kind_plugins(names: str) -> None:
    """Add the kinds named by ``module:ATTRIBUTE`` (comma-separated ``KindSpec`` objects,
    the ``kind_plugins`` setting) to the table. The API and every worker call this at start,
    so both validate and dispatch the same kinds."""
    for name in filter(None, (n.strip() for n in names.split(","))):
        module_name, _, attribute = name.partition(":")
        spec = getattr(importlib.import_module(module_name), attribute or "KIND")
        if not isinstance(spec, KindSpec):
            raise TypeError(f"kind plugin {name!r} is a {type(spec).__name__}, not a KindSpec")
        KINDS[spec.name] = spec
