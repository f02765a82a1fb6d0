"""A small ``melody`` run writes tunes a musician can read: music21 parses them into at
least 8 bars, their bars fill the meter about as often as the corpus's do, and the model
costs less per held-out token than a smoothed 5-gram on the same tokens
(``bench/melody_quality.py``; bench/results/melody-quality.md has the same figures for the
default run).

Quality tier: trains in this process, as a job would (``bench.melody_run.trained``), on
O'Neill's tunes (1,982), which normalise without music21."""

from __future__ import annotations

import pytest

from atelier.shared.kinds.melody.abc import AbcError, Tune, normalise, split_tunes
from atelier.workers.kinds.melody.folk import source_files
from bench.melody_run import trained

pytestmark = [pytest.mark.slow, pytest.mark.quality]  # a trained model, judged

SMALL_RUN = {"steps": 400, "sequence_length": 128, "dataset": "oneills"}


def oneills() -> list[Tune]:
    tunes = []
    for path in source_files("oneills1850"):
        for source in split_tunes(path.read_text(encoding="utf-8", errors="replace")):
            try:
                tunes.append(normalise(source))
            except AbcError:
                continue
    return tunes


def test_a_small_run_writes_tunes_that_parse_and_keep_the_meter() -> None:
    """What a 400-step run reaches (the goals, >= 95% of tunes in 8+ bars and >= 90% of
    bars filling the meter, are for the default run: bench/results/melody-quality.md): tunes
    that parse into 8+ bars, bars that fill the meter more often than the 5-gram's, more often
    still once the job guards the meter and ranks its candidates, and pitch classes near the
    corpus's."""
    run = trained(oneills(), SMALL_RUN)
    report = run.report(32)
    print(f"melody small run: {run.train_seconds:.0f} s; {report.notes()}")
    print(f"cross-entropy {report.model_loss:.3f} vs 5-gram {report.ngram_loss:.3f} nats/token")
    print(f"8+ bars {report.model.eight_bars:.0%}, 5-gram {report.ngram.eight_bars:.0%}")
    model_distance, ngram_distance = report.model_pitch_distance, report.ngram_pitch_distance
    print(f"pitch distance {model_distance:.3f}, 5-gram {ngram_distance:.3f}")
    print(report.example)
    assert report.model.eight_bars >= 0.95, report.model
    assert report.model.full_bars > report.unranked.full_bars, report.notes()
    assert report.model.full_bars > report.ngram.full_bars, report.notes()
    assert report.model_pitch_distance < 0.25
