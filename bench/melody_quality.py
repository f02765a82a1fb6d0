"""How good the ``melody`` kind's tunes are, beside a counting baseline on the same tokens.

The baseline is a token n-gram (order 5) with interpolated Witten-Bell smoothing, trained
on the same training tunes and token ids as the Transformer:

    P_k(t | h) = (C(h, t) + T(h) · P_{k-1}(t | h')) / (C(h) + T(h))

with h the k-1 tokens before t within the tune (a tune starts at ``<tune>``), h' h without
its oldest token, C counts, T(h) the distinct tokens seen after h, and a uniform floor over
the vocabulary, so every held-out token has a finite cost.

Figures (``figures``): held-out cross-entropy per token (nats, the same tokens for both
models: each held-out tune's tokens after ``<tune>``, up to the model's context); of tunes
written from the held-out tunes' headers, the share music21 parses into at least 8 bars and
the share of inner bars that fill the meter (beside the corpus's); and the distance of
their pitch-class distribution from the corpus's in the same key (total variation, 0 = the
same, 1 = disjoint) for the Transformer and the n-gram.

    python -m bench.run --only melody-quality [--size quick]
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.common import Result

ORDER = 5
TUNES_WRITTEN = 64


class TokenNgram:
    """Interpolated Witten-Bell n-gram over token ids; contexts never cross tunes."""

    def __init__(self, tunes: list[list[int]], order: int, vocabulary: int) -> None:
        self.order = order
        self.vocabulary = vocabulary
        self.followers: dict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
        for tune in tunes:
            for end in range(1, len(tune)):
                for length in range(min(order - 1, end) + 1):
                    self.followers[tuple(tune[end - length : end])][tune[end]] += 1

    def distribution(self, history: list[int]) -> np.ndarray:
        probabilities = np.full(self.vocabulary, 1.0 / self.vocabulary)
        context = history[-(self.order - 1) :] if self.order > 1 else []
        for length in range(len(context) + 1):
            counts = self.followers.get(tuple(context[len(context) - length :]))
            if not counts:
                break
            total, distinct = sum(counts.values()), len(counts)
            seen = np.zeros(self.vocabulary)
            for token, count in counts.items():
                seen[token] = count
            probabilities = (seen + distinct * probabilities) / (total + distinct)
        return probabilities

    def cross_entropy(self, tunes: list[list[int]], length: int) -> tuple[float, int]:
        """Mean cost in nats of each tune's tokens after the first, up to ``length``
        predictions (what ``workers.kinds.melody.model.cross_entropy`` measures)."""
        total, count = 0.0, 0
        for tune in tunes:
            for end in range(1, min(len(tune), length + 1)):
                total -= math.log(self.distribution(tune[:end])[tune[end]])
                count += 1
        return total / max(count, 1), count

    def sample(self, prompt: list[int], end: int, most: int, rng: random.Random) -> list[int]:
        tune = list(prompt)
        while len(tune) < most:
            weights = self.distribution(tune)
            token = rng.choices(range(self.vocabulary), weights=list(weights))[0]
            if token == end:
                break
            tune.append(token)
        return tune[len(prompt) :]


@dataclass
class TuneFigures:
    tunes: int
    eight_bars: float
    """Share of tunes music21 parses into at least 8 bars."""
    full_bars: float
    """Share of inner bars (first and last excepted) that fill the meter."""
    pitch_classes: dict[str, list[int]]
    """Key → notes per pitch class, over the tunes in that key."""


def tune_figures(tunes: Sequence[object]) -> TuneFigures:
    """Figures of tunes (``Tune``; anything else counts as unreadable)."""
    from atelier.shared.kinds.melody.abc import AbcError, Tune
    from atelier.shared.kinds.melody.music import stats

    eight = inner = full = 0
    pitches: dict[str, list[int]] = defaultdict(lambda: [0] * 12)
    for tune in tunes:
        if not isinstance(tune, Tune):
            continue
        try:
            figures = stats(tune)
        except AbcError:
            continue
        eight += figures.bars >= 8
        inner += figures.inner_bars
        full += figures.full_bars
        pitches[tune.key] = [
            a + b for a, b in zip(pitches[tune.key], figures.pitch_classes, strict=True)
        ]
    return TuneFigures(len(tunes), eight / max(len(tunes), 1), full / max(inner, 1), pitches)


def pitch_distance(made: dict[str, list[int]], corpus: dict[str, list[int]]) -> float:
    """Total variation distance between pitch-class shares, per key, weighted by the notes
    made in each key (keys the corpus lacks are skipped)."""
    distance, notes = 0.0, 0
    for key, counts in made.items():
        reference = np.array(corpus.get(key, [0] * 12), dtype=float)
        total = sum(counts)
        if total == 0 or reference.sum() == 0:
            continue
        shares = np.array(counts, dtype=float) / total
        distance += total * 0.5 * float(np.abs(shares - reference / reference.sum()).sum())
        notes += total
    return distance / max(notes, 1)


def _share(name: str, value: float, baseline: float, against: str, goal: str, met: bool) -> Result:
    return Result(name, value, baseline, against, "share", value / max(baseline, 1e-9), goal, met)


def melody_quality(size: str) -> list[Result]:
    """Train the default melody model as a job (``quick``: 200 steps), then measure it and
    the n-gram baseline on the same held-out tunes."""
    from bench.melody_run import trained_by_a_job

    started = time.perf_counter()
    run, _ = trained_by_a_job({"steps": 200} if size == "quick" else {})
    report = run.report(TUNES_WRITTEN if size != "quick" else 16)
    took = time.perf_counter() - started
    model, ngram = report.model, report.ngram
    return [
        Result(
            "melody held-out cross-entropy (nats/token)",
            report.model_loss,
            report.ngram_loss,
            f"{ORDER}-gram Witten-Bell",
            "nats",
            report.model_loss / report.ngram_loss,
            "< 1 (lower than the n-gram)",
            report.model_loss < report.ngram_loss,
            f"a {run.steps}-step job trained in {run.train_seconds:.0f} s; {report.notes()}; "
            f"{took:.0f} s in all",
        ),
        _share(
            "melody tunes parsing to >= 8 bars",
            model.eight_bars,
            ngram.eight_bars,
            f"{ORDER}-gram",
            ">= 0.95",
            model.eight_bars >= 0.95,
        ),
        _share(
            "melody bars filling the meter",
            model.full_bars,
            report.corpus_full_bars,
            "the corpus",
            ">= 0.90",
            model.full_bars >= 0.90,
        ),
        Result(
            "melody pitch-class distance from the corpus (same key)",
            report.model_pitch_distance,
            report.ngram_pitch_distance,
            f"{ORDER}-gram",
            "TV distance",
            report.model_pitch_distance / max(report.ngram_pitch_distance, 1e-9),
            "<= the n-gram's",
            report.model_pitch_distance <= report.ngram_pitch_distance,
        ),
    ]
