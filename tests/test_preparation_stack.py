"""A job's preparation through the real processes (issue 25, point 9): the first ``melody``
job on the built-in ``folk`` corpus shows ``preparing: building the folk corpus`` with
its tunes counting up, in its record and its event stream, before step 1; a second job,
after the worker's own cache is emptied, fetches the prepared corpus from object storage
(SeaweedFS over S3) instead of building it again.

Slow tier (a real worker, TensorFlow). The corpus is cut to 15 tunes a collection
(``ATELIER_FOLK_TUNES_PER_SOURCE``): the whole build takes minutes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from atelier.cli.processes import free_port
from atelier.cli.stack import EmbeddedStack
from atelier.client import Client
from atelier.shared.auth import ApiKeyStore
from atelier.shared.settings import Settings
from tests.conftest import flush_db, s3_settings

pytestmark = pytest.mark.slow

PREPARATION_DB = 12
TINY_MELODY = {
    "dataset": "folk",
    "steps": 4,
    "batch_size": 4,
    "sequence_length": 32,
    "num_layers": 1,
    "num_heads": 2,
    "hidden_dim": 16,
    "sample_every": 4,
    "checkpoint_every": 4,
}


@dataclass
class PreparingStack:
    stack: EmbeddedStack
    settings: Settings
    client: Client


@pytest.fixture(scope="module")
def preparing(
    redis_base_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PreparingStack]:
    root = tmp_path_factory.mktemp("preparation")
    url = f"{redis_base_url}/{PREPARATION_DB}"
    flush_db(url)
    base = Settings.from_env(
        {},
        data_dir=root,
        progress_interval_seconds=0.1,
        folk_tunes_per_source=15,
        **s3_settings(s3_endpoint, bucket="atelier-preparation"),
    )
    stack = EmbeddedStack(base, port=free_port(), external_redis_url=url, worker_roles=("train",))
    settings = stack.start()
    key = ApiKeyStore(redis.Redis.from_url(url)).create("olwen")
    try:
        yield PreparingStack(stack, settings, Client(settings.api_url, key, timeout=60))
    finally:
        stack.stop()


def _train(client: Client) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A tiny melody job on folk, run to its end: the job and its progress events."""
    job_id = client.submit("train", "melody", TINY_MELODY)["id"]
    progress = [e["data"] for e in client.events(job_id) if e["event"] == "progress"]
    job = dict(client.get(job_id))
    assert job["status"] == "succeeded", job["error"]
    return job, progress


def test_the_first_job_shows_the_build_and_the_next_fetches_it(
    preparing: PreparingStack,
) -> None:
    client = preparing.client
    job, progress = _train(client)
    building = [p for p in progress if p.get("label") == "building the folk corpus"]
    first_step = next(i for i, p in enumerate(progress) if p["step"] >= 1)
    assert building and progress.index(building[-1]) < first_step, progress
    assert all(p["phase"] == "preparing" and p["step"] == 0 for p in progress[:first_step])
    counts = [p["items_done"] for p in building]
    assert counts == sorted(counts) and len(set(counts)) >= 3, counts
    assert building[-1]["items_done"] == building[-1]["items_total"] == 45
    assert building[-1]["unit"] == "tunes" and building[-1]["eta_seconds"] == 0.0
    assert progress[-1]["phase"] == "training" and progress[-1]["items_done"] is None
    assert job["progress"]["phase"] == "training"
    assert any("folk corpus built and stored" in line for line in client.logs(job["id"]))

    # A worker with an empty disk (its cache removed, as on a new machine).
    shutil.rmtree(preparing.settings.data_dir / "cache")
    again, progress = _train(client)
    labels = {p.get("label") for p in progress}
    assert "building the folk corpus" not in labels and "reading the folk corpus" in labels
    fetched = "folk corpus fetched from object storage"
    assert any(fetched in line for line in client.logs(again["id"]))
