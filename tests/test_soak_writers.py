"""The cluster soak's "no job has writes accepted from two attempts" check (soak.writers),
shown to pass honest histories and to fail crafted bad ones. No cluster, no TensorFlow."""

from __future__ import annotations

from atelier.shared.jobs import CheckpointRef, Job, JobStatus, JobType, OutputRef
from atelier.shared.models import ModelRecord
from atelier.shared.storage import ObjectLayout
from soak.writers import MARK, in_order, two_writers


def ref(fence: str, step: int, job_id: str = "job_1") -> OutputRef:
    key = ObjectLayout.sample("ana", job_id, fence, step)
    return OutputRef(
        name=f"samples/step-{step:07d}.png", key=key, content_type="image/png", size_bytes=1
    )


def output(fence: str, name: str = "grid.png") -> OutputRef:
    key = ObjectLayout.output("ana", "job_1", fence, name)
    return OutputRef(name=name, key=key, content_type="image/png", size_bytes=1)


def job(
    outputs: list[OutputRef],
    *,
    attempt: int,
    fence: str,
    job_type: JobType = JobType.TRAIN,
    status: JobStatus = JobStatus.SUCCEEDED,
    checkpoint: str | None = None,
    model_id: str | None = "model_1",
) -> Job:
    point = None
    if checkpoint is not None:
        point = CheckpointRef(step=25, key=ObjectLayout.checkpoint("ana", "job_1", checkpoint, 25))
    return Job(
        id="job_1",
        owner="ana",
        type=job_type,
        kind="dcgan",
        params={},
        created_at=0.0,
        status=status,
        attempt=attempt,
        fence=fence,
        outputs=outputs,
        checkpoint=point,
        model_id=model_id if job_type is JobType.TRAIN else None,
    )


def model(model_id: str = "model_1", samples: list[OutputRef] | None = None) -> ModelRecord:
    return ModelRecord(
        id=model_id,
        owner="ana",
        kind="dcgan",
        config={},
        weights_key=f"w/{model_id}",
        samples=samples or [],
        source_job_id="job_1",
        dataset="digits",
        steps=100,
        created_at=0.0,
    )


def test_a_job_resumed_by_later_attempts_passes() -> None:
    samples = [ref("1-aa", 50), ref("2-bb", 100), ref("2-bb", 150), ref("4-dd", 200)]
    finished = job(samples, attempt=4, fence="4-dd", checkpoint="2-bb")
    assert two_writers(finished, [model(samples=samples)]) == []


def test_an_attempt_writing_after_a_later_one_fails() -> None:
    stale = [ref("1-aa", 50), ref("2-bb", 100), ref("1-aa", 150)]
    problems = two_writers(job(stale, attempt=2, fence="2-bb"), [model()])
    assert problems == [f"job_1: {MARK}: 1-aa wrote again after 2-bb"]


def test_a_late_first_write_of_an_earlier_attempt_fails() -> None:
    assert in_order([(2, "2-bb"), (1, "1-aa")]) == ["1-aa wrote after 2-bb, a later attempt"]


def test_a_claim_lost_in_a_failover_that_wrote_fails() -> None:
    """Two claims made attempt 2 (the first lost with its primary): only one may write."""
    samples = [ref("1-aa", 50), ref("2-lost", 100), ref("2-bb", 150)]
    problems = two_writers(job(samples, attempt=2, fence="2-bb"), [model()])
    assert any("attempt 2 under two fences, 2-lost and 2-bb" in p for p in problems)
    assert any("an output by 2-lost, while attempt 2 is 2-bb" in p for p in problems)


def test_writes_of_an_attempt_the_record_never_reached_fail() -> None:
    problems = two_writers(job([ref("3-cc", 50)], attempt=2, fence="2-bb"), [model()])
    assert problems == [f"job_1: {MARK}: an output by 3-cc, after the record's attempt 2"]


def test_a_checkpoint_of_another_claim_of_the_same_attempt_fails() -> None:
    finished = job([ref("2-bb", 50)], attempt=2, fence="2-bb", checkpoint="2-zz")
    assert two_writers(finished, [model()]) == [
        f"job_1: {MARK}: its checkpoint by 2-zz, while attempt 2 is 2-bb"
    ]


def test_generation_outputs_all_come_from_the_finishing_attempt() -> None:
    good = job(
        [output("3-cc", "a.png"), output("3-cc", "b.png")],
        attempt=3,
        fence="3-cc",
        job_type=JobType.GENERATE,
    )
    assert two_writers(good, []) == []
    mixed = job(
        [output("2-bb", "a.png"), output("3-cc", "b.png")],
        attempt=3,
        fence="3-cc",
        job_type=JobType.GENERATE,
    )
    assert two_writers(mixed, []) == [f"job_1: {MARK}: output by 2-bb, finished by 3-cc"]


def test_a_training_job_has_its_one_model_exactly_once() -> None:
    finished = job([ref("1-aa", 50)], attempt=1, fence="1-aa")
    assert two_writers(finished, [model("model_1")]) == []
    twice = two_writers(finished, [model("model_1"), model("model_2")])
    assert twice == [f"job_1: {MARK}: models ['model_1', 'model_2'] name it, its record model_1"]
    assert two_writers(finished, []) != []
    failed = job([ref("1-aa", 50)], attempt=1, fence="1-aa", status=JobStatus.FAILED)
    assert two_writers(failed, [model("model_9")]) == [
        f"job_1: {MARK}: failed train job left model model_9"
    ]


def test_a_model_sample_of_a_stranger_attempt_fails() -> None:
    finished = job([ref("1-aa", 50)], attempt=1, fence="1-aa")
    strange = model(samples=[ref("1-aa", 50), ref("1-xx", 100)])
    assert two_writers(finished, [strange]) == [
        f"job_1: {MARK}: a model sample by 1-xx, while attempt 1 is 1-aa"
    ]
