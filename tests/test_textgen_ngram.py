"""The token n-gram textgen interpolates with its network: proper distributions, the
Kneser-Ney formula on a corpus small enough to count by hand, the mixture weight EM
finds, and the stored training tokens round-tripping through a checkpoint."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from pydantic import ValidationError

from atelier.shared.kinds.textgen import TextgenTrainParams
from atelier.workers.checkpoints import encode_checkpoint, restore_checkpoint
from atelier.workers.kinds.causal_lm.ngram import (
    NgramMixture,
    TokenArray,
    TokenNgram,
    fit_mixture_weight,
)

CORPUS = np.array([0, 1, 2, 0, 1, 3, 0, 1, 2, 4, 2, 0, 1, 2], dtype=np.int64)


def brute_force_kneser_ney(corpus: list[int], order: int, vocabulary: int):  # type: ignore[no-untyped-def]
    """The textbook interpolated Kneser-Ney, with dictionaries and the same discounts."""
    counts: list[Counter[tuple[int, ...]]] = []
    for length in range(1, order + 1):
        counts.append(
            Counter(tuple(corpus[i : i + length]) for i in range(len(corpus) - length + 1))
        )
    # Continuation counts below the top order: distinct left neighbours of each n-gram.
    levels: list[Counter[tuple[int, ...]]] = []
    for length in range(1, order):
        levels.append(Counter(gram[1:] for gram in counts[length]))
    levels.append(counts[order - 1])

    def discount(level: Counter[tuple[int, ...]]) -> float:
        once = sum(1 for c in level.values() if c == 1)
        twice = sum(1 for c in level.values() if c == 2)
        return once / (once + 2 * twice) if once and twice else 0.75

    def probability(history: tuple[int, ...], token: int) -> float:
        p = 1.0 / vocabulary
        for k in range(0, min(order - 1, len(history)) + 1):
            context = history[len(history) - k :] if k else ()
            level = levels[k]
            followers = {g[-1]: c for g, c in level.items() if g[:-1] == context}
            if not followers:
                break
            total, d = sum(followers.values()), discount(level)
            p = max(followers.get(token, 0) - d, 0) / total + d * len(followers) / total * p
        return p

    return probability


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_probabilities_match_textbook_kneser_ney_and_sum_to_one(order: int) -> None:
    vocabulary = 6
    model = TokenNgram(CORPUS, vocabulary, order)
    reference = brute_force_kneser_ney([int(t) for t in CORPUS], order, vocabulary)
    width = order - 1
    # Histories seen and unseen, and short ones (-1: no token yet).
    histories = [(0, 1, 2), (4, 2, 0), (5, 5, 5), (-1, -1, 0), (-1, -1, -1), (3, 0, 1)]
    rows = np.array([h[3 - width :] if width else () for h in histories], dtype=np.int64)
    rows = rows.reshape(len(histories), width)
    dense = model.probabilities(rows)
    assert np.allclose(dense.sum(axis=1), 1.0)
    for row, history in zip(dense, rows, strict=True):
        known = tuple(int(t) for t in history if t >= 0)
        expected = [reference(known, token) for token in range(vocabulary)]
        assert np.allclose(row, expected), (history, row, expected)
    for token in range(vocabulary):
        targets = np.full(len(rows), token)
        assert np.allclose(model.probabilities(rows, targets), dense[:, token])


def test_target_probabilities_read_only_the_tokens_before_each_target() -> None:
    model = TokenNgram(CORPUS, 6, 3)
    p = model.target_probabilities(CORPUS, 1)
    history = np.array([[-1, 0]] + [[CORPUS[i - 2], CORPUS[i - 1]] for i in range(2, len(CORPUS))])
    assert np.allclose(p, model.probabilities(history, CORPUS[1:]))


def test_a_memorised_phrase_is_near_certain_and_nothing_is_impossible() -> None:
    phrase = np.tile(np.arange(10), 50)
    model = TokenNgram(phrase, 32, 4)
    dense = model.probabilities(np.array([[3, 4, 5]]))[0]
    assert dense[6] > 0.9
    assert dense.min() > 0  # an unseen token keeps the uniform floor's share


def test_an_n_gram_that_does_not_fit_int64_is_refused_at_submit() -> None:
    with pytest.raises(ValidationError, match="ngram_order 5 is too long"):
        TextgenTrainParams.model_validate({"vocabulary_size": 16384, "ngram_order": 5})
    assert (
        TextgenTrainParams.model_validate({"vocabulary_size": 16384, "ngram_order": 4}).ngram_order
        == 4
    )
    with pytest.raises(ValueError, match="does not fit int64"):
        TokenNgram(CORPUS, 16384, 5)


def test_the_fitted_weight_is_the_mixture_that_made_the_data() -> None:
    rng = np.random.default_rng(0)
    first, second = rng.dirichlet(np.ones(50), 4000), rng.dirichlet(np.ones(50), 4000)
    from_first = rng.random(4000) < 0.3
    targets = np.array(
        [
            rng.choice(50, p=(a if pick else b))
            for a, b, pick in zip(first, second, from_first, strict=True)
        ]
    )
    rows = np.arange(4000)
    weight = fit_mixture_weight(first[rows, targets], second[rows, targets])
    assert abs(weight - 0.3) < 0.05, weight


def test_the_mixture_is_a_distribution_and_weight_one_is_the_network() -> None:
    model = TokenNgram(CORPUS, 6, 3)
    logits = np.random.default_rng(1).normal(size=(2, 6)).astype(np.float32)
    prompt = np.array([[0, 1, 2, 9], [4, 2, 0, 9]])  # the last column is not read yet
    mixed = NgramMixture(model, 0.4).mixed_logits(logits, prompt, np.int32(3))
    assert np.allclose(np.exp(mixed).sum(axis=1), 1.0, atol=1e-5)
    network = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert np.allclose(
        NgramMixture(model, 1.0).mixed_logits(logits, prompt, np.int32(3)), network, atol=1e-5
    )
    ngram_only = np.exp(NgramMixture(model, 0.0).mixed_logits(logits, prompt, np.int32(3)))
    assert np.allclose(ngram_only, model.probabilities(np.array([[1, 2], [2, 0]])), atol=1e-6)
    # At the start of a prompt the missing history is unknown (-1), not token 0.
    start = np.exp(NgramMixture(model, 0.0).mixed_logits(logits, prompt, np.int32(1)))
    assert np.allclose(start, model.probabilities(np.array([[-1, 0], [-1, 4]])), atol=1e-6)


def test_training_tokens_round_trip_through_a_checkpoint() -> None:
    tokens = np.array([5, 16383, 0, 7], dtype=np.int32)
    data = encode_checkpoint({"ngram": [TokenArray(tokens)]}, 3)
    loaded = TokenArray()
    assert restore_checkpoint({"ngram": [loaded]}, data) == 3
    assert loaded.value.tolist() == tokens.tolist()
