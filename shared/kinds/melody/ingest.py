"""The ``melody`` kind's ingest rules: which tunes of an uploaded ABC file are kept.

Pure Python and music21 (no Flask, no TensorFlow). The API gathers the upload's ABC files
(``api.ingest``: the bytes are capped, and archives go through ``api.archives``' entry
checks first) and runs ``check_tunes`` in a process of the upload pool
(``api.upload_gate``), never on a request thread. Text must be UTF-8 without NULs; every
tune is normalised (``shared.kinds.melody.abc``) and parsed by music21 (6-30 ms a tune, so
at most ``MAX_UPLOAD_TUNES`` are); the upload is refused when none is readable, and the
tunes that are not are counted and named in the refusal's absence (the dataset's
description says how many were dropped).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from ...errors import InvalidUpload, PayloadTooLarge
from .abc import AbcError, normalise, split_tunes
from .music import parse

ABC_SUFFIXES = {".abc"}
MAX_UPLOAD_TUNES = 2000
"""music21 parses ~30 tunes a second: this bounds one upload's check to about a minute."""


@dataclass
class AbcUpload:
    text: str
    """The readable tunes, normalised, numbered from 1."""
    count: int
    dropped: dict[str, int] = field(default_factory=dict)


def _utf8(name: str, data: bytes) -> str:
    if b"\x00" in data:
        raise InvalidUpload(f"{name!r} contains NUL bytes: it looks like a binary file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUpload(
            f"{name!r} is not UTF-8 text (byte {exc.start} is invalid); save it as UTF-8."
        ) from exc


def check_tunes(filename: str, files: list[tuple[str, bytes]]) -> AbcUpload:
    """The readable tunes of ``files``: run in the upload pool's processes (music21 takes
    ~6-30 ms a tune and holds the GIL throughout), so it must stay picklable both ways."""
    sources = [tune for name, data in files for tune in split_tunes(_utf8(name, data))]
    if len(sources) > MAX_UPLOAD_TUNES:
        raise PayloadTooLarge(
            f"The upload holds {len(sources)} tunes; the limit is {MAX_UPLOAD_TUNES}."
        )
    kept: list[str] = []
    dropped: collections.Counter[str] = collections.Counter()
    for source in sources:
        try:
            tune = normalise(source)
            parse(tune)
        except AbcError as exc:
            dropped[str(exc).split(" '")[0]] += 1
            continue
        kept.append(tune.text(len(kept) + 1))
    if not kept:
        reasons = ", ".join(f"{n} {why}" for why, n in dropped.most_common(3)) or "no X: lines"
        raise InvalidUpload(f"{filename!r} holds no tune music21 can read ({reasons}).")
    return AbcUpload("\n".join(kept), len(kept), dict(dropped))
