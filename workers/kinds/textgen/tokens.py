"""How ``textgen`` turns text into tokens: raw bytes, or a byte-pair vocabulary learned
from the training corpus.

The byte-pair vocabulary is byte-level (GPT-2's scheme, trained with the ``tokenizers``
library keras-hub already depends on): its alphabet is the 256 byte values, so any UTF-8
text encodes and decodes back unchanged, and merges only make common byte runs one token.
A subword model sees ~3 bytes of text per token: more text per step and per context,
which is what lets a small model beat counting on a real corpus in minutes.

A model record carries its tokenizer (``TOKENIZER_KEY`` in its config, the vocabulary as
JSON); a record without one is a byte-level model, as every model was before.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

TOKENIZER_KEY = "tokenizer"
BYTE_VOCABULARY = 256


class TextTokens(Protocol):
    @property
    def vocabulary_size(self) -> int: ...

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, tokens: np.ndarray) -> str: ...

    def byte_lengths(self) -> np.ndarray:
        """Bytes of text each token id stands for: what turns a loss per token into bits
        per byte."""
        ...

    def to_config(self) -> dict[str, Any]:
        """What a model record keeps to rebuild this tokenizer (empty for bytes)."""
        ...


class ByteTokens:
    """One token per UTF-8 byte."""

    vocabulary_size = BYTE_VOCABULARY

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int32)

    def decode(self, tokens: np.ndarray) -> str:
        return bytes(np.asarray(tokens, dtype=np.uint8)).decode("utf-8", errors="replace")

    def byte_lengths(self) -> np.ndarray:
        return np.ones(BYTE_VOCABULARY, dtype=np.int64)

    def to_config(self) -> dict[str, Any]:
        return {}


class BytePairTokens:
    """A byte-level BPE vocabulary (a ``tokenizers.Tokenizer``)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def train(cls, text: str, vocabulary_size: int) -> BytePairTokens:
        """Learn merges from ``text`` until the vocabulary has ``vocabulary_size`` tokens
        (fewer if the text runs out of pairs); well under a second for 500 KB."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        # Pre-splitting on words and spaces keeps merges inside words, as GPT-2 does.
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocabulary_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # byte fallback: all 256
            show_progress=False,
        )
        tokenizer.train_from_iterator([text], trainer)
        return cls(tokenizer)

    @classmethod
    def from_json(cls, text: str) -> BytePairTokens:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(text))

    @property
    def vocabulary_size(self) -> int:
        size: int = self._tokenizer.get_vocab_size()
        return size

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tokenizer.encode(text).ids, dtype=np.int32)

    def decode(self, tokens: np.ndarray) -> str:
        # Byte-level tokens can end mid-character; the decoder replaces what is cut off.
        text: str = self._tokenizer.decode([int(t) for t in np.asarray(tokens).ravel()])
        return text

    def byte_lengths(self) -> np.ndarray:
        # A byte-level vocabulary writes each byte as one character of its alphabet.
        lengths = np.zeros(self.vocabulary_size, dtype=np.int64)
        for token, index in self._tokenizer.get_vocab().items():
            lengths[index] = len(token)
        return lengths

    def to_config(self) -> dict[str, Any]:
        text: str = self._tokenizer.to_str()
        return {TOKENIZER_KEY: text}


def tokens_from_config(config: dict[str, Any]) -> TextTokens:
    """The tokenizer a model was trained with: bytes when its record names none."""
    stored = config.get(TOKENIZER_KEY)
    if not stored:
        return ByteTokens()
    return BytePairTokens.from_json(stored)


def new_tokens(text: str, vocabulary_size: int) -> TextTokens:
    """Bytes for ``vocabulary_size`` 256 (or less), else a vocabulary learned from ``text``."""
    if vocabulary_size <= BYTE_VOCABULARY:
        return ByteTokens()
    return BytePairTokens.train(text, vocabulary_size)
