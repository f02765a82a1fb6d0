"""A token n-gram with interpolated Kneser-Ney smoothing, counted from a model's training
tokens, and its linear interpolation with the network (``mixed``). Numpy only.

Why a count model beside the network: on a small corpus and a few CPU-minutes, a small
Transformer generalises (it spells, it knows grammar) but has not memorised the corpus's
names and stock phrases, which counting gets for free. On Sherlock Holmes (bench/
text_quality.py, 95/5 split, the 1,024-token vocabulary) a 4-gram over tokens alone costs
1.90 bits per byte and the byte Witten-Bell n-gram 2.04; interpolated with the network, the
mixture beats both (the README has the measured figures). The network and the n-gram
see the same tokens, so mixing their next-token distributions is exact: the mixture is a
distribution over the same vocabulary, scored and sampled like the network's.

Counts are kept as sorted int64 codes (a context of k tokens and its next token, in base
vocabulary_size), not dictionaries: 16 bytes per distinct n-gram, counted with numpy in
well under a second for 200,000 tokens, and looked up by binary search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_CODE_BITS = 62  # an n-gram's code must fit an int64


@dataclass(frozen=True)
class _Level:
    """Counts of n-grams whose context is ``k`` tokens long."""

    codes: np.ndarray  # sorted codes of (context, next token)
    counts: np.ndarray  # raw counts (highest order) or continuation counts (lower orders)
    contexts: np.ndarray  # sorted distinct context codes
    first: np.ndarray  # index in ``codes`` of each context's first n-gram
    distinct: np.ndarray  # distinct next tokens of each context
    totals: np.ndarray  # sum of ``counts`` of each context
    discount: float


def _window_codes(tokens: np.ndarray, length: int, base: int) -> np.ndarray:
    """The code of every ``length``-token window of ``tokens``."""
    codes = np.zeros(len(tokens) - length + 1, dtype=np.int64)
    for offset in range(length):
        codes = codes * base + tokens[offset : len(tokens) - length + 1 + offset]
    return codes


def _level(codes: np.ndarray, counts: np.ndarray, base: int) -> _Level:
    contexts, first, distinct = np.unique(codes // base, return_index=True, return_counts=True)
    totals = np.add.reduceat(counts, first) if len(codes) else np.zeros(0, np.int64)
    # Kneser and Ney's estimate of the best discount from the counts of counts (Ney et al.
    # 1994): D = n1 / (n1 + 2 n2), in (0, 1).
    once, twice = int(np.sum(counts == 1)), int(np.sum(counts == 2))
    discount = once / (once + 2 * twice) if once and twice else 0.75
    return _Level(codes, counts, contexts, first, distinct, totals, discount)


class TokenNgram:
    """An n-gram of ``order`` (contexts of up to ``order`` - 1 tokens) over token ids in
    [0, ``vocabulary_size``)."""

    def __init__(self, tokens: np.ndarray, vocabulary_size: int, order: int) -> None:
        if order < 1 or vocabulary_size**order >= 2**MAX_CODE_BITS:
            raise ValueError(f"order {order} over {vocabulary_size} tokens does not fit int64")
        self.order, self.vocabulary_size = order, vocabulary_size
        ids = np.asarray(tokens, dtype=np.int64)
        base = vocabulary_size
        # The highest order keeps raw counts; each lower order counts how many distinct
        # tokens precede each n-gram (Kneser-Ney's continuation counts), from the distinct
        # n-grams one token longer.
        top, top_counts = np.unique(_window_codes(ids, order, base), return_counts=True)
        levels = [_level(top, top_counts, base)]
        longer = top
        for length in range(order - 1, 0, -1):
            shorter, continuations = np.unique(longer % base**length, return_counts=True)
            levels.append(_level(shorter, continuations, base))
            longer = np.unique(_window_codes(ids, length, base))
        self.levels = levels[::-1]  # levels[k]: contexts of k tokens

    def probabilities(self, history: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
        """P(next | history) for each row of ``history`` (rows, ≥ order - 1 token ids; -1
        where a row has no token yet): the whole distribution (rows, vocabulary_size), or
        only the probability of ``targets`` (rows,) when given."""
        rows = len(history)
        history = np.asarray(history, dtype=np.int64)[:, history.shape[1] - (self.order - 1) :]
        shape = (rows, self.vocabulary_size) if targets is None else (rows,)
        p: np.ndarray = np.full(shape, 1.0 / self.vocabulary_size)
        for k, level in enumerate(self.levels):
            context = history[:, history.shape[1] - k :] if k else history[:, :0]
            known = np.all(context >= 0, axis=1)
            code = np.zeros(rows, dtype=np.int64)
            for column in range(k):
                code = code * self.vocabulary_size + np.maximum(context[:, column], 0)
            at = np.searchsorted(level.contexts, code)
            found = known & (at < len(level.contexts))
            found[found] &= level.contexts[at[found]] == code[found]
            p = self._interpolate(level, p, code, at, found, targets)
        return p

    def _interpolate(
        self,
        level: _Level,
        lower: np.ndarray,
        code: np.ndarray,
        at: np.ndarray,
        found: np.ndarray,
        targets: np.ndarray | None,
    ) -> np.ndarray:
        """P_k = max(c - D, 0) / n + D·t / n · P_{k-1} where the context was seen, else
        P_{k-1} (a longer context that never occurred has not either)."""
        p = lower.copy()
        rows = np.flatnonzero(found)
        if not len(rows):
            return p
        where = at[rows]
        totals = level.totals[where].astype(np.float64)
        backoff = level.discount * level.distinct[where] / totals
        if targets is not None:
            wanted = code[rows] * self.vocabulary_size + targets[rows]
            index = np.minimum(np.searchsorted(level.codes, wanted), len(level.codes) - 1)
            counts = np.where(level.codes[index] == wanted, level.counts[index], 0)
            p[rows] = np.maximum(counts - level.discount, 0) / totals + backoff * lower[rows]
            return p
        p[rows] = backoff[:, None] * lower[rows]
        for row, context_at, total in zip(rows, where, totals, strict=True):
            start = level.first[context_at]
            span = slice(start, start + level.distinct[context_at])
            followers = level.codes[span] % self.vocabulary_size
            p[row, followers] += np.maximum(level.counts[span] - level.discount, 0) / total
        return p

    def target_probabilities(self, tokens: np.ndarray, start: int) -> np.ndarray:
        """P(tokens[i] | the tokens before it) for every i ≥ ``start``."""
        ids = np.asarray(tokens, dtype=np.int64)
        width = self.order - 1
        padded = np.concatenate([np.full(width, -1, np.int64), ids])
        positions = np.arange(start, len(ids))
        history = (
            np.stack([padded[positions + j] for j in range(width)], axis=1)
            if width
            else np.zeros((len(positions), 0), np.int64)
        )
        return self.probabilities(history, ids[positions])


def mixed(network: np.ndarray, ngram: np.ndarray, weight: float) -> np.ndarray:
    """w·P_net + (1 - w)·P_ngram: the interpolation, of the probabilities of targets or of
    whole distributions."""
    mixture: np.ndarray = weight * network + (1 - weight) * ngram
    return mixture


def fit_mixture_weight(network: np.ndarray, ngram: np.ndarray, rounds: int = 50) -> float:
    """The weight w of the network in ``mixed`` that maximises the likelihood of held-out
    targets (EM: both components fixed, only w moves), from each model's probability of
    the same targets."""
    weight = 0.5
    for _ in range(rounds):
        mixture = mixed(network, ngram, weight)
        weight = float(np.mean(weight * network / np.maximum(mixture, 1e-300)))
    return min(max(weight, 0.01), 0.99)


def mix_log_probabilities(
    network_log_p: np.ndarray, ngram_p: np.ndarray, weight: float
) -> np.ndarray:
    """log(w·P_net + (1 - w)·P_ngram), from the network's log-probabilities."""
    log_p: np.ndarray = np.log(mixed(np.exp(network_log_p), ngram_p, weight) + 1e-30)
    return log_p


