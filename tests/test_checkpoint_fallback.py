"""Resuming when the checkpoint a job's record points at is gone (a failover took back the
newer pointers, and retention deleted the object the surviving one names): the newest
checkpoint still stored is used, or the job trains from the start; it never fails."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest

from atelier.shared.jobs import CheckpointRef
from atelier.shared.storage import LocalObjectStore, ObjectLayout
from atelier.workers.checkpoints import encode_checkpoint, read_checkpoint

PREFIX = ObjectLayout.job_prefix("ana", "job_1")
log = logging.getLogger(__name__)


def _store(tmp_path: Path, steps: dict[str, list[int]]) -> LocalObjectStore:
    """Checkpoints of each attempt's fence at the given steps."""
    objects = LocalObjectStore(tmp_path)
    for fence, numbers in steps.items():
        for step in numbers:
            key = ObjectLayout.checkpoint("ana", "job_1", fence, step)
            objects.put_bytes(key, encode_checkpoint({"w": [np.zeros(2)]}, step), "x")
    return objects


def _step_of(data: bytes | None) -> int | None:
    if data is None:
        return None
    with np.load(io.BytesIO(data)) as arrays:
        return int(arrays["step"])


def test_the_pointed_checkpoint_when_it_is_stored(tmp_path: Path) -> None:
    objects = _store(tmp_path, {"1-aa": [25, 50]})
    pointed = CheckpointRef(step=25, key=ObjectLayout.checkpoint("ana", "job_1", "1-aa", 25))
    assert _step_of(read_checkpoint(objects, PREFIX, pointed, log)) == 25


def test_the_newest_stored_when_the_pointed_one_is_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    objects = _store(tmp_path, {"1-aa": [75, 100], "2-bb": [60]})
    gone = CheckpointRef(step=50, key=ObjectLayout.checkpoint("ana", "job_1", "1-aa", 50))
    with caplog.at_level(logging.WARNING):
        assert _step_of(read_checkpoint(objects, PREFIX, gone, log)) == 100
    assert "step 50 is gone; resuming from the one at step 100" in caplog.text


def test_nothing_when_no_checkpoint_is_stored(tmp_path: Path) -> None:
    objects = _store(tmp_path, {})
    gone = CheckpointRef(step=50, key=ObjectLayout.checkpoint("ana", "job_1", "1-aa", 50))
    assert read_checkpoint(objects, PREFIX, gone, log) is None
