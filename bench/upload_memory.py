"""Peak memory of an API process while it checks the hostile uploads of ``tests.hostile``.

One gunicorn API process (the production entry point, default upload limits: 64 MiB sent,
20,000 entries, 512 MiB expanded) on a redis-server of its own and local storage. Before
each upload the process's peak RSS is reset (``/proc/PID/clear_refs`` 5) and after it
``VmHWM`` is read for the API process, and sampled for the processes it starts (ABC tunes
are read in one). Run ``python -m bench.upload_memory`` from the repository's root.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from atelier.cli.processes import (
    ManagedProcess,
    api_argv,
    child_env,
    free_port,
    start_redis,
    wait_until,
)
from atelier.shared.auth import ApiKeyStore
from atelier.shared.redis_client import redis_for
from atelier.shared.settings import Settings
from tests.hostile import (
    abc_of_tunes,
    npy_bytes,
    npz_of_members,
    npz_of_zeros,
    zip64_claiming,
    zip_bomb_of_empty_entries,
    zip_of_empty_entries,
)
from tests.payloads import png

LIMIT = Settings().max_upload_bytes
AT_ONCE = 4
"""Uploads sent together in the cases of ``SENT_AT_ONCE``: one owner's burst allows 6, and
a process serves ``api_threads`` (4) ordinary requests at once."""
CASES: dict[str, tuple[str, Callable[[], bytes], dict[str, str]]] = {
    "zip of 745,000 empty entries (64 MiB)": (
        "bomb.zip",
        lambda: zip_bomb_of_empty_entries(LIMIT),
        {},
    ),
    "zip64 end claiming 1 entry, 745,000 there": (
        "lie.zip",
        lambda: zip_of_empty_entries((LIMIT - 300) // 90, declared=1, zip64=True),
        {},
    ),
    "zip64 end claiming 2^40 entries": (
        "lie.zip",
        lambda: zip64_claiming(2**40, {"a.png": png((8, 8))}),
        {},
    ),
    "npz of zeros (10000, 128, 128, 3): 491 MB decoded": (
        "zeros.npz",
        lambda: npz_of_zeros((10_000, 128, 128, 3)),
        {"image_size": "64", "channels": "3"},
    ),
    "npz holding a member that is not .npy": (
        "odd.npz",
        lambda: npz_of_members(
            {"images.npy": npy_bytes(np.zeros((4, 8, 8), np.uint8)), "run.sh": b"#!/bin/sh"}
        ),
        {},
    ),
    "ABC of 2,000 tunes": ("tunes.abc", lambda: abc_of_tunes(2000), {}),
}

SENT_AT_ONCE = {
    "zip of 745,000 empty entries (64 MiB)",
    "npz of zeros (10000, 128, 128, 3): 491 MB decoded",
}


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def children_peak_kib(pid: int, done: threading.Event) -> int:
    """The largest peak of the processes ``pid`` starts (sampled every 0.1 s: a checking
    process lives for the seconds of its check) until ``done``."""
    peak = 0
    while not done.wait(0.1):
        for child in children(pid):
            with contextlib.suppress(OSError):
                peak = max(peak, peak_kib(child))
    return peak


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="atelier-upload-memory-") as name:
        directory = Path(name)
        redis_process, redis_url = start_redis(
            Settings(), directory / "redis", free_port(), directory / "redis.log"
        )
        settings = Settings.from_env(
            {},
            redis_url=redis_url,
            data_dir=directory,
            local_storage_dir=directory / "objects",
            uploads_burst=1000,
            uploads_per_minute=100_000,
            log_format="text",
        )
        try:
            for case, (filename, make, fields) in CASES.items():
                for clients in (1, AT_ONCE) if case in SENT_AT_ONCE else (1,):
                    print(measure(settings, directory, case, filename, make(), fields, clients))
        finally:
            redis_process.stop()


def measure(
    settings: Settings,
    directory: Path,
    case: str,
    filename: str,
    data: bytes,
    fields: dict[str, str],
    clients: int,
) -> str:
    """One fresh API process, ``clients`` uploads of ``data`` at once; what it answered
    and its peak memory."""
    port = free_port()
    api = ManagedProcess(
        "api", api_argv(f"127.0.0.1:{port}", 1), child_env(settings), directory / "api.log"
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), 60, "the API")
        (worker,) = children(api.process.pid)
        key = ApiKeyStore(redis_for(settings)).create("bench", name="bench")
        idle = peak_kib(worker)
        for pid in [worker, *children(worker)]:
            reset_peak(pid)
        started = time.monotonic()
        with ThreadPoolExecutor(clients + 1) as pool:
            done = threading.Event()
            helpers = pool.submit(children_peak_kib, worker, done)
            answers = list(
                pool.map(lambda _: _post(url, key, filename, data, fields), range(clients))
            )
            took = time.monotonic() - started
            done.set()
        peak = peak_kib(worker)
    finally:
        api.stop()
    statuses = ",".join(str(a.status_code) for a in answers)
    helper = helpers.result()
    helper_peak = f"; a process it started, peak {helper / 1024:.0f} MiB" if helper else ""
    return (
        f"{case}, {clients} at once: {len(data) / 2**20:.1f} MiB -> {statuses} in {took:.1f} s; "
        f"API process idle {idle / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB{helper_peak}"
    )


def _post(
    url: str, key: str, filename: str, data: bytes, fields: dict[str, str]
) -> requests.Response:
    return requests.post(
        f"{url}/v1/datasets",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": (filename, data)},
        data=fields,
        timeout=600,
    )


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).ok
    except requests.RequestException:
        return False


if __name__ == "__main__":
    main()
