"""The client's model calls (``Client`` inherits them): list, read, delete, and export a
model (``GET /v1/models/{id}/export``) to a file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import requests

from atelier.client_types import Json, Model
from atelier.downloads import download_file
from atelier.following import retry_after_seconds

EXPORT_FORMATS = ("keras", "savedmodel")


class ModelCalls:
    api_url: str
    timeout: float
    max_retries: int
    max_retry_wait: float
    http: requests.Session

    def request(self, method: str, path: str, **kwargs: Any) -> Json:
        raise NotImplementedError  # the transport: ``Client.request``

    def _send(
        self, attempt: Callable[[], requests.Response], *, repeatable: bool = True
    ) -> requests.Response:
        raise NotImplementedError  # ``Client._send``

    def models(self) -> list[Model]:
        return cast(list[Model], self.request("GET", "/v1/models")["data"])

    def model(self, model_id: str) -> Model:
        """``model_id``: an id, ``name:N`` or ``name:latest``."""
        return cast(Model, self.request("GET", f"/v1/models/{model_id}"))

    def delete_model(self, model_id: str) -> None:
        """Delete a model, its weights and its exports."""
        self.request("DELETE", f"/v1/models/{model_id}")

    def export_model(
        self,
        model_ref: str,
        format: str = "keras",
        path: str | Path | None = None,
        *,
        timeout: float = 600.0,
    ) -> Path:
        """Save the model's export bundle (a zip: ``model.keras`` or ``saved_model/``, its
        tokenizer or vocabulary, ``generate.py`` and a README) to ``path`` (default
        ``<model_ref>-<format>.zip`` here), streamed to disk. The first request has a
        worker make it: this waits, as the API's ``Retry-After`` says, for up to
        ``timeout`` seconds (``TimeoutError`` after). ``ApiError`` for an unknown model or
        format, or an export that failed."""
        from atelier.client import ApiError, _problem

        url = f"{self.api_url}/v1/models/{model_ref}/export?format={format}"
        target = Path(path) if path else Path(f"{model_ref.replace(':', '-')}-{format}.zip")
        deadline = time.monotonic() + timeout
        tries = 0
        while True:
            response = self._send(lambda: self._peek(url))
            if response.status_code >= 400:
                raise ApiError(response.status_code, _problem(response))
            if response.status_code != 202:
                # Ready: streamed (and resumed) from the API, or from the presigned URL it
                # redirects to, which requests fetches without our key (another host).
                return download_file(
                    self.http.get, url, target, None, self.max_retries + 1, self.timeout
                )
            wait = retry_after_seconds(response.headers.get("Retry-After"), tries, 10.0)
            if time.monotonic() + wait > deadline:
                raise TimeoutError(f"the {format} export of {model_ref} is still being made")
            time.sleep(wait)
            tries += 1

    def _peek(self, url: str) -> requests.Response:
        """The export's status, without reading a ready bundle's bytes."""
        response = self.http.get(url, timeout=self.timeout, allow_redirects=False, stream=True)
        if response.status_code < 400 and response.status_code != 202:
            response.close()
        return response
