"""One checkpoint format for every kind: named groups of variables (weights, optimizer
state) and the step, in one .npz."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ..shared.errors import NotFound, PermanentJobError
from ..shared.jobs import CheckpointRef

_STEP = re.compile(r"/checkpoints/step-(\d+)\.npz$")


class _Reads(Protocol):
    def get_bytes(self, key: str) -> bytes: ...

    def list_keys(self, prefix: str) -> list[str]: ...


Groups = Mapping[str, Sequence[Any]]
"""Group name → variables (anything ``np.asarray`` reads and that has ``assign``)."""


def encode_checkpoint(groups: Groups, step: int) -> bytes:
    arrays: dict[str, np.ndarray] = {"step": np.asarray(step)}
    for prefix, variables in groups.items():
        arrays.update({f"{prefix}/{i}": np.asarray(v) for i, v in enumerate(variables)})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def restore_checkpoint(groups: Groups, data: bytes) -> int:
    """Assign stored values to ``groups`` (built, same architecture); returns the step."""
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        for prefix, variables in groups.items():
            stored = sum(1 for name in arrays.files if name.startswith(f"{prefix}/"))
            if stored != len(variables):
                raise PermanentJobError(
                    f"checkpoint has {stored} '{prefix}' arrays, the network {len(variables)}"
                )
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"{prefix}/{i}"])
        return int(arrays["step"])


def checkpoint_groups(data: bytes) -> set[str]:
    """The names of the groups a checkpoint (or a model's weights file) holds."""
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return {name.partition("/")[0] for name in arrays.files if "/" in name}


def read_checkpoint(
    objects: _Reads,
    job_prefix: str,
    pointed: CheckpointRef,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger],
) -> bytes | None:
    """The checkpoint the job's record points at, or, when that object is gone, the newest
    one of this job still stored (None: none is, train from the start).

    A pointer can be older than the objects: pointers are not confirmed by a replica, so a
    Redis failover may take back the newest ones and leave one whose object the retention
    of checkpoints (the newest ``checkpoints_kept``) has since deleted. Failing the job
    for that would lose every step it made."""
    try:
        return objects.get_bytes(pointed.key)
    except NotFound:
        pass
    stored = sorted(
        (
            (int(found.group(1)), key)
            for key in objects.list_keys(job_prefix)
            if (found := _STEP.search(key))
        ),
        reverse=True,
    )
    for step, key in stored:
        try:
            data = objects.get_bytes(key)
        except NotFound:
            continue
        log.warning(
            "the checkpoint at step %d is gone; resuming from the one at step %d",
            pointed.step,
            step,
        )
        return data
    log.warning("the checkpoint at step %d is gone and no other is stored", pointed.step)
    return None
