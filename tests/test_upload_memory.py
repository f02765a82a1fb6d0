"""Uploads cannot exhaust an API process: a zip's entries are counted from its end records
before its directory is parsed, an ``.npz`` array is read a few MiB at a time, ABC tunes
are read by music21 in another process, and a process checks at most
``api_concurrent_uploads`` uploads at once (one more: 503 with ``Retry-After``).

Memory is measured with ``tracemalloc`` (Python's and numpy's allocations) around one
upload to the app in this process; ``bench/upload_memory.py`` measures a gunicorn
process's peak RSS with the default limits.

Fast tier: the app in this process, a real Redis, no worker."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tracemalloc
from collections.abc import Callable

import pytest
import requests

from atelier.api.services import services
from atelier.api.upload_gate import UploadGate
from atelier.shared.errors import ServiceUnavailable
from tests.conftest import UPLOAD_LIMITS, InProcessApi
from tests.hostile import (
    OWNER,
    abc_of_tunes,
    assert_nothing_stored,
    assert_problem,
    npz_of_zeros,
    upload,
    zip_bomb_of_empty_entries,
)
from tests.payloads import png, zip_of

MiB = 1 << 20


def traced_peak(call: Callable[[], requests.Response]) -> tuple[requests.Response, int]:
    """What ``call`` answered, and the most memory Python and numpy held during it."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        response = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return response, peak


def test_a_zip_directory_is_counted_before_it_is_parsed(inprocess_api: InProcessApi) -> None:
    """46,000 empty entries in 4 MiB: zipfile's directory for them was ~30 MiB of objects,
    built twice (once to look for ABC files); the end record's count refuses it first."""
    bomb = zip_bomb_of_empty_entries(UPLOAD_LIMITS["bytes"])
    response, peak = traced_peak(lambda: upload(inprocess_api, "bomb.zip", bomb))
    assert_problem(response, 413, "payload-too-large")
    assert f"limit is {UPLOAD_LIMITS['files']}" in response.json()["detail"]
    assert peak < 6 * len(bomb), f"{peak / MiB:.0f} MiB for a {len(bomb) / MiB:.0f} MiB upload"
    assert_nothing_stored(inprocess_api, OWNER)


def test_an_npz_array_is_read_a_chunk_at_a_time(inprocess_api: InProcessApi) -> None:
    """30 MB of images (the test limit is 32 MiB expanded) sent as 30 KB: read whole,
    the array alone was 30 MB; read in 4 MiB chunks, the upload needs far less."""
    data = npz_of_zeros((200, 256, 200, 3))
    response, peak = traced_peak(lambda: upload(inprocess_api, "zeros.npz", data))
    assert response.status_code == 201, response.text
    assert response.json()["count"] == 200
    assert peak < 16 * MiB, f"{peak / MiB:.0f} MiB for 30 MB of pixels"


def test_uploads_past_the_process_limit_are_answered_503(inprocess_api: InProcessApi) -> None:
    """With every upload slot held, one more upload is refused before it is read."""
    gate = upload_gate(inprocess_api)
    assert gate.limit == inprocess_api.settings.api_concurrent_uploads
    good = zip_of({"a.png": png((8, 8))})
    slots = [gate.slot() for _ in range(gate.limit)]
    for slot in slots:
        slot.__enter__()
    try:
        response = upload(inprocess_api, "a.zip", good)
        assert_problem(response, 503, "service-unavailable")
        assert int(response.headers["Retry-After"]) > 0
        assert "ATELIER_API_CONCURRENT_UPLOADS" in response.json()["detail"]
        assert_nothing_stored(inprocess_api, OWNER)
    finally:
        for slot in slots:
            slot.__exit__(None, None, None)
    assert upload(inprocess_api, "a.zip", good).status_code == 201


def upload_gate(api: InProcessApi) -> UploadGate:
    with api.app.app_context():
        return services().uploads


ABC_IN_A_FRESH_API = textwrap.dedent(
    """
    import sys
    from atelier.api.app import create_app
    from atelier.shared.auth import ApiKeyStore
    from atelier.shared.redis_client import redis_for
    from atelier.shared.settings import Settings

    app = create_app()
    key = ApiKeyStore(redis_for(Settings.from_env())).create("abc", name="abc")
    answer = app.test_client().post(
        "/v1/datasets",
        headers={"Authorization": f"Bearer {key}"},
        data={"file": (open(sys.argv[1], "rb"), "tunes.abc")},
    )
    print(answer.status_code, answer.json["count"], "music21" in sys.modules)
    """
)


def test_abc_tunes_are_read_outside_the_api_process(inprocess_api: InProcessApi) -> None:
    """music21 (~6-30 ms a tune, holding the GIL) runs in the upload pool's process: the
    API process that took the upload never imports it."""
    tunes = inprocess_api.settings.data_dir / "tunes.abc"
    tunes.write_bytes(abc_of_tunes(20))
    done = subprocess.run(
        [sys.executable, "-c", ABC_IN_A_FRESH_API, str(tunes)],
        env={**os.environ, **inprocess_api.settings.to_env()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["201", "20", "False"], done.stdout


def test_a_checking_process_that_dies_is_answered_503() -> None:
    """A process killed mid-check (its memory, a crash) costs that upload a retry."""
    with pytest.raises(ServiceUnavailable) as refused:
        UploadGate(1).run(os._exit, 3)
    assert refused.value.extensions["retry_after"] > 0
