"""The client's calls that find, label, compare and continue jobs (``Client`` inherits them):
filters and metric order of ``GET /v1/jobs``, ``PATCH /v1/jobs/{id}``, ``GET
/v1/jobs/compare``, and a training job that continues a model."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, cast

from atelier.client_types import Comparison, Job, Json

UNSET: Any = object()
"""A label left as it is (``None`` clears it)."""


def labels(name: str | None, tags: Iterable[str] | None, notes: str | None) -> Json:
    """A submit's label fields, those given."""
    given = {"name": name, "tags": list(tags) if tags is not None else None, "notes": notes}
    return {k: v for k, v in given.items() if v is not None}


class JobQueries:
    def request(self, method: str, path: str, **kwargs: Any) -> Json:
        raise NotImplementedError  # the transport: ``Client.request``

    def submit(self, job_type: str, kind: str, params: Json, **options: Any) -> Job:
        raise NotImplementedError  # ``Client.submit``

    def continue_training(self, model_ref: str, params: Json | None = None, **options: Any) -> Job:
        """Submit a training job that continues the model ``model_ref`` names (an id,
        ``name:latest`` or ``name:N``) for ``params["steps"]`` more steps: the params left
        out are the model's (its dataset, recipe and network shape; docs/kinds.md).
        ``options``: as ``submit`` takes them."""
        model = self.request("GET", f"/v1/models/{model_ref}")
        continued = {**(params or {}), "init_model": model["id"]}
        return self.submit("train", model["kind"], continued, **options)

    def jobs(
        self,
        *,
        tag: str | None = None,
        name_prefix: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        dataset: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Any,
    ) -> Json:
        """One page of the caller's jobs: ``{"data": [...], "next_cursor"}``, newest first, or
        by a final metric (``sort="val_loss"`` smallest first, ``"-val_loss"`` largest
        first; jobs without it last). ``filters``: others the API takes (``type``)."""
        given = dict(
            tag=tag, name_prefix=name_prefix, kind=kind, status=status, dataset=dataset,
            sort=sort, limit=limit, cursor=cursor, **filters,
        )
        query = {k: v for k, v in given.items() if v is not None and v != ""}
        return self.request("GET", "/v1/jobs", params=query)

    def all_jobs(self, *, cursor: str | None = None, **filters: Any) -> Iterator[Job]:
        """Every job ``jobs(**filters)`` finds, page after page (from ``cursor`` on)."""
        while True:
            page = self.jobs(**filters, cursor=cursor)
            yield from cast(list[Job], page["data"])
            cursor = page["next_cursor"]
            if cursor is None:
                return

    def update_job(
        self, job_id: str, *, name: str | None = UNSET, tags: Iterable[str] | None = UNSET,
        notes: str | None = UNSET,
    ) -> Job:
        """Change a job's labels, in any status: a label not passed stays, ``None`` clears
        it, ``tags`` replaces the set."""
        patch = {"name": name, "tags": tags if tags is None or tags is UNSET else list(tags)}
        patch["notes"] = notes
        body = {k: v for k, v in patch.items() if v is not UNSET}
        return cast(Job, self.request("PATCH", f"/v1/jobs/{job_id}", json=body))

    def compare(self, job_ids: Iterable[str]) -> Comparison:
        """2 to 8 of the caller's runs side by side: each one's params, final metrics,
        curves and latest samples, and ``differing_params`` (nested ones as dotted keys)."""
        ids = ",".join(job_ids)
        return cast(Comparison, self.request("GET", "/v1/jobs/compare", params={"ids": ids}))
