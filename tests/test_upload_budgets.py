"""Upload budgets: the total pixels of one upload (each image counted at least at the
training size), and the text check counting control characters on the bytes.

Fast tier: the app in this process, a real Redis, no worker."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from atelier.api import ingest
from tests.conftest import InProcessApi, inprocess_api_for, inprocess_settings
from tests.hostile import OWNER, assert_nothing_stored, assert_problem, upload
from tests.payloads import npz_of, png, zip_of

BUDGET = 100_000  # pixels, in the tight_api below


@pytest.fixture()
def tight_api(redis_base_url: str, tmp_path: Path) -> Iterator[InProcessApi]:
    yield from inprocess_api_for(
        inprocess_settings(redis_base_url, tmp_path, max_upload_pixels=BUDGET)
    )


PIXEL_BUDGET = {
    "12 100x100 PNGs": (
        "a.zip",
        zip_of({f"{i}.png": png((100, 100), seed=i) for i in range(12)}),
        28,
    ),
    "npz of 30 64x64 images": ("a.npz", npz_of(np.zeros((30, 64, 64), np.uint8)), 28),
    # 1x1 images count at the training size they are resized to: 160 x 28 x 28 > 100,000
    "npz of 160 1x1 images": ("a.npz", npz_of(np.zeros((160, 1, 1), np.uint8)), 28),
}


@pytest.mark.parametrize("case", list(PIXEL_BUDGET))
def test_the_pixel_budget_holds_per_upload(tight_api: InProcessApi, case: str) -> None:
    filename, data, size = PIXEL_BUDGET[case]
    response = upload(tight_api, filename, data, image_size=size)
    assert_problem(response, 413, "payload-too-large")
    assert f"{BUDGET} pixels" in response.json()["detail"]
    assert_nothing_stored(tight_api, OWNER)


def test_an_upload_within_the_pixel_budget_is_accepted(tight_api: InProcessApi) -> None:
    data = zip_of({f"{i}.png": png((100, 100), seed=i) for i in range(9)})
    response = upload(tight_api, "a.zip", data, image_size=28)
    assert response.status_code == 201, response.text
    assert response.json()["count"] == 9


def _control_characters_one_by_one(text: str) -> int:
    """The old per-character check, kept as the reference for the vectorised one."""
    return sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t\r")


@pytest.mark.parametrize("chunk", [1, 2, 7, 1 << 22])
def test_control_characters_match_the_per_character_count(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(ingest, "TEXT_CHUNK", chunk)
    text = "tab\tcr\r\nnul-free \x01\x1f\x7f\x80\x85\x9f\xa0 é 日本 \U0001f600 \u2028\x9f"
    assert ingest.control_characters(text.encode()) == _control_characters_one_by_one(text)
    assert ingest.control_characters(b"") == 0
