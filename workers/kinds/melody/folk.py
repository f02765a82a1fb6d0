"""The built-in ``folk`` dataset: the public-domain ABC tunes that ship inside music21's
wheel (no download), normalised (``shared.kinds.melody.abc``) and checked by parsing with music21.

Parsing every tune takes music21 ~30 ms, about five minutes of CPU for the ~11,000 tunes,
so the result is built once per worker machine and cached as JSON under
``$ATELIER_DATA_DIR/cache`` (an OS lock keeps two job processes from building it twice);
later jobs load it in about a second. ``python -m atelier.workers.kinds.melody.folk``
builds it ahead of the first job and prints what was kept and dropped.
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ....shared.kinds.melody.abc import AbcError, Tune, normalise, split_tunes
from ....shared.kinds.melody.music import TuneStats, stats

SOURCES = ("ryansMammoth", "oneills1850", "essenFolksong")
"""music21 corpus collections: Ryan's Mammoth Collection (1883), O'Neill's Music of
Ireland (1850 tunes, 1903) and the Essen Folksong Collection (ABC transcriptions)."""
CACHE_VERSION = 3  # bump when normalisation changes: the old cache is then rebuilt


@dataclass
class FolkTune:
    source: str
    text: str
    """The normalised tune as ABC."""
    stats: TuneStats


@dataclass
class FolkCorpus:
    tunes: list[FolkTune]
    dropped: dict[str, int] = field(default_factory=dict)
    """Reason → tunes dropped for it (normalisation or music21 failed)."""

    def parsed(self) -> list[Tune]:
        return [normalise(t.text) for t in self.tunes]

    def bar_share(self) -> float:
        """Share of inner bars (pickup and final bar excepted) that fill the meter."""
        inner = sum(t.stats.inner_bars for t in self.tunes)
        return sum(t.stats.full_bars for t in self.tunes) / max(inner, 1)


def source_files(source: str) -> list[Path]:
    from music21 import corpus

    return sorted(Path(path) for path in corpus.getComposer(source))


def build(sources: tuple[str, ...] = SOURCES, per_file: int | None = None) -> FolkCorpus:
    """Read, normalise and check every tune of ``sources`` (the first ``per_file`` of each
    file when given: small corpora for tests)."""
    kept: list[FolkTune] = []
    dropped: collections.Counter[str] = collections.Counter()
    for source in sources:
        for path in source_files(source):
            text = path.read_text(encoding="utf-8", errors="replace")
            for raw in split_tunes(text)[:per_file]:
                try:
                    tune = normalise(raw)
                    kept.append(FolkTune(source, tune.text(len(kept) + 1), stats(tune)))
                except AbcError as exc:
                    dropped[_reason(exc)] += 1
    return FolkCorpus(kept, dict(dropped))


def _reason(exc: AbcError) -> str:
    """A short, countable reason ("unreadable 'xyz'" would count each tune apart)."""
    return re.split(r" ['\"{]", str(exc))[0]


def cached(directory: Path) -> FolkCorpus:
    """The full corpus from ``directory``, built there first if it is not yet."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"folk-v{CACHE_VERSION}.json"
    with open(directory / "folk.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits for the first's build
        if not path.exists():
            corpus = build()
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(_to_json(corpus)))
            partial.replace(path)  # readers see the whole file or none
    return _from_json(json.loads(path.read_text()))


def _to_json(corpus: FolkCorpus) -> dict[str, Any]:
    return {"tunes": [asdict(t) for t in corpus.tunes], "dropped": corpus.dropped}


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
        )
        for t in data["tunes"]
    ]
    return FolkCorpus(tunes, dict(data["dropped"]))


def main() -> None:
    from ....shared.settings import Settings

    corpus = cached(Settings.from_env().data_dir / "cache")
    by_source = collections.Counter(t.source for t in corpus.tunes)
    print(f"folk: {len(corpus.tunes)} tunes {dict(by_source)}; dropped {corpus.dropped}")
    print(f"bars filling the meter: {corpus.bar_share():.1%}")


if __name__ == "__main__":
    main()
    sys.exit(0)
