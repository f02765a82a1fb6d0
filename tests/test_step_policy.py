"""When a training run samples, logs, checkpoints and stops, and which checkpoints it
keeps (``workers.step_policy``): plain Python, no TensorFlow, so the fast tier checks it."""

from __future__ import annotations

import threading

from atelier.workers.context import StopReason
from atelier.workers.step_policy import Cadence, CheckpointLedger


def steps_where(cadence: Cadence, action: str, stop: StopReason | None = None) -> list[int]:
    return [
        step
        for step in range(1, cadence.total_steps + 1)
        if getattr(cadence.at(step, stop), action)
    ]


def test_samples_logs_and_checkpoints_come_at_their_multiples() -> None:
    cadence = Cadence(total_steps=10, sample_every=4, checkpoint_every=3)
    assert steps_where(cadence, "sample") == [4, 8]
    assert steps_where(cadence, "log") == [4, 8]  # as often as samples unless told
    assert steps_where(Cadence(10, 4, 3, log_every=5), "log") == [5, 10]
    assert steps_where(cadence, "checkpoint") == [3, 6, 9]
    # The last step stores the weights instead of a checkpoint.
    assert steps_where(Cadence(9, 4, 3), "checkpoint") == [3, 6]


def test_nothing_stops_a_run_that_is_not_asked_to() -> None:
    cadence = Cadence(10, 4, 3)
    assert steps_where(cadence, "stop") == steps_where(cadence, "checkpoint_and_wait") == []


def test_a_stop_is_obeyed_before_the_last_step_only() -> None:
    cadence = Cadence(10, 4, 3)
    for reason in StopReason:
        assert steps_where(cadence, "stop", reason) == list(range(1, 10)), reason
    assert not cadence.at(10, StopReason.CANCELED).stop  # the run is over: it succeeds


def test_a_draining_worker_checkpoints_and_waits_once_before_it_stops() -> None:
    """Only draining checkpoints (the job resumes elsewhere); a cancel, a deadline or a
    lost lease stop without one. On a checkpoint step the waited one is the only one."""
    cadence = Cadence(10, 4, 3)
    draining = cadence.at(6, StopReason.DRAINING)
    assert draining.stop and draining.checkpoint_and_wait and not draining.checkpoint
    assert cadence.at(5, StopReason.DRAINING).checkpoint_and_wait
    for reason in (StopReason.CANCELED, StopReason.DEADLINE, StopReason.LEASE_LOST):
        actions = cadence.at(6, reason)
        assert actions.stop and actions.checkpoint and not actions.checkpoint_and_wait
    assert not cadence.at(10, StopReason.DRAINING).checkpoint_and_wait


def test_a_finished_run_ends_with_a_sample_of_its_final_weights() -> None:
    cadence = Cadence(10, 5, 3)
    assert not cadence.owes_final_sample(10)
    assert cadence.owes_final_sample(5)
    assert cadence.owes_final_sample(0)


class Record:
    """The job record's checkpoint pointer; ``fenced``: a newer attempt holds the job."""

    def __init__(self, fenced: bool = False) -> None:
        self.fenced = fenced
        self.pointed: list[int] = []

    def point(self, step: int) -> bool:
        if not self.fenced:
            self.pointed.append(step)
        return not self.fenced


def test_the_newest_checkpoints_are_kept_and_the_pointer_never_moves_back() -> None:
    record = Record()
    ledger = CheckpointLedger(0, None, keep=2)
    assert ledger.stored(10, "k10", lambda: record.point(10)) == []
    assert ledger.stored(30, "k30", lambda: record.point(30)) == []
    # The upload of step 20 finished after step 30's: kept in order, never pointed at.
    assert ledger.stored(20, "k20", lambda: record.point(20)) == ["k10"]
    assert record.pointed == [10, 30] and ledger.pointed == 30
    assert ledger.stored(40, "k40", lambda: record.point(40)) == ["k20"]
    assert record.pointed == [10, 30, 40]


def test_a_resumed_run_counts_the_checkpoint_it_resumed_from() -> None:
    """The earlier attempt's checkpoint (under its own prefix) is deleted like this run's
    once enough newer ones are stored; a run never points back at or before it."""
    record = Record()
    ledger = CheckpointLedger(50, (50, "earlier/k50"), keep=1)
    assert ledger.stored(50, "k50", lambda: record.point(50)) == ["earlier/k50"]
    assert record.pointed == []
    assert ledger.stored(60, "k60", lambda: record.point(60)) == ["k50"]
    assert record.pointed == [60]


def test_at_least_one_checkpoint_is_kept() -> None:
    ledger = CheckpointLedger(0, None, keep=0)
    assert ledger.stored(1, "k1", lambda: True) == []
    assert ledger.stored(2, "k2", lambda: True) == ["k1"]


def test_a_fenced_off_attempt_points_at_nothing_and_deletes_nothing() -> None:
    record = Record()
    ledger = CheckpointLedger(0, (5, "earlier/k5"), keep=1)
    assert ledger.stored(10, "k10", lambda: record.point(10)) == ["earlier/k5"]
    record.fenced = True
    assert ledger.stored(20, "k20", lambda: record.point(20)) == []
    assert ledger.stored(30, "k30", lambda: record.point(30)) == []
    assert ledger.pointed == 10 and record.pointed == [10]


def test_uploads_finishing_on_many_threads_keep_exactly_the_newest() -> None:
    ledger = CheckpointLedger(0, None, keep=3)
    deleted: list[str] = []
    lock = threading.Lock()

    def store(step: int) -> None:
        stale = ledger.stored(step, f"k{step}", lambda: True)
        with lock:
            deleted.extend(stale)

    threads = [threading.Thread(target=store, args=(step,)) for step in range(1, 41)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.pointed == 40
    assert sorted(deleted) == sorted(f"k{step}" for step in range(1, 38))
