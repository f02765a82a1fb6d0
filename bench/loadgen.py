"""A closed-loop HTTP/1.1 load generator, run in its own process by the polling benchmark.

    python -m bench.loadgen URL --seconds 5 --connections 8 [--header 'Name: value']

Prints one JSON line: requests, seconds, requests_per_second, p50_ms, p99_ms, errors.

Hand-written on asyncio streams with keep-alive, because the server under test shares
the machine's 2 cores: a generator built on `requests` and threads spent more CPU per
request than the minimal Flask route it was measuring, which would flatten every ratio
towards 1. This one parses just the status line and Content-Length.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

REQUESTS_PER_CONNECTION = 50


async def _connection(
    host: str, port: int, request: bytes, until: float, latencies: list[float], errors: list[str]
) -> None:
    while time.perf_counter() < until:
        await _keep_alive_run(host, port, request, until, latencies, errors)


async def _keep_alive_run(
    host: str, port: int, request: bytes, until: float, latencies: list[float], errors: list[str]
) -> None:
    """REQUESTS_PER_CONNECTION requests on one connection. Reconnecting spreads the load
    over the server's processes: with connections held for a whole run, one gunicorn
    worker sometimes accepted most of them and the figure halved from run to run."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for _ in range(REQUESTS_PER_CONNECTION):
            if time.perf_counter() >= until:
                return
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(str(status))
    finally:
        writer.close()


async def _run(url: str, headers: list[str], seconds: float, connections: int) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path}{'?' + parts.query if parts.query else ''} HTTP/1.1"]
    lines += [f"Host: {host}:{port}", *headers, "", ""]
    request = "\r\n".join(lines).encode()
    latencies: list[float] = []
    errors: list[str] = []
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(
        *(_connection(host, port, request, until, latencies, errors) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "requests_per_second": len(latencies) / elapsed,
        "p50_ms": ordered[len(ordered) // 2] * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
        "errors": len(errors),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_run(args.url, args.header, args.seconds, args.connections))))


if __name__ == "__main__":
    main()
