"""A ``melody`` training run in this process by the job's own trainer
(``workers.kinds.melody.kind.MelodyTrainer``, run by ``train_without_job``), or by a job on a
stack of its own, and the report ``bench.melody_quality`` and
``tests/test_melody_quality.py`` read: the model beside the n-gram on the same tunes."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atelier.client import Job
from bench.common import BENCH_LIMITS, model_weights, seconds_between, succeeded
from bench.melody_quality import ORDER, TokenNgram, TuneFigures, pitch_distance, tune_figures


@dataclass
class Report:
    model_loss: float
    ngram_loss: float
    tokens: int
    model: TuneFigures
    """The model's tunes as a job writes them: meter-guarded sampling, best of
    ``candidates`` by meter fit."""
    unguarded: TuneFigures
    """Best of ``candidates`` without the meter guard."""
    unranked: TuneFigures
    """The model's first candidates, unguarded: what it writes by itself."""
    seconds_per_tune: float
    """Generation time of one tune as a job writes it (its ``candidates`` included)."""
    ngram: TuneFigures
    corpus_full_bars: float
    model_pitch_distance: float
    ngram_pitch_distance: float
    example: str

    def notes(self) -> str:
        return (
            f"{self.tokens} held-out tokens; {self.model.tunes} tunes each; "
            f"bars filling the meter: model {self.model.full_bars:.1%} "
            f"({self.unguarded.full_bars:.1%} unguarded, {self.unranked.full_bars:.1%} "
            f"unguarded and unranked; {self.seconds_per_tune:.2f} s a tune), {ORDER}-gram "
            f"{self.ngram.full_bars:.1%}, corpus {self.corpus_full_bars:.1%}"
        )


