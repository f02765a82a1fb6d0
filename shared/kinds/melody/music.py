"""What music21 says about a normalised tune: does it parse, how many bars, how many of
them fill the meter, and which pitch classes it plays. Used by the upload check (API), the
``folk`` dataset build and the quality figures (worker, bench). music21 is imported on
first use: it takes ~0.4 s and only these paths need it."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from .abc import AbcError, Tune, check_bars

MAX_TOKENS = 4000  # the longest tune of the folk corpus has 943


@dataclass(frozen=True)
class TuneStats:
    bars: int
    """Measures music21 reads."""
    inner_bars: int
    """Bars that are neither the first (a pickup) nor the last."""
    full_bars: int
    """Inner bars whose length is the meter's."""
    pitch_classes: tuple[int, ...]
    """Notes per pitch class 0 (C) .. 11 (B), as sounded (key signature applied)."""


def parse(tune: Tune) -> Any:
    """The tune as a music21 score; ``AbcError`` when music21 cannot read it, or when
    reading it could take music21 long (a huge tune, an absurdly long bar: seconds each)."""
    from music21 import converter

    if len(tune.body) > MAX_TOKENS:
        raise AbcError(f"longer than {MAX_TOKENS} tokens")
    check_bars(tune)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # music21 warns on every odd bar; we count them
            score: Any = converter.parse(tune.text(), format="abc", forceSource=True)
    except Exception as exc:  # music21 raises anything from its parser; all mean "unreadable"
        raise AbcError(f"music21 cannot parse it: {type(exc).__name__}") from exc
    if not score.parts or not score.parts[0].getElementsByClass("Measure"):
        raise AbcError("music21 reads no bars")
    return score


def stats(tune: Tune) -> TuneStats:
    """Parse ``tune`` and measure it (``AbcError`` when it does not parse)."""
    score = parse(tune)
    measures = list(score.parts[0].getElementsByClass("Measure"))
    bar = _bar_length(tune.meter)
    inner = measures[1:-1]
    full = sum(1 for m in inner if abs(float(m.duration.quarterLength) - bar) < 1e-6)
    counts = [0] * 12
    for note in score.parts[0].recurse().notes:
        for pitch in note.pitches:
            counts[pitch.pitchClass] += 1
    return TuneStats(len(measures), len(inner), full, tuple(counts))


def _bar_length(meter: str) -> float:
    """A bar of ``n/d`` in quarter notes."""
    numerator, denominator = meter.split("/")
    return int(numerator) * 4 / int(denominator)


def midi_bytes(score: Any) -> bytes:
    """A parsed tune as a standard MIDI file."""
    from music21 import midi

    handle = midi.translate.streamToMidiFile(score)
    data: bytes = handle.writestr()
    return data


def note_events(score: Any) -> list[tuple[float, float, int]]:
    """(start, length, MIDI pitch) of every note of a parsed tune, in quarter notes."""
    return [
        (float(note.getOffsetInHierarchy(score)), float(note.quarterLength), pitch.midi)
        for note in score.parts[0].recurse().notes
        for pitch in note.pitches
    ]
