"""Many open event streams in one process, for the events benchmark.

    python -m bench.sse_clients BASE_URL KEY:JOB_ID... --seconds 20

Opens one ``GET /v1/jobs/{id}/events`` per job id (with its owner's key), reads every
stream with one selector, and prints one JSON line: ``latencies`` (seconds from each
progress event's ``updated_at`` to its arrival here), ``events``, ``connected`` and
``errors``.

Hand-written on non-blocking sockets and HTTP/1.0 (no chunked framing to undo) so that 200
streams cost one thread on the machine's shared cores; a thread per stream on ``requests``
would measure its own scheduling as much as the server's latency.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import time
from typing import cast
from urllib.parse import urlsplit


def _connect(host: str, port: int, path: str, key: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
    sock.sendall((request + "Accept: text/event-stream\r\n\r\n").encode())
    sock.setblocking(False)
    return sock


def run(base: str, streams: list[str], seconds: float) -> dict[str, object]:
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    selector = selectors.DefaultSelector()
    buffers: dict[socket.socket, bytes] = {}
    for stream in streams:
        key, _, job_id = stream.rpartition(":")
        sock = _connect(host, port, f"/v1/jobs/{job_id}/events", key)
        selector.register(sock, selectors.EVENT_READ)
        buffers[sock] = b""
    latencies: list[float] = []
    answered: set[socket.socket] = set()
    errors, events = 0, 0
    until = time.time() + seconds
    while time.time() < until and buffers:
        for selected, _ in selector.select(timeout=0.5):
            sock = cast(socket.socket, selected.fileobj)
            chunk = sock.recv(65536)
            arrived = time.time()
            if not chunk:  # the server closed a stream that should have stayed open
                selector.unregister(sock)
                buffers.pop(sock)
                sock.close()
                errors += 1
                continue
            data = buffers[sock] + chunk
            if sock not in answered and b"\r\n\r\n" in data:
                status_line = data.split(b"\r\n", 1)[0]
                answered.add(sock)
                if b" 200 " not in status_line:
                    errors += 1
            *blocks, buffers[sock] = data.split(b"\n\n")
            for block in blocks:
                if b"event: progress" not in block:
                    continue
                events += 1
                line = next(x for x in block.split(b"\n") if x.startswith(b"data: "))
                latencies.append(arrived - json.loads(line[6:])["updated_at"])
    for sock in buffers:
        sock.close()
    return {"latencies": latencies, "events": events, "connected": len(answered), "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("streams", nargs="+", metavar="KEY:JOB_ID")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(run(args.base, args.streams, args.seconds)))


if __name__ == "__main__":
    main()
