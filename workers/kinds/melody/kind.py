"""The ``melody`` plug-in: train a causal language model (``causal_lm``) on ABC tunes
(``model``), and write tunes from one, each as ABC, MIDI, a piano roll and audio
(``render``)."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from ....shared.errors import PermanentJobError
from ....shared.jobs import OutputRef
from ....shared.kinds.melody.abc import (
    HEADER_PREFIXES,
    AbcError,
    Tune,
    meter_fit,
    normalise,
    split_tunes,
    tune_from_tokens,
)
from ....shared.kinds.melody.params import MelodyGenerateParams, MelodyTrainParams
from ....shared.kinds.melody.transpose import transpose
from ....shared.models import ModelRecord
from ...cache import LoadedModels
from ...checkpoints import restore_checkpoint
from ...gpu import configure_tensorflow
from ...training import Sample, TrainingKind
from ..base import (
    Exportable,
    GenerateResult,
    JobContext,
    timing_metrics,
)
from ..causal_lm.network import WarmupCosine, build_language_model
from ..causal_lm.sampling import SamplerSpec
from ..causal_lm.trainer import CausalLmTrainer
from . import folk
from .decoding import MelodyDecoder
from .model import (
    END,
    START,
    HeldOut,
    MelodyConfig,
    Vocabulary,
    header_counts,
)
from .render import ABC_TYPE, audio_missing, render

VALIDATION_FRACTION = 0.05
VALIDATION_TUNES = 64  # measured at every sample; bench/melody_quality.py uses them all
SAMPLES = SamplerSpec(temperature=0.8, top_p=0.95)  # the generate defaults
TEXT = "text/plain; charset=utf-8"
ROWS_PER_BATCH = 64  # tunes decoded at once: bounds memory and the compiled shapes
SAMPLE_CANDIDATES = 4


def read_tunes(name: str, ctx: JobContext) -> list[Tune]:
    """The dataset's tunes, each read as the preparation's progress (``ctx.preparation``):
    the ``folk`` corpus once built for the deployment (``workers.prepared``), or an
    upload's tunes (checked at upload)."""
    if name == "folk":
        per_source = ctx.settings.folk_tunes_per_source
        data = ctx.corpora.get(
            "folk",
            folk.recipe(per_source),
            lambda: folk.encode(folk.build(per_source=per_source, preparation=ctx.preparation)),
            ctx.preparation,
            ctx.log,
        )
        ctx.preparation.phase("reading the folk corpus", 1, "corpus")
        parsed = folk.decode(data).parsed()
        ctx.preparation.advance()
        return parsed
    ctx.preparation.phase("downloading the dataset", 1, "files")
    texts = split_tunes(ctx.dataset_bytes(name, "music").decode("utf-8"))
    ctx.preparation.advance()
    ctx.preparation.phase("reading the dataset", len(texts), "tunes")
    tunes = []
    for text in texts:
        tunes.append(normalise(text))
        ctx.preparation.advance()
    return tunes


def split(tunes: list[Tune], seed: int) -> tuple[list[Tune], list[Tune]]:
    """(training, held-out) tunes: a seeded shuffle, 5% held out (at least one)."""
    order = list(tunes)
    random.Random(seed).shuffle(order)
    held = max(1, int(len(order) * VALIDATION_FRACTION))
    return order[held:], order[:held]


@dataclass
class Prepared:
    """A training run's data and model configuration, before any TensorFlow."""

    training: list[Tune]
    held_out: list[Tune]
    vocabulary: Vocabulary
    stream: np.ndarray
    """The training tunes' ids end to end."""
    config: MelodyConfig


def prepare(
    tunes: list[Tune], p: MelodyTrainParams, vocabulary: Vocabulary | None = None
) -> Prepared:
    """``vocabulary``: a model's, which a run continuing it keeps (its tunes' tokens the
    model never saw are dropped); by default the tunes' own."""
    if p.transpose_to:
        tunes = transposed(tunes, p.transpose_to)
    training, held_out = split(tunes, p.seed)
    vocabulary = vocabulary or Vocabulary.of(tunes)
    stream = np.array([i for t in training for i in vocabulary.encode(t)], np.int32)
    if len(stream) < 2 * (p.sequence_length + 1):
        raise PermanentJobError(
            f"the tunes hold {len(stream)} tokens; sequence_length {p.sequence_length} "
            f"needs at least {2 * (p.sequence_length + 1)}"
        )
    config = MelodyConfig(
        p.sequence_length,
        p.num_layers,
        p.num_heads,
        p.hidden_dim,
        p.dropout,
        vocabulary.tokens,
        # A header token a continued model's vocabulary lacks is left out, as in its tunes.
        tuple((tuple(t for t in h if t in vocabulary.ids), n) for h, n in header_counts(training)),
    )
    return Prepared(training, held_out, vocabulary, stream, config)


def transposed(tunes: list[Tune], tonic: str) -> list[Tune]:
    """Every tune moved to ``tonic``; one whose accidentals cannot be spelt there (a
    triple sharp) is left out."""
    moved = []
    for tune in tunes:
        try:
            moved.append(transpose(tune, tonic))
        except AbcError:
            continue
    return moved


