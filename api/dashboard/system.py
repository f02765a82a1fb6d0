"""``GET /v1/system``: the queues and the workers, what Flower shows.

Queue depths come from Redis (the broker lists and the ``running`` lease index, as
``atelier_queue_depth`` reads them); workers are the Celery nodes that answer a broadcast
(``inspect().active_queues()``, half a second at most, remembered a few seconds per API
process so a page refreshing every few seconds costs one broadcast); what each runs is the
leased jobs whose worker process lives on the node's host and whose queue the node reads.
Another owner's job shows its kind and progress (its steps, or the phase preparing its data:
labels name what is done, never the owner's data), never its id.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from pydantic import BaseModel, Field
from spectree import Response

from ...shared.job_records import Phase
from ...shared.jobs import JobType
from ...shared.queue import queue_length
from ...shared.redis_keys import KEYS
from ..auth import current_owner
from ..bodies import PHASE_FIELDS
from ..services import services
from ..spec import spec
from ..views import v1

INSPECT_TIMEOUT_SECONDS = 0.5
WORKERS_CACHE_SECONDS = 3.0


class QueueOut(BaseModel):
    queue: str
    type: JobType
    waiting: int = Field(description="Messages in the broker list, not yet taken.")
    running: int = Field(description="Jobs of this type holding a lease.")


class RunningJobOut(BaseModel):
    job_id: str | None = Field(description="Null when the job is another owner's.")
    type: JobType
    kind: str
    worker: str | None = Field(description="`host:pid` of the process running it.")
    step: int
    total: int
    fraction: float
    lease_seconds_left: float = Field(description="Negative: the worker stopped renewing.")
    phase: Phase | None = Field(
        None, description="`preparing` until step 1 (its data), then `training`, as the job's."
    )
    label: str | None = Field(None, description="What the preparing phase does.")
    items_done: int | None = Field(None, description="The preparing phase's count so far.")
    items_total: int | None = None
    unit: str | None = None


class WorkerOut(BaseModel):
    name: str = Field(description="Celery node name, `queue-role@host`.")
    queues: list[str]
    running: list[RunningJobOut]


class SystemOut(BaseModel):
    queues: list[QueueOut]
    workers: list[WorkerOut] = Field(description="Nodes that answered within half a second.")
    running: list[RunningJobOut] = Field(description="Every leased job, with or without node.")


@v1.get("/system")
@spec.validate(  # type: ignore[untyped-decorator]  # spectree is untyped
    resp=Response(HTTP_200=SystemOut), tags=["system"]
)
def get_system() -> SystemOut:
    """Queue depths, the workers alive and what each runs."""
    return system_snapshot(current_owner())


def system_snapshot(owner: str) -> SystemOut:
    svc = services()
    running = _running_jobs(owner)
    queues = {
        JobType.TRAIN: svc.settings.train_queue,
        JobType.GENERATE: svc.settings.generate_queue,
    }
    depths = [
        QueueOut(
            queue=name,
            type=job_type,
            waiting=queue_length(svc.redis, name),
            running=sum(1 for r in running if r.type == job_type),
        )
        for job_type, name in queues.items()
    ]
    workers = []
    for node, node_queues in sorted(_nodes().items()):
        host = node.partition("@")[2]
        types = {t for t, q in queues.items() if q in node_queues}
        runs = [
            r for r in running if r.type in types and (r.worker or "").rpartition(":")[0] == host
        ]
        workers.append(WorkerOut(name=node, queues=node_queues, running=runs))
    return SystemOut(queues=depths, workers=workers, running=running)


def _running_jobs(owner: str) -> list[RunningJobOut]:
    svc = services()
    leases = cast(list[tuple[bytes, float]], svc.redis.zrange(KEYS.running, 0, -1, withscores=True))
    found = {job.id: job for job in svc.jobs.get_many([i.decode() for i, _ in leases])}
    now = time.time()
    shown = []
    for raw_id, expiry in leases:
        job = found.get(raw_id.decode())
        if job is None:
            continue
        shown.append(
            RunningJobOut(
                job_id=job.id if job.owner == owner else None,
                type=job.type,
                kind=job.kind,
                worker=job.worker,
                step=job.progress.step,
                total=job.progress.total,
                fraction=job.progress.fraction,
                lease_seconds_left=round(expiry - now, 1),
                **job.progress.model_dump(include=PHASE_FIELDS),
            )
        )
    return shown


_cache_lock = threading.Lock()
_cached: tuple[float, dict[str, list[str]]] = (0.0, {})


def _nodes() -> dict[str, list[str]]:
    """Node name -> queues it reads, from the nodes that answer (cached briefly)."""
    global _cached
    with _cache_lock:
        at, nodes = _cached
        if time.monotonic() - at < WORKERS_CACHE_SECONDS:
            return nodes
        replies: dict[str, Any] | None = None
        try:
            inspector = services().celery.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS)
            replies = inspector.active_queues()
        except Exception:  # the broker is down: no node answered
            replies = None
        nodes = {
            node: sorted(q.get("name", "") for q in queues or [])
            for node, queues in (replies or {}).items()
        }
        _cached = (time.monotonic(), nodes)
        return nodes
