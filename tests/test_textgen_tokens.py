"""textgen's tokenizers (issue 16, point 1): a byte-pair vocabulary learned from a corpus
still round-trips any UTF-8 text (its alphabet is the 256 bytes), counts the bytes each
token stands for (bits per byte), and is rebuilt from a model record; a record without one
is byte-level, as every model was before.

Fast tier: the ``tokenizers`` library only, no TensorFlow.
"""

from __future__ import annotations

import numpy as np
import pytest

from atelier.workers.corpus import fables
from atelier.workers.kinds.textgen.tokens import (
    BytePairTokens,
    ByteTokens,
    new_tokens,
    tokens_from_config,
)

UNSEEN = [
    "The fox and the crow.",
    "Ünïcödé, 中文, emoji 🦊🐦 and a tab\tnewline\n",
    "zzqx@#$% {}[] \\ ~ `",
    "",
]


@pytest.fixture(scope="module")
def bpe() -> BytePairTokens:
    tokens = new_tokens(fables()[:50_000], 400)
    assert isinstance(tokens, BytePairTokens)
    return tokens


def test_any_utf8_round_trips_through_a_learned_vocabulary(bpe: BytePairTokens) -> None:
    for text in UNSEEN:
        assert bpe.decode(bpe.encode(text)) == text


def test_common_words_become_single_tokens(bpe: BytePairTokens) -> None:
    text = fables()[50_000:60_000]
    assert len(bpe.encode(text)) < len(text.encode()) / 2
    assert bpe.vocabulary_size == 400


def test_byte_lengths_add_up_to_the_text(bpe: BytePairTokens) -> None:
    lengths = bpe.byte_lengths()
    for text in UNSEEN:
        assert int(lengths[bpe.encode(text)].sum()) == len(text.encode())


def test_a_record_rebuilds_its_tokenizer_and_old_records_are_bytes(bpe: BytePairTokens) -> None:
    rebuilt = tokens_from_config({"sequence_length": 64, **bpe.to_config()})
    text = fables()[:2000]
    assert np.array_equal(rebuilt.encode(text), bpe.encode(text))
    old = tokens_from_config({"sequence_length": 192, "num_layers": 2})
    assert isinstance(old, ByteTokens) and old.vocabulary_size == 256
    assert list(old.encode("é")) == [0xC3, 0xA9]
    assert isinstance(new_tokens(text, 256), ByteTokens)
