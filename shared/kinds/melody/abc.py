"""ABC tunes as tokens: splitting a file into tunes, normalising each, and the tokens the
``melody`` kind reads and writes. Pure Python (the API checks uploads with it, so no
TensorFlow and no music21 here).

A normalised tune has one header order (``X: T: M: L: R: K:``, ``R:`` only for a known
dance rhythm) and a body of music only: comments, lyrics (``w:``/``W:``), annotations and
chord symbols (``"..."``), decorations, slurs, grace notes and line breaks are dropped,
so what a model learns is the melody. A tune whose body holds something we do not read
(a mid-tune key or meter change, an unknown symbol) raises ``AbcError``: it is dropped
and counted, never half-read.

Tokens: the header fields ``M:6/8``, ``L:1/8``, ``R:jig``, ``K:Dm`` are one token each;
in the body a pitch (accidental, letter, octave marks: ``^F``, ``c'``, ``B,``), a duration
(``2``, ``/2``, ``3/2``), a rest ``z``, bar lines ``| || |] |: :| ::``, endings ``[1``
``[2``, a tuplet ``(3``, a tie ``-``, broken rhythm ``>`` ``<``, and chord brackets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

RHYTHMS = (
    "reel",
    "slip jig",
    "jig",
    "hornpipe",
    "polka",
    "waltz",
    "strathspey",
    "march",
    "slide",
    "schottische",
    "mazurka",
)
"""Dance rhythms kept as an ``R:`` token (the first that a tune's ``R:`` field names)."""
MODES = {"": "", "maj": "", "ion": "", "m": "m", "min": "m", "aeo": "m", "dor": "dor"}
MODES |= {"mix": "mix", "lyd": "lyd", "phr": "phr", "loc": "loc"}
BAR_LINES = ("|", "||", "|]", "|:", ":|", "::")
ENDINGS = ("[1", "[2")
HEADER_PREFIXES = ("M:", "L:", "R:", "K:")
UNIT = Fraction(1, 8)
"""Every normalised tune counts in eighths (``L:1/8``): a quaver is one token, ``c``,
whatever unit length the source used, so durations mean the same in every tune."""
_DURATION = re.compile(r"\d+|\d*/\d+")

_FIELD = re.compile(r"^([A-Za-z]):\s*(.*?)\s*$")
_KEY = re.compile(r"^([A-G])([#b]?)\s*([A-Za-z]*)")
_SKIP = re.compile(r'\s+|"[^"]*"|![^!\n]*!|\+[^+\n]*\+|\{[^}]*\}|[.~HJLMOPRSTUkuvy*\\$)]')
_BODY = re.compile(
    r"(?P<bar>:*\|[\]:|]?:*|::|\[\|)\s*(?P<ending>\[?[12](?![0-9/]))?"
    r"|(?P<end2>\[[12])(?![0-9/:])"
    r"|(?P<note>(?:\^\^|\^|__|_|=)?[A-Ga-g][,']*|[zx])(?P<dur>\d*(?:/+\d*)?)"
    r"|\((?P<tuplet>[2-9])(?![:\d])"
    r"|(?P<chord_open>\[)(?=[=_^]*[A-Ga-gz])"
    r"|(?P<chord_close>\])(?P<chord_dur>\d*(?:/+\d*)?)"
    r"|(?P<broken><+|>+)|(?P<tie>-)|(?P<slur>\()"
)


class AbcError(ValueError):
    """A tune we cannot read, with the reason (it is dropped and counted)."""


@dataclass
class Tune:
    """One normalised tune: its header fields and its body tokens."""

    meter: str
    length: str
    key: str
    rhythm: str | None = None
    title: str = ""
    body: list[str] = field(default_factory=list)

    def header_tokens(self) -> list[str]:
        rhythm = [f"R:{self.rhythm}"] if self.rhythm else []
        return [f"M:{self.meter}", f"L:{self.length}", *rhythm, f"K:{self.key}"]

    def tokens(self) -> list[str]:
        return [*self.header_tokens(), *self.body]

    def text(self, number: int = 1) -> str:
        """The tune as ABC, in the normal header order, four bars a line."""
        title = [f"T:{self.title}"] if self.title else []
        header = [f"X:{number}", *title, *self.header_tokens()]
        return "\n".join([*header, body_text(self.body)]) + "\n"


def split_tunes(text: str) -> list[str]:
    """The tunes of an ABC file: each starts at an ``X:`` line (text before the first is
    the file header, ignored)."""
    parts = re.split(r"(?m)^(?=X:)", text.replace("\r\n", "\n").replace("\r", "\n"))
    return [part for part in parts if part.startswith("X:")]


def normalise(source: str) -> Tune:
    """One tune's text → a ``Tune``; ``AbcError`` if it cannot be read."""
    fields: dict[str, str] = {}
    body_lines: list[str] = []
    for raw in source.split("\n"):
        line = raw.split("%", 1)[0].rstrip() if not raw.startswith("%%") else ""
        match = _FIELD.match(line)
        if match and not body_lines and "K" not in fields:
            fields.setdefault(match.group(1).upper(), match.group(2))
        elif match and match.group(1) in "KML":
            raise AbcError(f"a mid-tune {match.group(1)}: change")
        elif match:  # lyrics (w:, W:), notes, parts: not melody
            continue
        elif "K" in fields:
            body_lines.append(line)
    if "K" not in fields:
        raise AbcError("no K: field")
    meter = _meter(fields.get("M", ""))
    length = Fraction(_length(fields.get("L", ""), meter))
    tune = Tune(
        meter=meter,
        length=str(UNIT),
        key=_key(fields["K"]),
        rhythm=_rhythm(fields.get("R", "")),
        title=fields.get("T", "").replace('"', "").strip()[:80],
        body=rescale(tokenize_body("\n".join(body_lines)), length / UNIT),
    )
    if sum(token in BAR_LINES for token in tune.body) < 2:
        raise AbcError("fewer than two bar lines")
    return tune


def _meter(value: str) -> str:
    value = value.replace(" ", "")
    if value in ("C", "c"):
        return "4/4"
    if value in ("C|", "c|"):
        return "2/2"
    if not re.fullmatch(r"[1-9]\d?/(1|2|4|8|16)", value):
        raise AbcError(f"meter {value or 'missing'!r} is not a plain n/d")
    return value


def _length(value: str, meter: str) -> str:
    value = value.replace(" ", "")
    if not value:  # ABC's default: 1/16 below a meter of 3/4, else 1/8
        return "1/16" if Fraction(meter) < Fraction(3, 4) else "1/8"
    if value not in ("1/1", "1/2", "1/4", "1/8", "1/16", "1/32"):
        raise AbcError(f"unit length {value!r}")
    return value


def _key(value: str) -> str:
    match = _KEY.match(value.strip())
    if not match:
        raise AbcError(f"key {value!r}")
    tonic, accidental, mode = match.groups()
    canonical = MODES.get(mode.lower()[:3] if mode.lower() != "m" else "m")
    if canonical is None:
        raise AbcError(f"mode {mode!r}")
    return f"{tonic}{accidental}{canonical}"


def _rhythm(value: str) -> str | None:
    lowered = value.lower().replace("slipjig", "slip jig")
    return next((rhythm for rhythm in RHYTHMS if rhythm in lowered), None)


def tokenize_body(body: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(body):
        skipped = _SKIP.match(body, position)
        if skipped:
            position = skipped.end()
            continue
        match = _BODY.match(body, position)
        if not match:
            raise AbcError(f"unreadable {body[position : position + 12]!r}")
        tokens.extend(_tokens_of(match))
        position = match.end()
    return tokens


def _tokens_of(match: re.Match[str]) -> list[str]:
    group = match.groupdict()
    for name, handler in _HANDLERS.items():
        if group[name]:
            return handler(group)
    return []  # a slur's opening bracket: phrasing, not melody


def _bar(group: dict[str, str]) -> list[str]:
    bar = group["bar"].replace("[|", "||")
    bar = {":|:": "::", ":||:": "::", "|::": "|:", "::|": ":|", ":||": ":|"}.get(bar, bar)
    if bar not in BAR_LINES:
        raise AbcError(f"bar line {bar!r}")
    ending = group["ending"]
    return [bar, f"[{ending[-1]}"] if ending else [bar]


def _note(group: dict[str, str]) -> list[str]:
    pitch = "z" if group["note"] == "x" else group["note"]
    return [pitch, *filter(None, [_duration(group["dur"])])]


def _chord_close(group: dict[str, str]) -> list[str]:
    return ["]", *filter(None, [_duration(group["chord_dur"])])]


def _broken(group: dict[str, str]) -> list[str]:
    if len(group["broken"]) > 2:
        raise AbcError("broken rhythm")
    return [group["broken"]]


_HANDLERS: dict[str, Callable[[dict[str, str]], list[str]]] = {
    "bar": _bar,
    "end2": lambda group: [group["end2"]],
    "note": _note,
    "tuplet": lambda group: [f"({group['tuplet']}"],
    "chord_open": lambda group: ["["],
    "chord_close": _chord_close,
    "broken": _broken,
    "tie": lambda group: ["-"],
}


def _duration(text: str) -> str:
    """``""`` (one unit) or a canonical multiple: ``2``, ``/2``, ``3/2``."""
    if not text:
        return ""
    numerator, slashes, denominator = re.fullmatch(r"(\d*)(/*)(\d*)", text).groups()  # type: ignore[union-attr]
    if not slashes:
        value = Fraction(int(numerator))
    else:
        divisor = int(denominator) if denominator else 2 ** len(slashes)
        value = Fraction(int(numerator or 1), divisor)
    if value <= 0 or value > 32 or value.denominator > 32:
        raise AbcError(f"duration {text!r}")
    return _canonical(value)


def _canonical(value: Fraction) -> str:
    if value.denominator > 64:
        raise AbcError(f"duration {value}")
    if value == 1:
        return ""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator if value.numerator != 1 else ''}/{value.denominator}"


def duration_value(token: str) -> Fraction:
    """A canonical duration token's length in units (``/2`` is a half)."""
    return Fraction(1, int(token[1:])) if token.startswith("/") else Fraction(token)


def rescale(tokens: list[str], factor: Fraction) -> list[str]:
    """Durations multiplied by ``factor`` (a change of unit length). A chord's notes keep
    theirs: the chord's own duration, after ``]``, scales them all."""
    if factor == 1:
        return tokens
    out: list[str] = []
    in_chord = False
    for index, token in enumerate(tokens):
        in_chord = (in_chord or token == "[") and token != "]"
        if _DURATION.fullmatch(token):
            continue  # written with the note or chord it belongs to
        out.append(token)
        timed = token == "]" or ((token[-1:].isalpha() or token[-1:] in ",'") and not in_chord)
        if timed and token[:2] not in HEADER_PREFIXES:
            following = tokens[index + 1] if index + 1 < len(tokens) else ""
            value = duration_value(following) if _DURATION.fullmatch(following) else Fraction(1)
            out.extend(filter(None, [_canonical(value * factor)]))
        elif _DURATION.fullmatch(tokens[index + 1] if index + 1 < len(tokens) else ""):
            out.append(tokens[index + 1])  # a chord note's own duration
    return out


def body_text(tokens: list[str]) -> str:
    """Body tokens as ABC text: a space after each bar line, four bars a line."""
    out: list[str] = []
    bars = 0
    for index, token in enumerate(tokens):
        if token in BAR_LINES:
            bars += 1
            following = tokens[index + 1] if index + 1 < len(tokens) else ""
            newline = bars % 4 == 0 and following not in ENDINGS
            out.append(f"{token}\n" if newline else f"{token} ")
        elif token in ENDINGS:
            out.append(f"{token} ")
        else:
            out.append(token)
    return "".join(out).strip()


TUPLET_TIME = {2: 3, 3: 2, 4: 3, 5: 2, 6: 2, 7: 2, 8: 3, 9: 2}
"""``(p``: p notes in the time of this many (ABC's defaults)."""


def bar_lengths(body: list[str]) -> list[Fraction]:
    """Each bar's length in units (eighths), counted on the tokens: a broken-rhythm pair
    keeps its sum, a tuplet's notes are scaled, a chord lasts as its first note. Cheap,
    so a tune is checked before music21 (which is slow on absurd bars) reads it."""
    bars: list[Fraction] = []
    current, tuplet_notes, ratio = Fraction(0), 0, Fraction(1)
    chord: list[Fraction] = []
    in_chord = False
    for index, token in enumerate(body):
        following = body[index + 1] if index + 1 < len(body) else ""
        value = duration_value(following) if _DURATION.fullmatch(following) else Fraction(1)
        if token in BAR_LINES:
            bars.append(current)
            current = Fraction(0)
        elif token.startswith("(") and token[1:].isdigit():
            tuplet_notes = int(token[1:])
            ratio = Fraction(TUPLET_TIME[tuplet_notes], tuplet_notes)
        elif token == "[" or token == "]":
            in_chord = token == "["
            if token == "]":
                current += (chord[0] if chord else 1) * value * (ratio if tuplet_notes else 1)
                tuplet_notes = max(tuplet_notes - 1, 0)
                chord = []
        elif token[-1:].isalpha() or token[-1:] in ",'":
            if in_chord:
                chord.append(value)
            else:
                current += value * (ratio if tuplet_notes else 1)
                tuplet_notes = max(tuplet_notes - 1, 0)
    return [*bars, current] if current else bars


def without_repeats(tune: Tune) -> Tune:
    """The tune played straight through once: repeat signs become plain bar lines and
    endings are dropped (for a MIDI writer that refuses repeats it cannot expand)."""
    plain = {"|:": "|", ":|": "|", "::": "|"}
    body = [plain.get(token, token) for token in tune.body if token not in ENDINGS]
    return Tune(tune.meter, tune.length, tune.key, tune.rhythm, tune.title, body)


def meter_fit(tune: Tune, bars: int = 8) -> float:
    """Share of the inner bars (first and last excepted) whose length is the meter's,
    counted on the tokens, less 1 for a tune of fewer than ``bars`` bars (a short tune
    fits easily, and is not what was asked for): how a job ranks its candidates."""
    lengths = bar_lengths(tune.body)
    inner = lengths[1:-1]
    bar = Fraction(tune.meter) / UNIT
    fit = sum(length == bar for length in inner) / len(inner) if inner else 0.0
    return fit - (len(lengths) < bars)


def check_bars(tune: Tune, most: int = 4) -> None:
    """``AbcError`` when a bar is longer than ``most`` bars of the meter."""
    limit = most * Fraction(tune.meter) / UNIT
    if any(length > limit for length in bar_lengths(tune.body)):
        raise AbcError(f"a bar longer than {most} bars of {tune.meter}")


def tune_from_tokens(tokens: list[str], title: str = "") -> Tune:
    """A generated token sequence (header tokens, then the body) → a ``Tune``; missing
    header fields raise ``AbcError``."""
    header = {t[0]: t[2:] for t in tokens if t.startswith(HEADER_PREFIXES)}
    body = [t for t in tokens if not t.startswith(HEADER_PREFIXES)]
    if "M" not in header or "L" not in header or "K" not in header:
        raise AbcError("the header lacks M:, L: or K:")
    return Tune(header["M"], header["L"], header["K"], header.get("R"), title, body)
