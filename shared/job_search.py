"""Finding an owner's jobs: the filters of ``GET /v1/jobs`` (and the dashboard's list) and
the order by a final metric.

Cost, with N the owner's jobs (or the tag's, with ``tag``: its own index,
``shared.job_labels``):

- **newest first** (the default): a page reads the index from the cursor on, in id order,
  and the records it passes, until ``limit`` match or ``SCAN_BUDGET`` records were read;
  then the page is short and its cursor resumes the scan where it stopped. A tag filter
  reads only that tag's jobs; status, type, kind, dataset and name prefix are checked on
  the records read (kind and dataset never change, but jobs made before an index existed
  would be missing from one: the scan needs none).
- **by a metric** (``sort=val_loss``, ``sort=-val_loss`` for largest first): the newest
  ``SORT_WINDOW`` jobs (of the tag) are read, filtered and ordered on every page; the
  cursor is the last row's place in that order (metric, id), so a page never repeats or
  skips a row while jobs come and go. Jobs without the metric (or NaN) come last, newest
  first; ties too.

The metric is a *final* one: the job's ``metrics`` (a finished training job's last
losses, ``val_loss`` among them; a generation's ``predict_time``...), not a running job's
progress.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import ValidationFailed
from .job_indexes import JobIndexes
from .job_records import Job, JobStatus, JobType

SCAN_BUDGET = 5000
"""Records one newest-first page reads at most before answering (a short page and a
cursor)."""
SORT_WINDOW = 5000
"""Newest jobs (of the tag) a metric order ranks; older ones are not in it."""
SORT_PATTERN = r"^-?[A-Za-z_][A-Za-z0-9_.]{0,63}$"

SortKey = tuple[int, float, str]


@dataclass(frozen=True)
class JobFilter:
    status: JobStatus | None = None
    type: JobType | None = None
    kind: str | None = None
    tag: str | None = None
    name_prefix: str | None = None
    """Case-insensitive."""
    dataset: str | None = None
    """``params.dataset``: what a training job trains on."""

    def narrows(self) -> bool:
        """Whether ``matches`` turns away jobs its index holds (a tag has an index)."""
        return any(
            value is not None
            for value in (self.status, self.type, self.kind, self.name_prefix, self.dataset)
        )

    def matches(self, job: Job) -> bool:
        prefix = self.name_prefix.casefold() if self.name_prefix else None
        return (
            (self.status is None or job.status == self.status)
            and (self.type is None or job.type == self.type)
            and (self.kind is None or job.kind == self.kind)
            and (self.tag is None or self.tag in job.tags)
            and (prefix is None or (job.name or "").casefold().startswith(prefix))
            and (self.dataset is None or job.params.get("dataset") == self.dataset)
        )


@dataclass(frozen=True)
class MetricOrder:
    metric: str
    descending: bool = False

    @classmethod
    def parse(cls, sort: str) -> MetricOrder:
        """``val_loss`` (smallest first) or ``-val_loss`` (largest first)."""
        return cls(sort.removeprefix("-"), sort.startswith("-"))

    def key(self, job: Job) -> SortKey:
        value = job.metrics.get(self.metric)
        if value is None or math.isnan(value):
            return (1, 0.0, job.id)
        return (0, -value if self.descending else value, job.id)


def find_jobs(
    store: JobIndexes,
    owner: str,
    where: JobFilter,
    *,
    limit: int,
    cursor: str | None = None,
    sort: str | None = None,
) -> tuple[list[Job], str | None]:
    """A page of the owner's jobs that match ``where``, and the next page's cursor."""
    if sort is None:
        return store.list_for_owner(
            owner, limit=limit, cursor=cursor, where=where.matches, tag=where.tag,
            scan_budget=SCAN_BUDGET, narrowed=where.narrows(),
        )
    order = MetricOrder.parse(sort)
    after = _parse_cursor(cursor) if cursor else None
    window = [j for j in store.newest_for_owner(owner, SORT_WINDOW, where.tag) if where.matches(j)]
    newest_first = sorted(window, key=lambda j: j.id, reverse=True)
    ranked = sorted(newest_first, key=lambda j: order.key(j)[:2])  # stable: ties stay so
    rest = [j for j in ranked if after is None or _comes_after(order.key(j), after)]
    page = rest[:limit]
    more = len(rest) > limit
    return page, _cursor(order.key(page[-1])) if more else None


def _comes_after(key: SortKey, cursor: SortKey) -> bool:
    """Whether a row of ``key`` is later in the order than the cursor's row: by (missing,
    value) ascending, then id descending (newest first)."""
    return key[:2] > cursor[:2] or (key[:2] == cursor[:2] and key[2] < cursor[2])


def _cursor(key: SortKey) -> str:
    return f"{key[0]}~{key[1]!r}~{key[2]}"


def _parse_cursor(text: str) -> SortKey:
    try:
        missing, value, job_id = text.split("~", 2)
        key = (int(missing), float(value), job_id)
    except ValueError:
        key = None
    if key is None or key[0] not in (0, 1) or math.isnan(key[1]):
        message = "not a cursor of this order: pass next_cursor of the previous page"
        errors = [{"field": "cursor", "message": message}]
        raise ValidationFailed(f"cursor: {message}", errors=errors)
    return key
