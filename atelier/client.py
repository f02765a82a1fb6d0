"""The Python client for Atelier's HTTP API (the CLI is built on it).

    from atelier import Client

    client = Client("http://127.0.0.1:8000", api_key)
    job = client.submit("train", "dcgan", {"steps": 800})
    job = client.wait(job["id"])
    client.download(job, "out/")

Answers 429 (rate limited) and 503 (a backing service is away) are retried after the
server's ``Retry-After`` (else the ``t`` of a spent budget in its ``RateLimit`` header, else
an exponential backoff), up to ``max_retries`` times; so is a dropped connection, for a
request that is safe to repeat. Every submit carries an ``Idempotency-Key``, so a retried
submit can never create a second job.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import requests

from atelier.client_jobs import JobQueries, labels
from atelier.client_models import ModelCalls
from atelier.client_sweeps import SweepCalls
from atelier.client_types import Dataset, Event, Job, Json, Model, Output, Progress, parse_sse
from atelier.downloads import download_file, target_path
from atelier.following import follow, retry_after_seconds, spent_budget_wait

__all__ = [
    "Dataset",
    "Event",
    "Job",
    "Json",
    "Model",
    "Output",
    "Progress",
    "parse_sse",
    "retry_after_seconds",
    "spent_budget_wait",
]

TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})
DEFAULT_API_URL = "http://127.0.0.1:8000"
RETRYABLE_STATUSES = frozenset({429, 503})
SAFE_TO_REPEAT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class ApiError(Exception):
    """A problem+json answer from the API (after any retries)."""

    def __init__(self, status: int, problem: Json) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")


def epoch_seconds(stamp: str) -> float:
    """A job timestamp from the API (ISO 8601, UTC) as seconds since the epoch."""
    return datetime.fromisoformat(stamp).timestamp()


class Client(JobQueries, SweepCalls, ModelCalls):
    """A typed client for one API key. ``max_retries`` bounds the retries of one call."""

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        max_retry_wait: float = 60.0,
        session: requests.Session | None = None,
    ) -> None:
        """``api_url`` and ``api_key`` default to ``ATELIER_API_URL`` and ``ATELIER_API_KEY``
        (as ``atelier up`` prints them). Read here, not through the service's settings: a
        client on a laptop must not need (or validate) the server's variables."""
        api_url = api_url or os.environ.get("ATELIER_API_URL") or DEFAULT_API_URL
        api_key = api_key or os.environ.get("ATELIER_API_KEY")
        if not api_key:
            raise ValueError("No API key: pass api_key, or set ATELIER_API_KEY.")
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.http = session or requests.Session()
        self.http.headers["Authorization"] = f"Bearer {api_key}"

    # --- jobs -------------------------------------------------------------------------------
    def submit(
        self,
        job_type: str,
        kind: str,
        params: Json,
        *,
        idempotency_key: str | None = None,
        wait: float | None = None,
        name: str | None = None,
        tags: list[str] | None = None,
        notes: str | None = None,
        **options: Any,
    ) -> Job:
        """Create a job, with a ``name``, ``tags`` and ``notes`` to find it by; ``options``
        are other body fields (``start_before``, …). With ``wait``, the answer comes when
        the job is over or after that many seconds (``Prefer: wait``, capped by the server)."""
        body = {"type": job_type, "kind": kind, "params": params, **labels(name, tags, notes)}
        body.update(options)
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex, **_prefer(wait)}
        return cast(
            Job,
            self.request("POST", "/v1/jobs", json=body, headers=headers, **self._longer(wait)),
        )

    def get(self, job_id: str, *, wait: float | None = None) -> Job:
        """The job; with ``wait``, once it is over or after that many seconds."""
        return cast(
            Job,
            self.request("GET", f"/v1/jobs/{job_id}", headers=_prefer(wait), **self._longer(wait)),
        )

    def metrics(self, job_id: str) -> Json:
        """A training job's loss and validation curves: ``{"series": {"train": [...]}}``."""
        return self.request("GET", f"/v1/jobs/{job_id}/metrics")

    def events(
        self, job_id: str | None = None, last_event_id: str | None = None
    ) -> Iterator[Event]:
        """Live events of one job (ending after its ``end`` event) or of all the caller's
        jobs (never ending), resuming with ``Last-Event-ID`` across reconnects."""
        path = f"/v1/jobs/{job_id}/events" if job_id else "/v1/events"
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            response = self._send(
                functools.partial(
                    self.http.get,
                    self.api_url + path,
                    headers=headers,
                    stream=True,
                    timeout=(10, 120),
                )
            )
            if response.status_code >= 400:
                raise ApiError(response.status_code, _problem(response))
            received = 0
            with response:
                for event in parse_sse(response.iter_lines(decode_unicode=True)):
                    last_event_id, received = event["id"], received + 1
                    yield event
                    if job_id and event["event"] == "end":
                        return
            # The server closes a job's stream early only once the job is over (its end
            # already seen); otherwise the stream reached its time limit: reconnect.
            if job_id and not received and self.get(job_id)["status"] in TERMINAL:
                return

    def _longer(self, wait: float | None) -> dict[str, Any]:
        """A read timeout that outlasts the server's wait."""
        return {} if wait is None else {"timeout": self.timeout + wait}

    def cancel(self, job_id: str) -> Job:
        return cast(Job, self.request("POST", f"/v1/jobs/{job_id}/cancel"))

    def logs(self, job_id: str) -> list[str]:
        lines: list[str] = self.request("GET", f"/v1/jobs/{job_id}/logs")["lines"]
        return lines

    def webhooks(self, job_id: str) -> list[Json]:
        """The job's webhook deliveries, newest first (status, attempts, last error)."""
        deliveries: list[Json] = self.request("GET", f"/v1/jobs/{job_id}/webhooks")["data"]
        return deliveries

    def webhook_secret(self, *, rotate: bool = False) -> str:
        """The secret that signs your webhooks (``whsec_...``); ``rotate`` makes a new one."""
        if rotate:
            return str(self.request("POST", "/v1/webhooks/secret/rotate")["key"])
        return str(self.request("GET", "/v1/webhooks/secret")["key"])

    def wait(
        self,
        job_id: str,
        on_update: Callable[[Job], None] | None = None,
        poll_seconds: float = 1.0,
        timeout: float | None = None,
    ) -> Job:
        """The job once it is over: long polls (``Prefer: wait``, one request a minute), or
        with ``on_update`` its event stream (``on_update`` sees each change); connection
        errors, API restarts and 5xx are ridden out for as long as ``timeout`` allows
        (``atelier.following``). ``TimeoutError`` after ``timeout``. ``poll_seconds``: the
        first interval of polling, where no stream can be had."""
        return follow(self, job_id, on_update, timeout, poll_seconds)

    def delete_job(self, job_id: str) -> None:
        """Delete a finished job: its record, events, logs and outputs (409 while it runs)."""
        self.request("DELETE", f"/v1/jobs/{job_id}")

    # --- datasets (models: ``atelier.client_models``) ----------------------------------------
    def datasets(self) -> list[Dataset]:
        return cast(list[Dataset], self.request("GET", "/v1/datasets")["data"])

    def dataset(self, name: str) -> Dataset:
        return cast(Dataset, self.request("GET", f"/v1/datasets/{name}"))

    def usage(self) -> Json:
        """Each quota (use and limit) and rate budget (what is left) of this key's owner."""
        return self.request("GET", "/v1/usage")

    def kinds(self) -> list[Json]:
        """The model kinds, each with the JSON Schemas of its train and generate params."""
        kinds: list[Json] = self.request("GET", "/v1/kinds")["data"]
        return kinds

    def api_keys(self) -> list[Json]:
        """The caller's API keys (needs an ``admin`` key), never the keys themselves."""
        found: list[Json] = self.request("GET", "/v1/keys")["data"]
        return found

    def create_key(
        self,
        name: str = "api",
        scopes: list[str] | None = None,
        expires_in_days: float | None = None,
    ) -> Json:
        """A new key for the caller's owner; its ``key`` field is shown this once."""
        body: Json = {"name": name, "expires_in_days": expires_in_days}
        if scopes is not None:
            body["scopes"] = scopes
        return self.request("POST", "/v1/keys", json=body)

    def revoke_key(self, key_id: str) -> None:
        self.request("DELETE", f"/v1/keys/{key_id}")

    def rotate_key(self, key_id: str) -> Json:
        return self.request("POST", f"/v1/keys/{key_id}/rotate")

    def audit(self, limit: int = 100) -> list[Json]:
        """The caller's audit trail, newest first."""
        found: list[Json] = self.request("GET", "/v1/audit", params={"limit": limit})["data"]
        return found

    def delete_dataset(self, name: str) -> None:
        self.request("DELETE", f"/v1/datasets/{name}")

    def upload_dataset(
        self,
        path: str | Path,
        *,
        title: str = "",
        image_size: int = 28,
        channels: int = 1,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Dataset:
        """Stream a dataset file to the API; ``on_progress(sent, total)`` as it goes. A
        retried upload reopens the file and starts again."""
        from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

        source = Path(path)

        def body(handle: BinaryIO) -> Json:
            encoder = MultipartEncoder(
                fields={
                    "title": title,
                    "image_size": str(image_size),
                    "channels": str(channels),
                    "file": (source.name, handle, "application/octet-stream"),
                }
            )
            monitor = MultipartEncoderMonitor(
                encoder, (lambda m: on_progress(m.bytes_read, m.len)) if on_progress else None
            )
            return {"data": monitor, "headers": {"Content-Type": monitor.content_type}}

        found = self.request("POST", "/v1/datasets", body=body, opener=lambda: source.open("rb"))
        return cast(Dataset, found)

    # --- outputs ----------------------------------------------------------------------------
    def fetch(self, url: str) -> bytes:
        """An output's bytes; API-routed URLs need our key, presigned ones must not get it."""
        own = url.startswith(self.api_url)
        getter = self.http.get if own else requests.get
        response = self._send(lambda: getter(url, timeout=self.timeout))
        response.raise_for_status()
        return response.content

    def download(self, job: Job | Json, directory: str | Path) -> list[Path]:
        """Save every output of a job under ``directory``, streamed to disk and resumed
        after a dropped connection (``atelier.downloads``); returns the paths written."""
        target = Path(directory)
        saved = []
        for output in job.get("outputs", []):
            own = output["url"].startswith(self.api_url)
            getter = self.http.get if own else requests.get  # presigned URLs get no key
            path = target_path(target, output["name"])
            saved.append(
                download_file(
                    getter,
                    output["url"],
                    path,
                    output.get("size_bytes"),
                    self.max_retries + 1,
                    self.timeout,
                )
            )
        return saved

    # --- transport --------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Callable[[BinaryIO], Json] | None = None,
        opener: Callable[[], AbstractContextManager[BinaryIO]] | None = None,
        **kwargs: Any,
    ) -> Json:
        """One API call, retried on 429/503; problem+json answers raise ``ApiError``.

        ``opener`` and ``body`` rebuild a streamed body for each try."""

        def attempt() -> requests.Response:
            with (opener or _no_file)() as handle:
                extra = body(handle) if body else {}
                return self.http.request(
                    method, self.api_url + path, **{"timeout": self.timeout, **kwargs, **extra}
                )

        headers = kwargs.get("headers") or {}
        repeatable = method.upper() in SAFE_TO_REPEAT or "Idempotency-Key" in headers
        response = self._send(attempt, repeatable=repeatable)
        if response.status_code >= 400:
            raise ApiError(response.status_code, _problem(response))
        if response.status_code == 204 or not response.content:
            return {}
        answer: Json = response.json()
        return answer

    def _send(
        self, attempt: Callable[[], requests.Response], *, repeatable: bool = True
    ) -> requests.Response:
        """``attempt`` until it answers other than 429/503. A dropped connection (a keep-alive
        the server closed while we waited, an API restart) is tried again only when
        ``repeatable``: a POST without an ``Idempotency-Key`` may have been carried out.

        Not urllib3's ``Retry``: it honours ``Retry-After`` but not the ``RateLimit``
        header's ``t`` when that is all a 429 carries, its method list cannot say "a POST
        with an Idempotency-Key", and it re-sends the same body object, which a streamed
        multipart upload has already consumed (``attempt`` rebuilds it each try)."""
        for retry in range(self.max_retries + 1):
            try:
                response = attempt()
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                if not repeatable or retry == self.max_retries:
                    raise
                time.sleep(retry_after_seconds(None, retry, self.max_retry_wait))
                continue
            if response.status_code not in RETRYABLE_STATUSES or retry == self.max_retries:
                return response
            header = response.headers.get("Retry-After") or spent_budget_wait(
                response.headers.get("RateLimit")
            )
            time.sleep(retry_after_seconds(header, retry, self.max_retry_wait))
        raise AssertionError("unreachable")


def _prefer(wait: float | None) -> dict[str, str]:
    return {} if wait is None else {"Prefer": f"wait={max(0, int(wait))}"}


def _no_file() -> AbstractContextManager[BinaryIO]:
    return cast(AbstractContextManager[BinaryIO], nullcontext(None))


def _problem(response: requests.Response) -> Json:
    try:
        problem = response.json()
    except ValueError:
        return {"detail": response.text}
    return problem if isinstance(problem, dict) else {"detail": response.text}
