"""The client's sweep calls (``Client`` inherits them): ``POST /v1/sweeps``, read one ranked,
list, cancel."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

from atelier.client_jobs import labels
from atelier.client_types import Json, Sweep, SweepSummary


class SweepCalls:
    def request(self, method: str, path: str, **kwargs: Any) -> Json:
        raise NotImplementedError  # the transport: ``Client.request``

    def sweep(
        self,
        job_type: str,
        kind: str,
        params: Json,
        *,
        grid: dict[str, list[Any]] | None = None,
        random: Json | None = None,
        name: str | None = None,
        early_stopping: Json | None = None,
        **options: Any,
    ) -> Sweep:
        """Submit a sweep: a job of ``kind`` with ``params`` as its base, and ``grid``
        (dotted key -> values: every combination) or ``random`` (``{"count", "seed",
        "params": {key: {"choice" | "uniform" | "log_uniform": ..., "integer"}}}``);
        ``early_stopping``: ``{"metric": "val_loss"}`` stops clearly losing trials (the
        median rule). ``options``: ``idempotency_key``, and other fields of the base job
        (``priority``, ``tags``...). All or nothing: ``ApiError`` 422 names the first
        trial refused and its field."""
        key = options.pop("idempotency_key", None)
        base = {"type": job_type, "kind": kind, "params": params, **options}
        body: Json = {"base": base, **labels(name, None, None)}
        given = {"grid": grid, "random": random, "early_stopping": early_stopping}
        body.update({k: v for k, v in given.items() if v is not None})
        headers = {"Idempotency-Key": key or uuid.uuid4().hex}
        return cast(Sweep, self.request("POST", "/v1/sweeps", json=body, headers=headers))

    def get_sweep(self, sweep_id: str, *, metric: str | None = None) -> Sweep:
        """The sweep with its trials ranked by the final ``metric`` (``"val_loss"``
        smallest first, ``"-val_loss"`` largest first; trials without it last)."""
        query = {"metric": metric} if metric else {}
        return cast(Sweep, self.request("GET", f"/v1/sweeps/{sweep_id}", params=query))

    def sweeps(self, *, limit: int | None = None, cursor: str | None = None) -> Json:
        """One page of the caller's sweeps, newest first: ``{"data": [...], "next_cursor"}``."""
        query = {k: v for k, v in {"limit": limit, "cursor": cursor}.items() if v is not None}
        return self.request("GET", "/v1/sweeps", params=query)

    def all_sweeps(self) -> Iterator[SweepSummary]:
        cursor: str | None = None
        while True:
            page = self.sweeps(cursor=cursor)
            yield from cast(list[SweepSummary], page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def cancel_sweep(self, sweep_id: str) -> Sweep:
        """Cancel every trial still queued or running."""
        return cast(Sweep, self.request("POST", f"/v1/sweeps/{sweep_id}/cancel"))
