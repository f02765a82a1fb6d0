"""One webhook POST, through the SSRF guard (``shared.webhook_urls``).

The host is resolved once and every address it gives is vetted; the connection goes to the
vetted address itself (``Host`` and TLS's server name stay the URL's host, so certificates
are checked against the name), so the name cannot be rebound between check and connect.
No redirect is followed (a 3xx is a failed attempt: following it would reach an address
nobody vetted). Connecting is bounded by one timeout and the whole attempt by another (a
timer shuts the socket, so a receiver dripping its answer byte by byte is cut off too), and
at most ``max_response_bytes`` of the answer are ever read.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from ..shared.errors import WebhookRefused
from ..shared.settings import Settings
from ..shared.webhook_urls import (
    Resolver,
    UnresolvedHost,
    check_webhook_url,
    resolve_host,
    vetted_address,
)
from ..shared.webhooks import Outcome

READ_CHUNK = 8192


@dataclass(frozen=True)
class HttpLimits:
    connect_timeout: float = 5.0
    total_timeout: float = 15.0
    max_response_bytes: int = 65536
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            connect_timeout=settings.webhook_connect_timeout_seconds,
            total_timeout=settings.webhook_timeout_seconds,
            max_response_bytes=settings.webhook_max_response_bytes,
            allow_private=settings.webhook_allow_private,
        )


@dataclass
class HttpResult:
    outcome: Outcome
    bytes_read: int = 0
    """Bytes of the answer's body read (at most ``max_response_bytes``)."""


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    limits: HttpLimits,
    resolver: Resolver = resolve_host,
) -> HttpResult:
    """POST ``body`` to ``url``; never raises for what the network or receiver does."""
    try:
        parts = check_webhook_url(url, limits.allow_private)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = vetted_address(host, port, limits.allow_private, resolver)
    except WebhookRefused as exc:
        return HttpResult(Outcome(error=f"refused: {exc}", retry=False))
    except UnresolvedHost as exc:
        return HttpResult(Outcome(error=str(exc)))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        sock = _connect(str(address), port, host, parts.scheme == "https", limits)
    except (OSError, ssl.SSLError) as exc:
        # The host as the owner wrote it, not the address it resolved to (internal DNS).
        return HttpResult(Outcome(error=f"connect to {host}:{port}: {_describe(exc)}"))
    return _exchange(sock, host, port, target, body, headers, limits)


def _connect(address: str, port: int, host: str, tls: bool, limits: HttpLimits) -> socket.socket:
    sock = socket.create_connection((address, port), timeout=limits.connect_timeout)
    if not tls:
        return sock
    try:
        return ssl.create_default_context().wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def _exchange(
    sock: socket.socket,
    host: str,
    port: int,
    target: str,
    body: bytes,
    headers: dict[str, str],
    limits: HttpLimits,
) -> HttpResult:
    """Send the request on ``sock`` and read the status and a bounded part of the answer,
    all within ``total_timeout``."""
    deadline = time.monotonic() + limits.total_timeout
    sock.settimeout(limits.total_timeout)
    watchdog = threading.Timer(limits.total_timeout, _shut, args=(sock,))
    watchdog.daemon = True
    watchdog.start()
    connection = http.client.HTTPConnection(host, port)
    connection.sock = sock  # already connected, to the vetted address
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        read = _read_bounded(response, limits.max_response_bytes, deadline)
    except (OSError, http.client.HTTPException) as exc:
        late = time.monotonic() >= deadline
        error = f"no answer within {limits.total_timeout:g}s" if late else _describe(exc)
        return HttpResult(Outcome(error=error))
    finally:
        watchdog.cancel()
        connection.close()
    return HttpResult(_judge(response.status), read)


def _read_bounded(response: http.client.HTTPResponse, limit: int, deadline: float) -> int:
    """Read at most ``limit`` bytes of the body (the rest is never read) and return the
    count; only so a keep-alive-minded receiver sees us take its answer."""
    read = 0
    while read < limit and time.monotonic() < deadline:
        chunk = response.read(min(READ_CHUNK, limit - read))
        if not chunk:
            break
        read += len(chunk)
    return read


def _judge(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome(status_code=status)
    if 300 <= status < 400:
        return Outcome(status_code=status, error=f"HTTP {status}: redirects are not followed")
    return Outcome(status_code=status, error=f"HTTP {status}")


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
