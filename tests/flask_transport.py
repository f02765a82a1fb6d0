"""A requests transport that answers from a Flask app in this process.

The fast tier runs the real app (``create_app``) against a real redis-server, without
gunicorn or a worker. Mounting this adapter on a ``requests.Session`` lets the public
``atelier.Client`` and plain ``session.get(...)`` calls reach that app unchanged: the
adapter turns each prepared request into a ``test_client()`` call and the answer back
into a ``requests.Response``."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import requests
from flask import Flask
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers


class FlaskTransport(BaseAdapter):
    def __init__(self, app: Flask) -> None:
        super().__init__()
        self._client = app.test_client()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        assert request.url is not None and request.method is not None
        body: Any = request.body
        if body is not None and hasattr(body, "read"):  # a streamed multipart upload
            body = body.read()
        answer = self._client.open(
            request.url,
            method=request.method,
            headers=dict(request.headers),
            data=body,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.reason = answer.status.partition(" ")[2]
        response.headers = CaseInsensitiveDict(dict(answer.headers.items()))
        response.encoding = get_encoding_from_headers(response.headers)
        response.raw = io.BytesIO(answer.get_data())
        response.url = request.url
        response.request = request
        answer.close()
        return response

    def close(self) -> None:
        """Nothing to release: no sockets."""


def session_for(app: Flask, base_url: str) -> requests.Session:
    """A session whose requests under ``base_url`` are answered by ``app``."""
    session = requests.Session()
    session.mount(base_url, FlaskTransport(app))
    return session
