"""Checking uploaded ABC tunes (``.abc``, or a ``.zip`` of them) for the ``melody`` kind.

The hostile-input rules of the other uploads hold: the bytes are capped before this runs,
archives go through ``ingest``'s entry checks (count, total size, names, links, overlapping
entries) and each entry is read no further than it declares; text must be UTF-8 without
NULs. Every tune is normalised (``shared.abc``) and parsed by music21 (~30 ms a tune, so
at most ``MAX_UPLOAD_TUNES`` are); the upload is refused when none is readable, and the
tunes that are not are counted and named in the refusal's absence (the dataset's
description says how many were dropped).
"""

from __future__ import annotations

import collections
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from atelier.shared.abc import AbcError, normalise, split_tunes
from atelier.shared.abc_music import parse
from atelier.shared.errors import PayloadTooLarge
from atelier.shared.settings import Settings

ABC_SUFFIXES = {".abc"}
MAX_UPLOAD_TUNES = 2000
"""music21 parses ~30 tunes a second: this bounds one upload's check to about a minute."""


@dataclass
class AbcUpload:
    text: str
    """The readable tunes, normalised, numbered from 1."""
    count: int
    dropped: dict[str, int] = field(default_factory=dict)


def is_abc_archive(data: bytes) -> bool:
    """A zip whose files include ``.abc`` ones (and so is not an image archive)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return any(_is_abc(entry) for entry in archive.infolist())
    except (zipfile.BadZipFile, EOFError, ValueError):
        return False


def _is_abc(entry: zipfile.ZipInfo) -> bool:
    name = PurePosixPath(entry.filename)
    hidden = any(part.startswith((".", "__MACOSX")) for part in name.parts)
    return not entry.is_dir() and not hidden and name.suffix.lower() in ABC_SUFFIXES


def abc_texts(filename: str, data: bytes, settings: Settings) -> list[tuple[str, str]]:
    """(name, UTF-8 text) of each ABC file of the upload."""
    from atelier.api.ingest import _open_zip, _read_entry

    if PurePosixPath(filename.lower()).suffix in ABC_SUFFIXES:
        return [(filename, _utf8(filename, data))]
    archive = _open_zip(data, settings, "archive")
    entries = [entry for entry in archive.infolist() if _is_abc(entry)]
    return [(e.filename, _utf8(e.filename, _read_entry(archive, e))) for e in entries]


def _utf8(name: str, data: bytes) -> str:
    from atelier.api.ingest import InvalidUpload

    if b"\x00" in data:
        raise InvalidUpload(f"{name!r} contains NUL bytes: it looks like a binary file.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUpload(
            f"{name!r} is not UTF-8 text (byte {exc.start} is invalid); save it as UTF-8."
        ) from exc


def check_tunes(filename: str, data: bytes, settings: Settings) -> AbcUpload:
    from atelier.api.ingest import InvalidUpload

    sources = [
        tune for _, text in abc_texts(filename, data, settings) for tune in split_tunes(text)
    ]
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