@dataclass
class Run:
    prepared: Any
    """``workers.kinds.melody.kind.Prepared``"""
    lm: Any
    steps: int
    train_seconds: float

    def report(self, tunes: int, seed: int = 1, candidates: int = 8) -> Report:
        """Figures on ``tunes`` written from held-out headers, each the best of
        ``candidates`` (the generate default) and unranked, beside the n-gram's."""
        from atelier.workers.kinds.melody.decoding import MelodyDecoder
        from atelier.workers.kinds.melody.kind import ROWS_PER_BATCH, SAMPLES, write_tunes
        from atelier.workers.kinds.melody.model import END, cross_entropy

        data = self.prepared
        vocabulary, length = data.vocabulary, data.config.sequence_length
        held = [vocabulary.encode(t) for t in data.held_out]
        model_loss, tokens = cross_entropy(self.lm, held, length)
        ngram = TokenNgram(
            [vocabulary.encode(t) for t in data.training], ORDER, len(vocabulary.tokens)
        )
        ngram_loss, _ = ngram.cross_entropy(held, length)
        headers = [data.held_out[i % len(data.held_out)].header_tokens() for i in range(tunes)]
        decoder = MelodyDecoder(self.lm, vocabulary.ids[END], tokens=vocabulary.tokens)
        warm = headers[: max(ROWS_PER_BATCH // candidates, 1)]
        write_tunes(decoder, vocabulary, warm, SAMPLES, seed, candidates)  # compiled first
        started = time.perf_counter()
        written = write_tunes(decoder, vocabulary, headers, SAMPLES, seed, candidates)
        seconds = (time.perf_counter() - started) / tunes
        unguarded = write_tunes(decoder, vocabulary, headers, SAMPLES, seed, candidates, False)
        first = write_tunes(decoder, vocabulary, headers, SAMPLES, seed, 1, False)
        counted = _ngram_tunes(ngram, vocabulary, headers, length, seed)
        corpus = tune_figures(list(data.training[:1000]))
        model_figures, ngram_figures = tune_figures(written), tune_figures(counted)
        return Report(
            model_loss,
            ngram_loss,
            tokens,
            model_figures,
            tune_figures(unguarded),
            tune_figures(first),
            seconds,
            ngram_figures,
            corpus.full_bars,
            pitch_distance(model_figures.pitch_classes, corpus.pitch_classes),
            pitch_distance(ngram_figures.pitch_classes, corpus.pitch_classes),
            next((t.text() for t in written if not isinstance(t, str)), ""),
        )


def _ngram_tunes(
    ngram: TokenNgram, vocabulary: Any, headers: list[list[str]], length: int, seed: int
) -> list[object]:
    """Tunes the n-gram writes from the same prompts, read as the model's are."""
    from atelier.workers.kinds.melody.kind import prompt_of, tune_of
    from atelier.workers.kinds.melody.model import END

    rng = random.Random(seed)
    end = vocabulary.ids[END]
    return [
        tune_of(
            header, ngram.sample(prompt_of(header, vocabulary), end, length + 1, rng), vocabulary
        )
        for header in headers
    ]


def trained(tunes: list[Any], params: dict[str, Any]) -> Run:
    """Train on ``tunes`` as a job with ``params`` does (without the job's hooks); the
    time is the whole run's, data preparation included."""
    from atelier.shared.kinds.melody.params import MelodyTrainParams
    from atelier.workers.kinds.melody.kind import MelodyTrainer
    from atelier.workers.training import train_without_job

    trainer = MelodyTrainer(MelodyTrainParams.model_validate(params), tunes)
    started = time.perf_counter()
    lm = train_without_job(trainer)
    return Run(trainer.prepared, lm, trainer.params.steps, time.perf_counter() - started)


def trained_by_a_job(params: dict[str, Any]) -> tuple[Run, dict[str, Any]]:
    """A training job with ``params`` on the built-in ``folk`` tunes, on a stack of its
    own (this machine's folk cache copied in, so the worker does not build it again), and
    the model it made, loaded here; with the finished job."""
    from atelier.shared.kinds.melody.params import MelodyTrainParams
    from atelier.shared.settings import Settings
    from atelier.workers.checkpoints import restore_checkpoint
    from atelier.workers.kinds.causal_lm.network import build_language_model
    from atelier.workers.kinds.melody.folk import cached
    from atelier.workers.kinds.melody.kind import prepare
    from atelier.workers.kinds.melody.model import MelodyConfig

    cache = Settings.from_env().data_dir / "cache"
    tunes = cached(cache).parsed()
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as directory:
        shutil.copytree(cache, Path(directory) / "cache")
        job, record, weights = _train_on_a_stack(Path(directory), params)
    lm = build_language_model(MelodyConfig.from_dict(record.config).network)
    restore_checkpoint({"lm": lm.weights}, weights)
    data = prepare(tunes, MelodyTrainParams.model_validate(params))
    seconds = seconds_between(job["started_at"], job["finished_at"])
    return Run(data, lm, int(job["params"]["steps"]), seconds), dict(job)


def _train_on_a_stack(directory: Path, params: dict[str, Any]) -> tuple[Job, Any, bytes]:
    from atelier.cli.processes import free_port
    from atelier.cli.stack import EmbeddedStack
    from atelier.client import Client
    from atelier.shared.settings import Settings

    base = Settings.from_env({}, data_dir=directory, log_format="text", **BENCH_LIMITS)
    running = EmbeddedStack(base, port=free_port(), worker_roles=("train",))
    settings = running.start()
    try:
        client = Client(settings.api_url, running.api_key, timeout=120)
        job = succeeded(client.wait(client.submit("train", "melody", params)["id"], timeout=7200))
        record, weights = model_weights(settings, str(job["model_id"]))
    finally:
        running.stop()
    return job, record, weights


def saved_or_trained(path: Path | None) -> tuple[Run, dict[str, Any]]:
    """The default run as a job; with ``path``, its model is saved there (weights, and
    the job beside them as JSON), or read from there when an earlier run saved it, so
    generation can be measured again without training."""
    from atelier.shared.kinds.melody.params import MelodyTrainParams
    from atelier.workers.kinds.causal_lm.network import build_language_model
    from atelier.workers.kinds.melody.folk import cached
    from atelier.workers.kinds.melody.kind import prepare

    facts = Path(f"{path}.json") if path else None
    if path is None or facts is None or not path.exists():
        run, job = trained_by_a_job({})
        if path is not None and facts is not None:
            run.lm.save_weights(str(path))
            facts.write_text(json.dumps({"job": job, "seconds": run.train_seconds}, default=str))
        return run, job
    saved = json.loads(facts.read_text())
    job = saved["job"]
    from atelier.shared.settings import Settings

    tunes = cached(Settings.from_env().data_dir / "cache").parsed()
    data = prepare(tunes, MelodyTrainParams.model_validate({}))
    lm = build_language_model(data.config.network)
    lm.load_weights(str(path))
    return Run(data, lm, int(job["params"]["steps"]), float(saved["seconds"])), job


def main() -> None:
    """The default run as a job, and every figure of its report (the README's)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--model", type=Path, help="a .weights.h5 file: saved after training, or read"
    )
    parser.add_argument("--candidates", type=int, default=8)
    args = parser.parse_args()
    run, job = saved_or_trained(args.model)
    report = run.report(64, candidates=args.candidates)
    print(f"job {job['id']}: {run.steps} steps in {run.train_seconds:.0f} s")
    print(f"final metrics: {job['progress']['metrics']}")
    print(f"cross-entropy: model {report.model_loss:.3f}, 5-gram {report.ngram_loss:.3f} nats")
    model, ngram = report.model, report.ngram
    print(f"tunes >= 8 bars: model {model.eight_bars:.1%}, 5-gram {ngram.eight_bars:.1%}")
    print(report.notes())
    print(
        f"pitch-class TV distance: model {report.model_pitch_distance:.3f}, "
        f"5-gram {report.ngram_pitch_distance:.3f}"
    )
    print(report.example)


if __name__ == "__main__":
    main()