def tune_schedule(p: MelodyTrainParams) -> WarmupCosine:
    """Warm up over 5% of the run from a tenth of the peak: a short run ends at a tenth of
    its rate, which is where most of a few-minute budget's gain comes from."""
    return WarmupCosine(p.learning_rate, p.steps, warmup=p.steps // 20, start=p.learning_rate / 10)


class MelodyTrainer(CausalLmTrainer[MelodyTrainParams, list[Tune]]):
    """Trains on tunes: the job's dataset's, parsed and normalised."""

    def build(self) -> keras.Model:
        p = self.params
        kept = MelodyConfig.from_dict(self.parent.config).vocabulary if self.parent else None
        self.prepared = data = prepare(self.data, p, Vocabulary(kept) if kept else None)
        self.training, self.vocabulary = data.training, data.vocabulary
        encoded = [self.vocabulary.encode(t) for t in data.held_out[:VALIDATION_TUNES]]
        self.held_out = HeldOut(encoded, p.sequence_length)
        # A continued model's vocabulary may lack a header token of these tunes.
        header = data.held_out[0].header_tokens()
        self.sample_header = [t for t in header if t in self.vocabulary.ids]
        self.model_config = data.config
        lm = self.build_network(data.config.network, data.stream, p.batch_size, tune_schedule(p))
        self.decoder = MelodyDecoder(lm, self.vocabulary.ids[END], tokens=data.config.vocabulary)
        return lm

    def sample(self, step: int) -> Sample:
        """Validation loss, and a tune with the header of a held-out one."""
        tune = write_tunes(
            self.decoder, self.vocabulary, [self.sample_header], SAMPLES, 0, SAMPLE_CANDIDATES
        )[0]
        text = tune.text() if isinstance(tune, Tune) else f"% unreadable: {tune}\n"
        return Sample(
            text.encode(), "abc", ABC_TYPE, text=text, metrics=self.held_out.metrics(self.lm)
        )

    def config(self) -> dict[str, Any]:
        return self.model_config.to_dict()

    def describe(self) -> str:
        c = self.model_config
        return (
            f"{c.num_layers} layers x {c.hidden_dim} over {len(c.vocabulary)} ABC tokens, "
            f"context {c.sequence_length}, on {self.params.dataset} "
            f"({len(self.training)} tunes, {len(self.train_tokens)} tokens)"
        )


def write_tunes(
    decoder: MelodyDecoder,
    vocabulary: Vocabulary,
    headers: list[list[str]],
    spec: SamplerSpec,
    seed: int,
    candidates: int = 1,
    meter_guard: bool = True,
) -> list[Tune | str]:
    """One tune per header (its prompt): of ``candidates`` sampled for it, the one whose
    bars best fit its meter (``meter_fit``); a tune that cannot be read is the reason why.
    With ``meter_guard`` the sampler keeps every bar to the meter (``guard``)."""
    rows = [header for header in headers for _ in range(candidates)]
    written = _sample_tunes(decoder, vocabulary, rows, spec, seed, meter_guard)
    groups = [written[i : i + candidates] for i in range(0, len(written), candidates)]
    return [max(group, key=_fit) for group in groups]


def _fit(tune: Tune | str) -> float:
    return meter_fit(tune) if isinstance(tune, Tune) else -1.0


def _sample_tunes(
    decoder: MelodyDecoder,
    vocabulary: Vocabulary,
    headers: list[list[str]],
    spec: SamplerSpec,
    seed: int,
    meter_guard: bool,
) -> list[Tune | str]:
    prompts = [prompt_of(header, vocabulary) for header in headers]
    new_ids = [
        ids
        for start in range(0, len(prompts), ROWS_PER_BATCH)
        for ids in decoder.sample(
            prompts[start : start + ROWS_PER_BATCH], spec, seed + start, meter_guard
        )
    ]
    return [tune_of(header, new, vocabulary) for header, new in zip(headers, new_ids, strict=True)]


def prompt_of(header: list[str], vocabulary: Vocabulary) -> list[int]:
    """A tune's start: ``<tune>`` and its header tokens."""
    return [vocabulary.ids[START], *(vocabulary.ids[t] for t in header)]


def tune_of(header: list[str], new: list[int], vocabulary: Vocabulary) -> Tune | str:
    """The tune a model wrote after ``header``'s prompt, or why it cannot be read."""
    try:
        # The header is the prompt's: a header token the model writes later is dropped.
        body = [t for t in vocabulary.decode(new) if not t.startswith(HEADER_PREFIXES)]
        return tune_from_tokens([*header, *body])
    except AbcError as exc:
        return str(exc)


def choose_headers(config: MelodyConfig, p: MelodyGenerateParams) -> list[list[str]]:
    """``n`` headers (M, L, R, K tokens): drawn from the training corpus's headers that
    agree with the request, by how often they occur; when none does, the closest one with
    the requested fields put in."""
    wanted = {"M": p.meter, "K": p.key, "R": p.rhythm}
    wanted_tokens = {f"{field}:{value}" for field, value in wanted.items() if value}
    unknown = sorted(wanted_tokens - set(config.vocabulary))
    if unknown:
        known = sorted(t for t in config.vocabulary if t[:2] in {u[:2] for u in unknown})
        raise PermanentJobError(f"the model never saw {unknown}; it knows {known}")
    scored = [(len(wanted_tokens & set(h)), h, count) for h, count in config.headers]
    best = max(score for score, _, _ in scored)
    pool = [(h, count) for score, h, count in scored if score == best]
    rng = random.Random(p.seed)
    drawn = rng.choices([h for h, _ in pool], [c for _, c in pool], k=p.n)
    return [_with_fields(list(h), wanted) for h in drawn]


def _with_fields(header: list[str], wanted: dict[str, str | None]) -> list[str]:
    fields = {t[0]: t for t in header}
    for field, value in wanted.items():
        if value:
            fields[field] = f"{field}:{value}"
    return [fields[f] for f in "MLRK" if f in fields]


class MelodyKind(TrainingKind[MelodyTrainParams]):
    name = "melody"
    train_params = MelodyTrainParams

    def setup(self) -> None:
        configure_tensorflow(self.settings.mixed_precision)
        self._models: LoadedModels[tuple[MelodyDecoder, Vocabulary]] = LoadedModels(
            self.settings.model_cache_size
        )

    def trainer(self, params: MelodyTrainParams, ctx: JobContext) -> MelodyTrainer:
        return MelodyTrainer(params, read_tunes(params.dataset, ctx))

    def generate(
        self, model: ModelRecord, params: dict[str, Any], ctx: JobContext
    ) -> GenerateResult:
        config = MelodyConfig.from_dict(model.config)
        p = MelodyGenerateParams.model_validate(params)
        headers = choose_headers(config, p)
        started = time.perf_counter()
        (decoder, vocabulary), cached_model = self._models.get_or_load(
            model.id, lambda: self._load(model, config, ctx)
        )
        loaded = time.perf_counter()
        spec = SamplerSpec(p.temperature, p.top_k, p.top_p)
        tunes = write_tunes(decoder, vocabulary, headers, spec, p.seed, p.candidates, p.meter_guard)
        finished = time.perf_counter()
        outputs, readable = self._store(tunes, p.audio, ctx)
        return GenerateResult(
            outputs=outputs,
            metrics={
                **timing_metrics(cached_model, started, loaded, finished),
                "tunes": float(len(tunes)),
                "tunes_parsed": float(readable),
            },
        )

    def exportable(self, model: ModelRecord, weights: bytes) -> Exportable:
        """The network and ``vocabulary.json``: the tokens by id (0-2: padding, a tune's
        start, its end) and the corpus's headers, commonest first, to start tunes with."""
        from ...export.networks import plain_language_model

        config = MelodyConfig.from_dict(model.config)
        lm = build_language_model(config.network)
        restore_checkpoint({"lm": lm.weights}, weights)
        vocabulary = {"tokens": list(config.vocabulary), "headers": config.to_dict()["headers"]}
        files = {"vocabulary.json": json.dumps(vocabulary, indent=1).encode()}
        details = {**config.network.to_dict(), "start": START, "end": END}
        return Exportable(plain_language_model(lm), files, details)

    @staticmethod
    def _load(
        model: ModelRecord, config: MelodyConfig, ctx: JobContext
    ) -> tuple[MelodyDecoder, Vocabulary]:
        lm = build_language_model(config.network)
        restore_checkpoint({"lm": lm.weights}, ctx.objects.get_bytes(model.weights_key))
        vocabulary = Vocabulary(config.vocabulary)
        return MelodyDecoder(lm, vocabulary.ids[END], tokens=config.vocabulary), vocabulary

    @staticmethod
    def _store(
        tunes: list[Tune | str], audio: bool, ctx: JobContext
    ) -> tuple[list[OutputRef], int]:
        """Every tune's files, uploaded in parallel; the ABC text shown inline."""
        texts: dict[str, str] = {}
        readable = 0
        if audio and (missing := audio_missing()):
            # Said where the caller looks: in the log and as an output beside the tunes.
            ctx.log.warning("no .wav files: %s", missing)
            note = f"No .wav files: {missing}.\n"
            ctx.uploader.put("no-audio.txt", ctx.output_key("no-audio.txt"), note.encode(), TEXT)
            texts["no-audio.txt"] = note
        for index, tune in enumerate(tunes):
            stem = f"tune-{index}"
            if isinstance(tune, str):
                ctx.log.warning("%s: the model wrote an unreadable tune (%s)", stem, tune)
                continue
            rendered = render(tune, stem, audio)
            readable += rendered.parsed
            for note in rendered.notes:
                ctx.log.warning("%s", note)
            for file in rendered.files:
                ctx.uploader.put(file.name, ctx.output_key(file.name), file.data, file.content_type)
                if file.text is not None:
                    texts[file.name] = file.text
        refs = ctx.uploader.wait()
        return [ref.model_copy(update={"text": texts.get(ref.name)}) for ref in refs], readable
