"""Meter-aware decoding for ``melody`` (the ``meter_guard`` parameter): at every step of
keras-hub's compiled sampling loop the logits of tokens that would break the bar are
masked, so each bar the model writes fills its meter.

Per row, the duration written since the last bar line is counted on the tokens written so
far (in eighths: tunes are normalised to ``L:1/8``): a note or rest counts 1, the duration
token after it adds its value less 1, a tuplet ``(p`` adds its time less ``p`` (exact for
a tuplet of unit notes). Broken rhythm keeps the pair's sum, so it counts nothing (it is
written only after a note with room for another, and a note must follow it); chords
(rare in the corpus) are approximated by counting their notes. Then:

- a bar line is allowed only when the bar is full (or empty, or in the first bar, where
  a pickup is short, or past the meter, so a miscounted bar still ends);
- a note is allowed only if a half of an eighth still fits, a duration only if it fits,
  a tuplet only if its time fits: so a full bar forces the bar line;
- header and special tokens (dropped anyway) are never written, nor ``</tune>`` before
  ``FEWEST_BARS`` bar lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import tensorflow as tf

from ....shared.kinds.melody.abc import (
    BAR_LINES,
    HEADER_PREFIXES,
    TUPLET_TIME,
    UNIT,
    duration_value,
)

DURATION = re.compile(r"\d+|\d*/\d+")
FEWEST_BARS = 9
"""``</tune>`` only after this many bar lines: 8 bars and a pickup (the goal's tunes)."""
SHORTEST_NOTE = 0.5
"""A note is written only if this much (in eighths) still fits in the bar."""
_EPSILON = 1e-3
_NEVER = ("<pad>", "<tune>")
# Token kinds
_OTHER, _NOTE, _DUR, _TUPLET, _BAR, _BANNED, _END, _BROKEN = range(8)


def _is_note(token: str) -> bool:
    return token == "z" or (token[:1].upper() in "ABCDEFG=^_" and token[-1:] not in ":/")


def token_tables(tokens: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kind, duration added in eighths, meter length in eighths of an ``M:`` token)."""
    kinds = np.full(len(tokens), _OTHER, np.int32)
    added = np.zeros(len(tokens), np.float32)
    meters = np.zeros(len(tokens), np.float32)
    for index, token in enumerate(tokens):
        if token in BAR_LINES:
            kinds[index] = _BAR
        elif token == "</tune>":
            kinds[index] = _END
        elif token in (">", "<", ">>", "<<"):
            kinds[index] = _BROKEN
        elif token in _NEVER or token.startswith(HEADER_PREFIXES):
            kinds[index] = _BANNED
            if token.startswith("M:"):
                meters[index] = float(Fraction(token[2:]) / UNIT)
        elif DURATION.fullmatch(token):
            kinds[index], added[index] = _DUR, float(duration_value(token)) - 1
        elif token.startswith("(") and token[1:].isdigit():
            notes = int(token[1:])
            kinds[index], added[index] = _TUPLET, TUPLET_TIME.get(notes, 2) - notes
        elif _is_note(token):
            kinds[index], added[index] = _NOTE, 1.0
    return kinds, added, meters


class MeterGuard:
    """The mask's tables for one vocabulary, and the wrapper of keras-hub's ``next``."""

    def __init__(self, tokens: tuple[str, ...]) -> None:
        kinds, added, meters = token_tables(tokens)
        self.kinds = tf.constant(kinds)
        self.added = tf.constant(added)
        self.meters = tf.constant(meters)
        tuplet_time = np.where(kinds == _TUPLET, added + np.array([_n(t) for t in tokens]), 0)
        self.tuplet_time = tf.constant(tuplet_time.astype(np.float32))

    def wrap(self, next_fn: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(prompt: tf.Tensor, cache: Any, index: tf.Tensor) -> Any:
            logits, hidden, cache = next_fn(prompt, cache, index)
            allowed = self.allowed(prompt, index)
            floor = tf.constant(-1e9, logits.dtype)
            return tf.where(allowed, logits, floor), hidden, cache

        return guarded

    def allowed(self, prompt: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        """[rows, vocabulary] bool: the tokens each row may write at ``index``."""
        length = tf.shape(prompt)[1]
        positions = tf.range(length)[tf.newaxis, :]
        written = positions < index
        kinds = tf.gather(self.kinds, prompt)
        meter = tf.reduce_max(tf.gather(self.meters, prompt), axis=1, keepdims=True)
        bars = tf.logical_and(written, tf.equal(kinds, _BAR))
        last_bar = tf.reduce_max(tf.where(bars, positions, -1), axis=1, keepdims=True)
        in_bar = tf.logical_and(written, positions > last_bar)
        so_far = tf.reduce_sum(tf.where(in_bar, tf.gather(self.added, prompt), 0.0), 1, True)
        previous = tf.gather(kinds, tf.maximum(index - 1, 0), axis=1)[:, tf.newaxis]
        first_bar = last_bar < 0
        room = meter - so_far  # [rows, 1]
        full = tf.abs(room) < _EPSILON
        stuck = (room < SHORTEST_NOTE - _EPSILON) & tf.not_equal(previous, _NOTE)
        bar_ok = first_bar | full | (tf.abs(so_far) < _EPSILON) | (room < -_EPSILON) | stuck
        bar_ok |= meter <= 0  # no meter in the prompt: no guard
        added = self.added[tf.newaxis, :]
        vocab_kinds = self.kinds[tf.newaxis, :]
        fits = {
            _NOTE: room + _EPSILON >= SHORTEST_NOTE,
            _DUR: (added <= room + _EPSILON) & tf.equal(previous, _NOTE),
            _TUPLET: self.tuplet_time[tf.newaxis, :] <= room + _EPSILON,
            _BROKEN: (room + _EPSILON >= SHORTEST_NOTE)
            & (tf.equal(previous, _NOTE) | tf.equal(previous, _DUR)),
        }
        allowed = tf.ones_like(vocab_kinds, tf.bool) & tf.ones_like(room, tf.bool)
        for kind, ok in fits.items():
            allowed &= tf.logical_not(tf.equal(vocab_kinds, kind)) | ok | (meter <= 0)
        allowed &= tf.logical_not(tf.equal(vocab_kinds, _BAR)) | bar_ok
        enough = tf.reduce_sum(tf.cast(bars, tf.int32), axis=1, keepdims=True) >= FEWEST_BARS
        allowed &= tf.logical_not(tf.equal(vocab_kinds, _END)) | enough | (meter <= 0)
        # Broken rhythm pairs two notes within the bar: a note follows it, nothing else.
        allowed &= tf.equal(vocab_kinds, _NOTE) | tf.not_equal(previous, _BROKEN) | (meter <= 0)
        return allowed & tf.logical_not(tf.equal(vocab_kinds, _BANNED))


def _n(token: str) -> float:
    return float(token[1:]) if token.startswith("(") and token[1:].isdigit() else 0.0


class GuardedSampler:
    """A keras-hub sampler whose ``next`` goes through a ``MeterGuard``."""

    def __init__(self, inner: Any, guard: MeterGuard) -> None:
        self.inner = inner
        self.guard = guard

    @property
    def variables(self) -> Any:
        return self.inner.variables

    def __call__(self, next: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.inner(self.guard.wrap(next), *args, **kwargs)
