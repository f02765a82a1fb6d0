"""Transposing a normalised tune (``shared.kinds.melody.abc``) to another tonic, mode kept: the
optional step of the ``folk`` normalisation (train param ``transpose_to``). Fewer keys
means fewer things a small model must learn; the tunes keep their shape.

Every letter moves by the same number of scale steps, and every written accidental is
re-spelt so that the note sounds the same interval higher or lower (ABC accidentals are
absolute: ``^c`` is C sharp whatever the key). Notes without an accidental follow the new
key signature, so they stay on the same scale degree.
"""

from __future__ import annotations

import re
from dataclasses import replace

from .abc import AbcError, Tune

LETTERS = "CDEFGAB"
NATURAL = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
ACCIDENTALS = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}
SPELLING = {offset: mark for mark, offset in ACCIDENTALS.items()}
_PITCH = re.compile(r"^(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)$")
_KEY = re.compile(r"^([A-G])([#b]?)(.*)$")


def _step_of(letter: str, octave_marks: str) -> int:
    """A diatonic step number: C (middle C) = 28, c = 35, C, = 21, c' = 42."""
    base = LETTERS.index(letter.upper()) + (35 if letter.islower() else 28)
    return base + 7 * octave_marks.count("'") - 7 * octave_marks.count(",")


def _written(step: int) -> str:
    octave, index = divmod(step, 7)
    letter = LETTERS[index]
    if octave >= 5:
        return letter.lower() + "'" * (octave - 5)
    return letter + "," * (4 - octave)


def _tonic_semitone(tonic: str, accidental: str) -> int:
    return NATURAL[tonic] + {"#": 1, "b": -1, "": 0}[accidental]


def transpose(tune: Tune, to_tonic: str) -> Tune:
    """``tune`` with tonic ``to_tonic`` (``D``, ``Bb``, ``F#``), its mode kept; moves by
    the smallest interval (down rather than up past a tritone)."""
    source, target = _KEY.match(tune.key), _KEY.match(to_tonic)
    if source is None or target is None or target.group(3):
        raise AbcError(f"cannot transpose {tune.key!r} to {to_tonic!r}")
    steps = (LETTERS.index(target.group(1)) - LETTERS.index(source.group(1))) % 7
    shift = (_tonic_semitone(*target.group(1, 2)) - _tonic_semitone(*source.group(1, 2))) % 12
    if shift > 6:
        steps, shift = steps - 7, shift - 12
    body = [_moved(token, steps, shift) for token in tune.body]
    return replace(tune, key=f"{to_tonic}{source.group(3)}", body=body)


def _moved(token: str, steps: int, shift: int) -> str:
    match = _PITCH.match(token)
    if match is None:
        return token
    mark, letter, octave_marks = match.groups()
    step = _step_of(letter, octave_marks) + steps
    written = _written(step)
    if mark is None:
        return written
    sounding = NATURAL[letter.upper()] + ACCIDENTALS[mark] + shift
    offset = (sounding - NATURAL[written[0].upper()] + 6) % 12 - 6
    if offset not in SPELLING:
        raise AbcError(f"{token} has no spelling on {written}")
    return SPELLING[offset] + written