NGRAM_ORDER_KEY, NGRAM_WEIGHT_KEY, NGRAM_TOKENS_KEY = "ngram_order", "ngram_weight", "ngram_tokens"
"""The model record's config keys of a model with an n-gram (absent: the network alone);
``ngram_tokens`` (how many it counts) is what a generation job's memory estimate reads."""
NGRAM_KEYS = (NGRAM_ORDER_KEY, NGRAM_WEIGHT_KEY, NGRAM_TOKENS_KEY)


class TokenArray:
    """The training tokens as a checkpoint slot: ``np.asarray`` saves it, ``assign`` loads
    it. The n-gram is recounted from them when a model loads (0.1 s for 200,000 tokens),
    which keeps the stored model at 2 bytes a token instead of 16 per distinct n-gram."""

    def __init__(self, tokens: np.ndarray | None = None) -> None:
        self.value = np.zeros(0, np.uint16) if tokens is None else tokens.astype(np.uint16)

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.value

    def assign(self, value: np.ndarray) -> None:
        self.value = np.asarray(value, dtype=np.uint16)


@dataclass
class NgramMixture:
    """The n-gram and the network's weight in their interpolation."""

    ngram: TokenNgram
    weight: float

    def mixed_logits(self, logits: np.ndarray, prompt: np.ndarray, index: np.integer) -> np.ndarray:
        """log(w·softmax(logits) + (1 - w)·P_ngram(· | the tokens before ``index``)), one
        row per row of ``prompt``: what a sampler reads as the next token's logits."""
        width = self.ngram.order - 1
        end = int(index)
        history = np.full((len(prompt), width), -1, dtype=np.int64)
        if width:
            seen = np.asarray(prompt[:, max(0, end - width) : end], dtype=np.int64)
            history[:, width - seen.shape[1] :] = seen
        shifted = logits - logits.max(axis=1, keepdims=True)
        network = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_p = mix_log_probabilities(network, self.ngram.probabilities(history), self.weight)
        return log_p.astype(np.float32)
