"""One checkpoint format for every kind: named groups of variables (weights, optimizer
state) and the step, in one .npz."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from atelier.shared.errors import PermanentJobError

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
