"""The built-in ``folk`` dataset: the public-domain ABC tunes that ship inside music21's
wheel (no download), normalised (``shared.kinds.melody.abc``) and checked by parsing with music21.

Parsing every tune takes music21 ~30 ms (~0.1 s on a loaded 2-core machine), minutes of
CPU for the ~11,600 tunes, so a job builds it once per deployment (``workers.prepared``:
stored in object storage under a hash of its recipe, ``recipe``; other workers download
it) and reports the build tune by tune as its preparation. ``python -m
atelier.workers.kinds.melody.folk`` builds it into ``$ATELIER_DATA_DIR/cache`` (where a
worker on this machine then finds it) and prints what was kept and dropped.
"""

from __future__ import annotations

import collections
import fcntl
import gzip
import hashlib
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ....shared.kinds.melody.abc import AbcError, Tune, normalise, split_tunes
from ....shared.kinds.melody.music import TuneStats, stats
from ...preparation import NO_PREPARATION, Preparation

SOURCES = ("ryansMammoth", "oneills1850", "essenFolksong")
"""music21 corpus collections: Ryan's Mammoth Collection (1883), O'Neill's Music of
Ireland (1850 tunes, 1903) and the Essen Folksong Collection (ABC transcriptions)."""
CACHE_VERSION = 4  # bump when normalisation changes: the old cache is then rebuilt
LABEL = "building the folk corpus"


@dataclass
class FolkTune:
    source: str
    text: str
    """The normalised tune as ABC."""
    stats: TuneStats
    tune: Tune
    """``text`` read (``normalise``), kept so a job need not read 11,000 tunes again
    (~15 s on a loaded machine, against ~2 s to load them)."""


@dataclass
class FolkCorpus:
    tunes: list[FolkTune]
    dropped: dict[str, int] = field(default_factory=dict)
    """Reason → tunes dropped for it (normalisation or music21 failed)."""

    def parsed(self) -> list[Tune]:
        return [t.tune for t in self.tunes]

    def bar_share(self) -> float:
        """Share of inner bars (pickup and final bar excepted) that fill the meter."""
        inner = sum(t.stats.inner_bars for t in self.tunes)
        return sum(t.stats.full_bars for t in self.tunes) / max(inner, 1)


def source_files(source: str) -> list[Path]:
    from music21 import corpus

    return sorted(Path(path) for path in corpus.getComposer(source))


def recipe(per_source: int = 0) -> str:
    """What names a build: its inputs and the code that reads them (a new music21 may
    parse differently); a change makes a new corpus, never a stale one."""
    spec = [CACHE_VERSION, SOURCES, per_source, version("music21")]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


def raw_tunes(
    sources: tuple[str, ...], per_file: int | None = None, per_source: int = 0
) -> list[tuple[str, str]]:
    """(source, tune text) of every tune to read: the first ``per_file`` of each file,
    the first ``per_source`` of each source (0: all)."""
    found: list[tuple[str, str]] = []
    for source in sources:
        texts = [
            raw
            for path in source_files(source)
            for raw in split_tunes(path.read_text(encoding="utf-8", errors="replace"))[:per_file]
        ]
        found.extend((source, raw) for raw in texts[: per_source or None])
    return found


def build(
    sources: tuple[str, ...] = SOURCES,
    per_file: int | None = None,
    per_source: int = 0,
    preparation: Preparation = NO_PREPARATION,
) -> FolkCorpus:
    """Read, normalise and check every tune of ``sources`` (fewer when ``per_file`` or
    ``per_source`` say so: small corpora for tests); ``preparation`` hears each tune."""
    kept: list[FolkTune] = []
    dropped: collections.Counter[str] = collections.Counter()
    tunes = raw_tunes(sources, per_file, per_source)
    preparation.phase(LABEL, len(tunes), "tunes")
    for source, raw in tunes:
        try:
            tune = normalise(raw)
            text = tune.text(len(kept) + 1)
            kept.append(FolkTune(source, text, stats(tune), normalise(text)))
        except AbcError as exc:
            dropped[_reason(exc)] += 1
        preparation.advance()
    return FolkCorpus(kept, dict(dropped))


def _reason(exc: AbcError) -> str:
    """A short, countable reason ("unreadable 'xyz'" would count each tune apart)."""
    return re.split(r" ['\"{]", str(exc))[0]


def cached(directory: Path, per_source: int = 0) -> FolkCorpus:
    """The corpus from ``directory``, built there first if it is not yet (an OS lock
    keeps two processes of this machine from building it twice). The file is the one a
    worker keeps (``workers.prepared``), so a worker here finds it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"folk-{recipe(per_source)}"
    with open(directory / "folk.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits for the first's build
        if not path.exists():
            partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            partial.write_bytes(encode(build(per_source=per_source)))
            partial.replace(path)  # readers see the whole file or none
    return decode(path.read_bytes())


def encode(corpus: FolkCorpus) -> bytes:
    data = {"tunes": [asdict(t) for t in corpus.tunes], "dropped": corpus.dropped}
    return gzip.compress(json.dumps(data).encode(), mtime=0)


def decode(data: bytes) -> FolkCorpus:
    return _from_json(json.loads(gzip.decompress(data)))


def _from_json(data: dict[str, Any]) -> FolkCorpus:
    tunes = [
        FolkTune(
            t["source"],
            t["text"],
            TuneStats(
                t["stats"]["bars"],
                t["stats"]["inner_bars"],
                t["stats"]["full_bars"],
                tuple(t["stats"]["pitch_classes"]),
            ),
            Tune(**t["tune"]),
        )
        for t in data["tunes"]
    ]
    return FolkCorpus(tunes, dict(data["dropped"]))


def main() -> None:
    from ....shared.settings import Settings

    settings = Settings.from_env()
    corpus = cached(settings.data_dir / "cache", settings.folk_tunes_per_source)
    by_source = collections.Counter(t.source for t in corpus.tunes)
    print(f"folk: {len(corpus.tunes)} tunes {dict(by_source)}; dropped {corpus.dropped}")
    print(f"bars filling the meter: {corpus.bar_share():.1%}")


if __name__ == "__main__":
    main()
    sys.exit(0)
