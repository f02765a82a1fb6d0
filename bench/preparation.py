"""How long a ``melody`` job on the built-in ``folk`` corpus prepares its data before step 1
(issue 25, point 9), without TensorFlow: the part of the wait the corpus makes.

- first job of a deployment: the corpus built tune by tune (music21 parses each; the same
  ``folk.build`` a job ran before and runs now), stored for every worker, then read;
- second job, on a worker with an empty disk (a new machine, a restarted container): the
  corpus downloaded from object storage and read; before this change it built it again;
- a later job on the same worker: read from its disk.

    python -m bench.preparation [--per-source N] [--s3 ENDPOINT BUCKET] [--jobs]

``--per-source`` cuts each collection to N tunes (0: all ~11,600, minutes of CPU). Objects
go to a local object store in a temporary directory unless ``--s3`` names an S3 server
(credentials from ``ATELIER_S3_*``). ``--reading`` measures only a job's read of a
whole-size corpus, now against before, side by side. ``--jobs`` measures real jobs
instead (TensorFlow):
two tiny ``melody`` jobs on ``folk`` on a stack of their own, the worker's disk emptied
between them, each one's wait from its start to step 1 and its phases.
"""

from __future__ import annotations

import argparse
import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from atelier.cli.processes import free_port
from atelier.cli.stack import EmbeddedStack
from atelier.client import Client, epoch_seconds
from atelier.shared.kinds.melody.abc import normalise
from atelier.shared.settings import Settings
from atelier.shared.storage import LocalObjectStore, ObjectStore, make_object_store
from atelier.workers.kinds.melody import folk
from atelier.workers.preparation import NO_PREPARATION
from atelier.workers.prepared import PreparedCorpora
from bench.common import BENCH_LIMITS, succeeded


def timed(step: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    tunes = step()
    return time.perf_counter() - started, tunes


def read_as_a_job(corpora: PreparedCorpora, per_source: int) -> int:
    """What ``read_tunes`` does for ``folk``: get the corpus, then load its tunes."""
    data = corpora.get(
        "folk",
        folk.recipe(per_source),
        lambda: folk.encode(folk.build(per_source=per_source)),
        NO_PREPARATION,
    )
    return len(folk.decode(data).parsed())


def reading_side_by_side(per_source: int, size: int = 11_211, rounds: int = 3) -> None:
    """Loading a corpus of ``size`` tunes (``per_source``'s tunes repeated) as a job
    reads it now, against normalising every tune's text again, as it did before."""
    with tempfile.TemporaryDirectory(prefix="atelier-prep-") as name:
        small = folk.cached(Path(name), per_source)
    corpus = folk.FolkCorpus((small.tunes * (size // len(small.tunes) + 1))[:size])
    data = folk.encode(corpus)
    for _ in range(rounds):
        before, _tunes = timed(lambda: len([normalise(t.text) for t in folk.decode(data).tunes]))
        after, _tunes = timed(lambda: len(folk.decode(data).parsed()))
        print(f"| {size} tunes | {before:.1f} | {after:.1f} |", flush=True)


def measure(objects: ObjectStore, directory: Path, per_source: int) -> list[tuple[str, float, int]]:
    first = PreparedCorpora(None, objects, directory / "worker-1")
    fresh = PreparedCorpora(None, objects, directory / "worker-2")
    rows = []
    for what, corpora in (
        ("first job: build, store, read", first),
        ("second job, a worker with an empty disk: download, read", fresh),
        ("a later job on the same worker: its disk, read", fresh),
    ):
        seconds, tunes = timed(functools.partial(read_as_a_job, corpora, per_source))
        rows.append((what, seconds, tunes))
        print(f"{what}: {seconds:.1f} s ({tunes} tunes)", flush=True)
    return rows


TINY_MELODY = {
    "dataset": "folk",
    "steps": 2,
    "batch_size": 4,
    "sequence_length": 32,
    "num_layers": 1,
    "num_heads": 2,
    "hidden_dim": 16,
    "sample_every": 2,
    "checkpoint_every": 2,
}


def wait_before_step_1(client: Client, job_id: str) -> tuple[float, dict[str, float]]:
    """Seconds from the job's start to its first step's progress, and how long each
    preparing phase (by label) showed."""
    events = [e["data"] for e in client.events(job_id) if e["event"] == "progress"]
    job = succeeded(client.get(job_id))
    started = epoch_seconds(str(job["started_at"]))
    stamps = [(p.get("label") or "", float(p["updated_at"]), p["step"]) for p in events]
    first_step = next(at for _, at, step in stamps if step >= 1)
    phases: dict[str, float] = {}
    for (label, at, step), (_, after, _) in zip(stamps, [*stamps[1:], stamps[-1]], strict=True):
        if step < 1 and label:
            phases[label] = phases.get(label, 0.0) + after - at
    return first_step - started, phases


def measure_jobs(directory: Path, per_source: int) -> None:
    base = Settings.from_env(
        {},
        data_dir=directory,
        log_format="text",
        progress_interval_seconds=0.5,
        folk_tunes_per_source=per_source,
        **BENCH_LIMITS,
    )
    running = EmbeddedStack(base, port=free_port(), worker_roles=("train",))
    settings = running.start()
    try:
        client = Client(settings.api_url, running.api_key, timeout=120)
        for what in ("first job", "second job, the worker's disk emptied"):
            if what.startswith("second"):
                shutil.rmtree(directory / "cache")
            waited, phases = wait_before_step_1(
                client, client.submit("train", "melody", TINY_MELODY)["id"]
            )
            shown = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in phases.items())
            print(f"| {what} | {waited:.1f} | {shown} |", flush=True)
    finally:
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-source", type=int, default=0)
    parser.add_argument("--s3", nargs=2, metavar=("ENDPOINT", "BUCKET"))
    parser.add_argument("--jobs", action="store_true")
    parser.add_argument("--reading", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    with tempfile.TemporaryDirectory(prefix="atelier-prep-") as name:
        directory = Path(name)
        if args.reading:
            print("| Corpus | Normalise again (before), s | Load (after), s |\n|---|---|---|")
            reading_side_by_side(args.per_source or 30)
            return
        if args.jobs:
            print("| Job | Seconds from start to step 1 | Preparing phases |\n|---|---|---|")
            measure_jobs(directory, args.per_source)
            return
        objects: ObjectStore = LocalObjectStore(directory / "objects")
        if args.s3:
            settings = Settings.from_env(
                storage="s3", s3_endpoint_url=args.s3[0], s3_bucket=args.s3[1]
            )
            objects = make_object_store(settings)
        rows = measure(objects, directory, args.per_source)
    print("\n| Job | Seconds | Tunes |\n|---|---|---|")
    for what, seconds, tunes in rows:
        print(f"| {what} | {seconds:.1f} | {tunes} |")


if __name__ == "__main__":
    main()
