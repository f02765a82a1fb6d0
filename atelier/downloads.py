"""Resumable downloads of a job's outputs (``Client.download``).

A file is streamed to ``<name>.part`` 64 KiB at a time, never held whole in memory.
When the connection drops, the next try asks for the rest (``Range: bytes=<have>-``): the
API's files route and S3's presigned URLs both answer 206. A server that answers 200
instead sends the whole file again, and the part is started over. Once the size matches
what the job record says, the part is renamed into place, so a file under its own name is
always complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import requests

from atelier.following import TRANSIENT_ERRORS, Backoff

CHUNK_BYTES = 64 << 10
"""What a dropped connection can lose of what it carried (a chunk not yet written)."""
Getter = Callable[..., requests.Response]


def target_path(directory: Path, name: str) -> Path:
    """Where an output called ``name`` goes under ``directory``; a name that would leave
    it (``../x``, an absolute path) is refused."""
    path = (directory / name).resolve()
    if not path.is_relative_to(directory.resolve()):
        raise ValueError(f"output name {name!r} would be written outside {directory}")
    return path


def download_file(
    get: Getter, url: str, path: Path, size: int | None, tries: int, timeout: float
) -> Path:
    """Stream ``url`` to ``path``, resuming after a dropped connection up to ``tries``
    times; ``size`` (from the job record) says when the file is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    backoff = Backoff()
    for attempt in range(tries):
        try:
            if _fetch_rest(get, url, part, size, timeout):
                part.replace(path)
                return path
        except TRANSIENT_ERRORS:
            if attempt == tries - 1:
                raise
        time.sleep(backoff.next_wait())
    raise OSError(f"{url}: still incomplete after {tries} tries")


def _fetch_rest(get: Getter, url: str, part: Path, size: int | None, timeout: float) -> bool:
    """Append what ``part`` lacks; True once it is whole."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have == size:
        return True
    headers = {"Range": f"bytes={have}-"} if have else {}
    with get(url, headers=headers, stream=True, timeout=timeout) as response:
        if response.status_code == 416 and size is None:
            return True  # nothing after what we have: it is whole
        response.raise_for_status()
        mode = "ab" if response.status_code == 206 else "wb"
        with part.open(mode) as sink:
            for chunk in response.iter_content(CHUNK_BYTES):
                sink.write(chunk)
    return size is None or part.stat().st_size == size
