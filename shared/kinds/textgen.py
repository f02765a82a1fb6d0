"""The ``textgen`` kind's TF-free half: its parameters, estimates, submit-time checks and
its row in the table (pure pydantic: the API imports it; the worker half is
``workers/kinds/textgen/``)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from ..estimates import BYTE_VOCABULARY, FLOAT_BYTES, Estimate, JobFacts
from .base import KindSpec, StrictParams, model_id_field
from .causal_lm import Gpt2TrainParams, gpt2_continuation, gpt2_sampling, gpt2_training


class TextgenTrainParams(Gpt2TrainParams):
    """The defaults are the recipe measured by ``bench/text_quality.py`` on a real corpus:
    a 1,024-token byte-pair vocabulary (~2.6 bytes a token: more text per step and per
    context than bytes), 2 layers of width 128, a 64-token context, batch 32, a warm-up and
    cosine decay from 3e-3 over 1,800 steps (more small steps beat fewer large ones at the
    same cost: 1.86 bits per byte against 1.91 and 2.01 for batch 64 or a 128-token
    context), interpolated with a 4-gram over the same tokens."""

    dataset: str = Field("fables", description="A text dataset; see GET /v1/datasets.")
    steps: int = Field(1800, ge=1, le=1_000_000, description="Optimizer steps.")
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
    learning_rate: float = Field(
        3e-3, gt=0, le=0.1, description="Peak AdamW rate (warm-up, then cosine decay to 1/10)."
    )
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
    sample_prompt: str = Field("The ", max_length=64, description="The text each sample continues.")

    @model_validator(mode="after")
    def _ngram_fits(self) -> TextgenTrainParams:
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
    """The corpus held once beside the network, and the n-gram counted from it (at most one
    token per byte); a sample fits the context, UTF-8 at most 4 bytes a character."""
    ngram = ngram_elements(facts.dataset_count, params.ngram_order)
    return gpt2_training(
        params,
        facts,
        data_elements=facts.dataset_count + ngram,
        sample_bytes=4 * params.sequence_length,
        vocabulary_size=params.vocabulary_size,
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
    temperature: float = Field(
        0.8, gt=0, le=5.0, description="Below 1: safer choices; above 1: more varied."
    )
    top_k: int = Field(40, ge=0, le=256, description="0 turns top-k off.")
    top_p: float = Field(0.95, gt=0, le=1.0, description="1 turns nucleus sampling off.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Same seed, same text.")
    n: int = Field(1, ge=1, le=16, description="Independent samples.")
    stop: list[Annotated[str, Field(max_length=256)]] = Field(
        [],
        max_length=8,
        description="Each sample ends before the first of these (at most 8, each up to 256 chars).",
    )


def estimate_textgen_generate(params: TextgenGenerateParams, facts: JobFacts) -> Estimate:
    """The weights; per sample a key/value cache and the full context's activations; the
    n-gram recounted from the model's training tokens, if it has one."""
    config = facts.model_config or {}
    return gpt2_sampling(
        config,
        params.n,
        default_length=192,
        vocabulary_size=config.get("vocabulary_size", BYTE_VOCABULARY),
        output_bytes=params.n * params.max_new_tokens * FLOAT_BYTES,
        extra_elements=_ngram_of(config),
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


KIND = KindSpec(
    name="textgen",
    description="Decoder-only Transformer (GPT-2 style) for text, over bytes or subwords.",
    train_params=TextgenTrainParams,
    generate_params=TextgenGenerateParams,
    implementation="atelier.workers.kinds.textgen.kind:TextgenKind",
    modality="text",
    estimate_train=estimate_textgen_train,
    estimate_generate=estimate_textgen_generate,
    check_generate=check_textgen_generate,
    # The tokenizer is the model's: the vocabulary it learned encodes any text.
    continuation=gpt2_continuation("vocabulary_size"),
    exportable=True,
)
