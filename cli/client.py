"""The Python client for Atelier's HTTP API (the CLI is built on it).

client = AtelierClient("http://127.0.0.1:8000", api_key)
job = client.submit("train", "dcgan", {"steps": 800})
job = client.wait(job["id"])
client.download(job, "out/")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

TERMINAL = {"succeeded", "failed", "canceled", "expired"}
Json = dict[str, Any]


class ApiError(Exception):
    """A problem+json answer from the API."""

    def __init__(self, status: int, problem: Json) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}")


def epoch_seconds(stamp: str) -> float:
    """A job timestamp from the API (ISO 8601, UTC) as seconds since the epoch."""
    return datetime.fromisoformat(stamp).timestamp()


class AtelierClient:
    def __init__(self, api_url: str, api_key: str, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {api_key}"

    def _request(self, method: str, path: str, **kwargs: Any) -> Json:
        response = self._session.request(
            method, f"{self.api_url}{path}", timeout=self.timeout, **kwargs
        )
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            raise ApiError(response.status_code, problem)
        body: Json = response.json()
        return body

    def submit(self, job_type: str, kind: str, params: Json) -> Json:
        return self._request(
            "POST", "/v1/jobs", json={"type": job_type, "kind": kind, "params": params}
        )

    def job(self, job_id: str) -> Json:
        return self._request("GET", f"/v1/jobs/{job_id}")

    def jobs(self, **filters: Any) -> Json:
        return self._request("GET", "/v1/jobs", params={k: v for k, v in filters.items() if v})

    def cancel(self, job_id: str) -> Json:
        return self._request("POST", f"/v1/jobs/{job_id}/cancel")

    def upload_dataset(
        self,
        path: str | Path,
        *,
        title: str = "",
        image_size: int = 28,
        channels: int = 1,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> Json:
        """Stream a dataset file to the API; ``on_progress(sent, total)`` as it goes."""
        from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

        path = Path(path)
        with path.open("rb") as handle:
            encoder = MultipartEncoder(
                fields={
                    "title": title,
                    "image_size": str(image_size),
                    "channels": str(channels),
                    "file": (path.name, handle, "application/octet-stream"),
                }
            )
            monitor = MultipartEncoderMonitor(
                encoder,
                (lambda m: on_progress(m.bytes_read, m.len)) if on_progress else None,
            )
            return self._request(
                "POST", "/v1/datasets", data=monitor, headers={"Content-Type": monitor.content_type}
            )

    def datasets(self) -> Json:
        return self._request("GET", "/v1/datasets")

    def dataset(self, name: str) -> Json:
        return self._request("GET", f"/v1/datasets/{name}")

    def delete_dataset(self, name: str) -> None:
        response = self._session.delete(f"{self.api_url}/v1/datasets/{name}", timeout=self.timeout)
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.json())

    def logs(self, job_id: str) -> list[str]:
        lines: list[str] = self._request("GET", f"/v1/jobs/{job_id}/logs")["lines"]
        return lines

    def models(self) -> Json:
        return self._request("GET", "/v1/models")

    def model(self, model_id: str) -> Json:
        return self._request("GET", f"/v1/models/{model_id}")

    def wait(
        self,
        job_id: str,
        on_update: Callable[[Json], None] | None = None,
        poll_seconds: float = 0.5,
        timeout: float | None = None,
    ) -> Json:
        """Poll until the job is finished; ``on_update`` sees every poll."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_update:
                on_update(job)
            if job["status"] in TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s")
            time.sleep(poll_seconds)

    def fetch(self, url: str) -> bytes:
        """An output's bytes; API-routed URLs need our key, presigned ones must not get it."""
        own = url.startswith(self.api_url)
        getter = self._session.get if own else requests.get
        response = getter(url, timeout=self.timeout)
        response.raise_for_status()
        return response.content

    def download(self, job: Json, directory: str | Path) -> list[Path]:
        """Save every output of a job (or a model's sample grid) under ``directory``."""
        target = Path(directory)
        saved = []
        for output in job.get("outputs", []):
            path = target / output["name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.fetch(output["url"]))
            saved.append(path)
        return saved
