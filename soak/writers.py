"""No job has writes accepted from two attempts, read from what each job finally holds.

Every write an attempt makes names its fence, the token its claim made
(``{attempt}-{random}``): Redis writes carry it and are refused once another fence holds
the job, objects live under ``a{fence}/``. So the final state says which attempt wrote
each thing a job holds, and in what order the writes were accepted:

- A record's outputs are appended in the order they were accepted. Along the list the
  fences never return to one that came before (A, B, A: A wrote after B held the job),
  never go down in attempt number, and never show two fences of one attempt number (a
  claim that a failover took back was never confirmed, so it must not have written).
- No fence a job holds (outputs, checkpoint, its model's samples) is of an attempt later
  than the record's, nor of its attempt number under another fence.
- A generation job's outputs are written by its finish: all by the finishing attempt.
- A succeeded training job has exactly one model naming it as its source, the one its
  record names; any other job has none. Its model's samples are of the job's attempts.

What the final state cannot show, and so what this does not claim to check: progress
(the record keeps only the newest write; ``ledger.Ledger.observe`` watches it going back)
and writes that a later, legitimate write replaced.
"""

from __future__ import annotations

from collections.abc import Iterable

from atelier.shared.jobs import Job, JobStatus, JobType, OutputRef
from atelier.shared.models import ModelRecord
from atelier.shared.storage import ObjectLayout

MARK = "two attempts wrote"
"""In every message of this module: the soak reports these as jobs run twice."""

Writer = tuple[int, str]
"""(attempt number, fence) of whoever wrote an object."""


def two_writers(job: Job, models: Iterable[ModelRecord]) -> list[str]:
    """What ``job`` (finished) holds that shows two attempts writing; ``models`` are all
    the models of its owner."""
    prefix = ObjectLayout.job_prefix(job.owner, job.id)
    outputs = writers_of(prefix, job.outputs)
    found = [*in_order(outputs), *beyond_record(job, outputs)]
    if job.checkpoint is not None:
        checkpoint = writers_of(prefix, [job.checkpoint.key])
        found += beyond_record(job, checkpoint, "its checkpoint")
    if job.type is JobType.GENERATE and job.status is JobStatus.SUCCEEDED:
        found += [
            f"output by {fence}, finished by {job.fence}"
            for _, fence in outputs
            if fence != job.fence
        ]
    found += _models(job, [m for m in models if m.source_job_id == job.id], prefix)
    return [f"{job.id}: {MARK}: {problem}" for problem in found]


def writers_of(job_prefix: str, refs: Iterable[OutputRef | str]) -> list[Writer]:
    """The writer of each object, in the given order (keys without one are skipped)."""
    keys = [ref if isinstance(ref, str) else ref.key for ref in refs]
    return [w for key in keys if (w := ObjectLayout.attempt_of(job_prefix, key)) is not None]


def in_order(writers: list[Writer]) -> list[str]:
    """Writers in the order their writes were accepted: one run each, attempts rising."""
    problems: list[str] = []
    fence_of: dict[int, str] = {}
    finished: set[str] = set()
    current: Writer | None = None
    for number, fence in writers:
        if fence_of.setdefault(number, fence) != fence:
            problems.append(f"attempt {number} under two fences, {fence_of[number]} and {fence}")
        if current is None or fence != current[1]:
            if fence in finished:
                problems.append(f"{fence} wrote again after {current and current[1]}")
            elif current is not None and number < current[0]:
                problems.append(f"{fence} wrote after {current[1]}, a later attempt")
            if current is not None:
                finished.add(current[1])
            current = (number, fence)
    return problems


def beyond_record(job: Job, writers: list[Writer], what: str = "an output") -> list[str]:
    """Writers the record's own attempt cannot have followed."""
    problems = []
    for number, fence in sorted(set(writers)):
        if number > job.attempt:
            problems.append(f"{what} by {fence}, after the record's attempt {job.attempt}")
        elif number == job.attempt and job.fence is not None and fence != job.fence:
            problems.append(f"{what} by {fence}, while attempt {number} is {job.fence}")
    return problems


def _models(job: Job, mine: list[ModelRecord], prefix: str) -> list[str]:
    trained = job.type is JobType.TRAIN and job.status is JobStatus.SUCCEEDED
    if not trained:
        return [f"{job.status.value} {job.type.value} job left model {m.id}" for m in mine]
    if [m.id for m in mine] != [job.model_id]:
        return [f"models {sorted(m.id for m in mine)} name it, its record {job.model_id}"]
    # Sorted by step, so not in the order they were accepted: a resumed attempt redoes
    # the steps after its checkpoint, and its samples sit among the earlier attempt's.
    return beyond_record(job, writers_of(prefix, mine[0].samples), "a model sample")
