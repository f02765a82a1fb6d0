"""Atelier's one error tree.

::

    AtelierError
    ├── ProblemError              an HTTP problem (RFC 9457); ``slug`` is its stable ``type``
    │   ├── MalformedRequest      400 body is not JSON, or not an object
    │   ├── Unauthorized          401 missing or unknown API key
    │   ├── QuotaExceeded         403 a hard quota is used up; names it, its usage and limit
    │   ├── MissingScope          403 the API key lacks the route's scope; names it
    │   ├── CsrfFailed            403 a session-cookie change without its CSRF token
    │   ├── NotFound              404 no such job/model/file *for this owner*
    │   ├── Conflict              409 the request does not fit the resource's state
    │   ├── PayloadTooLarge       413 body over ``max_request_bytes``, an upload over a limit
    │   ├── ValidationFailed      422 a field is wrong; ``errors`` names each field
    │   │   ├── UnknownKind       422 ``kind`` is not in the plug-in table
    │   │   ├── UnknownDataset    422 ``params.dataset`` names no dataset
    │   │   ├── UnknownModel      422 ``params.model_id`` names no model of this owner
    │   │   ├── TooLarge          422 the job's estimated memory or output does not fit
    │   │   ├── InvalidUpload     422 an uploaded dataset is corrupt, lies, or cannot be used
    │   │   └── IdempotencyKeyReused 422 same Idempotency-Key, different body
    │   ├── ExportFailed          500 a model's export could not be made; asking again retries
    │   ├── RateLimited           429 a rate budget is spent; ``Retry-After`` says when to retry
    │   └── ServiceUnavailable    503 Redis or storage is unreachable; ``Retry-After``
    │       └── NotReplicated     503 a write was made but too few replicas confirmed it
    └── JobError                  raised inside a running job; the runner maps it to a status
        ├── JobCanceled           the job saw its cancel flag and stopped cooperatively → canceled
        ├── JobPreempted          its worker is shutting down; checkpointed → queued (no failure)
        ├── LeaseLost             the reaper gave the job to another worker → write nothing
        ├── StartDeadlineMissed   its start_before passed while it waited → expired (the reaper)
        ├── TransientJobError     may succeed later → queued with backoff, counts an attempt
        │   ├── StorageUnavailable  the object store kept failing past the retry window
        │   └── WorkerLost        its worker stopped renewing the lease (killed, OOM, cut off)
        └── PermanentJobError     bad data or params: fail at once, never retry → failed
            └── DeadlineExceeded  ran longer than its max_run_seconds

Beside the two branches, ``WebhookRefused``: a webhook URL, or an address its host resolves
to, that Atelier will not call (the submit answers 422; a delivery to it is given up).

Retry decisions are expressed by exception type, never by string matching; the attempt
count, the cap and the backoff are one policy (``JobStore.attempt_failed``), whether the
runner saw the failure or the reaper found the lease expired. A job record's
``error.type`` is the class name.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_PREFIX = "urn:atelier:problem:"


class AtelierError(Exception):
    """Root of every error Atelier raises on purpose."""


class ProblemError(AtelierError):
    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions

    @property
    def type_uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.slug

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type_uri,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class MalformedRequest(ProblemError):
    status, slug, title = 400, "malformed-request", "Malformed request body"


class Unauthorized(ProblemError):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"


class QuotaExceeded(ProblemError):
    """Raised with ``quota``, ``usage`` and ``limit`` extensions: nothing was stored."""

    status, slug, title = 403, "quota-exceeded", "Quota exceeded"
    item: int = 0
    """Of several jobs admitted together (a sweep's trials), the first that did not fit."""


class MissingScope(ProblemError):
    """Raised with a ``scope`` extension: the scope the route needs."""

    status, slug, title = 403, "missing-scope", "The API key lacks a scope"


class CsrfFailed(ProblemError):
    """A dashboard session's cookie came without the session's CSRF token: a change made
    with the cookie alone may have been forged by another site."""

    status, slug, title = 403, "csrf-failed", "Missing or wrong CSRF token"


class NotFound(ProblemError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ProblemError):
    status, slug, title = 409, "conflict", "Conflict with the resource's current state"


class PayloadTooLarge(ProblemError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class ValidationFailed(ProblemError):
    status, slug, title = 422, "validation-failed", "Request failed validation"


class UnknownKind(ValidationFailed):
    slug, title = "unknown-kind", "Unknown model kind"


class UnknownDataset(ValidationFailed):
    slug, title = "unknown-dataset", "Unknown dataset"


class UnknownModel(ValidationFailed):
    slug, title = "unknown-model", "Unknown model"


class TooLarge(ValidationFailed):
    slug, title = "too-large", "Job too large for a worker"


class InvalidUpload(ValidationFailed):
    slug, title = "invalid-upload", "The uploaded dataset cannot be used"


class IdempotencyKeyReused(ValidationFailed):
    slug, title = "idempotency-key-reused", "Idempotency-Key reused with a different body"


class ExportFailed(ProblemError):
    status, slug, title = 500, "export-failed", "The model's export could not be made"


class RateLimited(ProblemError):
    """Raised with ``retry_after`` (whole seconds); the API adds the headers."""

    status, slug, title = 429, "rate-limited", "Too many requests"


class ServiceUnavailable(ProblemError):
    status, slug, title = 503, "service-unavailable", "A backing service is unavailable"


class NotReplicated(ServiceUnavailable):
    """Fewer than ``ATELIER_REDIS_MIN_REPLICAS`` replicas confirmed a write in time: it may
    not survive a failover, so it is not acknowledged (``shared.durability``)."""

    slug, title = "not-replicated", "The write was not confirmed by enough replicas"


class JobError(AtelierError):
    """Raised inside a running job."""


class JobCanceled(JobError):
    """The job noticed its cancel flag and stopped at a step boundary."""


class JobPreempted(JobError):
    """The worker is shutting down; the job checkpointed and goes back to the queue."""


class LeaseLost(JobError):
    """The lease expired and the job was requeued: another run owns it now."""


class TransientJobError(JobError):
    """A failure that may not happen again (a service outage): retry with backoff."""


class StorageUnavailable(TransientJobError):
    """The object store kept failing for longer than the upload retry window."""


class WorkerLost(TransientJobError):
    """The job's worker stopped renewing its lease: killed, out of memory, or cut off.
    Raised by no one: the reaper records it when it takes the job back."""


class StartDeadlineMissed(JobError):
    """The job's ``start_before`` passed while it waited in the queue; it never ran."""


class PermanentJobError(JobError):
    """The job cannot succeed on a re-run (bad data, missing model): fail at once."""


class DeadlineExceeded(PermanentJobError):
    """The job ran longer than its ``max_run_seconds``."""


class WebhookRefused(AtelierError, ValueError):
    """A webhook URL Atelier will not call (``shared.webhook_urls`` says why): the submit
    answers 422, a delivery to it is given up at once rather than retried."""
