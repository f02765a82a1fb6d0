"""The driver's client of the cluster soak's APIs: one per host, taken in turn.

Each call goes to the next API, and on to the others when one cannot be reached (its
host cut off, or restarting). Every submit sent that got no 2xx answer is counted in the
ledger, the client's own retries included: each may have made a job that was never
acknowledged (and counted it in ``atelier_jobs_submitted_total``) before a failover took
it back and its retry made it again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from atelier.client import Client, Json
from soak.ledger import Ledger

UNREACHABLE = (requests.ConnectionError, requests.Timeout)


class SpreadClient(Client):
    def __init__(
        self, api_urls: list[str], api_key: str, ledger: Ledger | None = None, **options: Any
    ) -> None:
        super().__init__(api_urls[0], api_key, **options)
        self.each = [
            Client(url, api_key, session=_counting_session(ledger), **options) for url in api_urls
        ]
        self._turn = itertools.count()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Callable[[BinaryIO], Json] | None = None,
        opener: Callable[[], AbstractContextManager[BinaryIO]] | None = None,
        **kwargs: Any,
    ) -> Json:
        first = next(self._turn)
        for n in range(len(self.each)):
            client = self.each[(first + n) % len(self.each)]
            try:
                return client.request(method, path, body=body, opener=opener, **kwargs)
            except UNREACHABLE:
                if n == len(self.each) - 1:
                    raise
        raise AssertionError("unreachable")


class SubmitCounter(HTTPAdapter):
    """Counts into ``ledger.unanswered_posts`` each ``POST /v1/jobs`` sent that did not
    come back 2xx (refused, timed out, or answered 5xx)."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__()
        self.ledger = ledger

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        submit = request.method == "POST" and urlsplit(request.url or "").path == "/v1/jobs"
        try:
            response = super().send(request, *args, **kwargs)
        except requests.RequestException:
            if submit:
                self._count()
            raise
        if submit and not 200 <= response.status_code < 300:
            self._count()
        return response

    def _count(self) -> None:
        with self.ledger.lock:
            self.ledger.unanswered_posts += 1


def _counting_session(ledger: Ledger | None) -> requests.Session:
    session = requests.Session()
    if ledger is not None:
        session.mount("http://", SubmitCounter(ledger))
    return session
