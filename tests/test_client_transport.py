"""The client's transport against a socket server that drops connections: what is tried again
and what is not."""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest
import requests

from atelier.client import Client


class DroppingServer:
    """Answers HTTP on loopback, resetting (RST, as a restarted API or a closed keep-alive
    does) the first ``drops`` requests it reads; counts every request that arrived."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.requests: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                if not head:
                    continue
                self.requests.append(head.split(b"\r\n", 1)[0].decode())
                if len(self.requests) <= self.drops:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    continue
                body = json.dumps({"id": "j1", "status": "queued"}).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def dropping() -> Iterator[Callable[[int], DroppingServer]]:
    made: list[DroppingServer] = []

    def make(drops: int) -> DroppingServer:
        server = DroppingServer(drops)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def test_a_read_is_tried_again_after_a_reset(dropping: Callable[[int], DroppingServer]) -> None:
    server = dropping(2)
    client = Client(server.url, "k", max_retry_wait=0.05)
    assert client.get("j1")["status"] == "queued"
    assert server.requests == ["GET /v1/jobs/j1 HTTP/1.1"] * 3


def test_a_submit_is_tried_again_with_its_idempotency_key(
    dropping: Callable[[int], DroppingServer],
) -> None:
    server = dropping(1)
    client = Client(server.url, "k", max_retry_wait=0.05)
    assert client.submit("train", "dcgan", {"steps": 1})["id"] == "j1"
    assert server.requests == ["POST /v1/jobs HTTP/1.1"] * 2


def test_a_post_without_a_key_is_not_repeated(dropping: Callable[[int], DroppingServer]) -> None:
    """A cancel or key rotation may have been carried out before the reset: one try only."""
    server = dropping(1)
    client = Client(server.url, "k", max_retry_wait=0.05)
    with pytest.raises(requests.ConnectionError):
        client.rotate_key("key1")
    assert server.requests == ["POST /v1/keys/key1/rotate HTTP/1.1"]


def test_retries_end_after_max_retries(dropping: Callable[[int], DroppingServer]) -> None:
    server = dropping(10)
    client = Client(server.url, "k", max_retries=2, max_retry_wait=0.05)
    with pytest.raises(requests.ConnectionError):
        client.get("j1")
    assert len(server.requests) == 3
