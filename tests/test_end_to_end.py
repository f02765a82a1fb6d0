"""train → model → generate → download, over HTTP, through gunicorn and real Celery
workers, with each storage backend. One training job and one generation per backend are
shared by the tests of this module (module-scoped fixtures); each test checks one thing."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest
import requests
from PIL import Image

from atelier.client import Client, Job, Model, Output
from tests.conftest import TINY_TRAIN, RunningStack

pytestmark = pytest.mark.slow


@dataclass
class Trained:
    stack: RunningStack
    client: Client
    submitted: Job
    updates: list[Job]
    """Every state ``wait`` saw while polling."""
    job: Job
    model: Model


@dataclass
class Generated:
    first: Job
    again: Job
    """The same request again: same seed, and the model already loaded."""


@pytest.fixture(scope="module")
def trained(stack: RunningStack) -> Trained:
    client = stack.client("alice")
    params = {**TINY_TRAIN, "dataset": "digits", "model_name": "e2e-digits"}
    submitted = client.submit("train", "dcgan", params)
    updates: list[Job] = []
    job = client.wait(submitted["id"], on_update=updates.append, poll_seconds=0.1, timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["model_id"] is not None
    return Trained(stack, client, submitted, updates, job, client.model(job["model_id"]))


@pytest.fixture(scope="module")
def generated(trained: Trained) -> Generated:
    client, params = trained.client, {"model_id": trained.model["id"], "n": 5, "seed": 3}
    # By name: the newest version, which is the model just trained; the job keeps its id.
    first = client.wait(
        client.submit("generate", "dcgan", {**params, "model_id": "e2e-digits:latest"})["id"],
        poll_seconds=0.1,
        timeout=120,
    )
    assert first["status"] == "succeeded", first["error"]
    assert first["params"]["model_id"] == trained.model["id"]
    again = client.wait(
        client.submit("generate", "dcgan", params)["id"], poll_seconds=0.1, timeout=120
    )
    assert again["status"] == "succeeded", again["error"]
    return Generated(first, again)


def output(job: Job, name: str) -> Output:
    return next(o for o in job["outputs"] if o["name"] == name)


def test_submit_answers_queued_with_the_defaults_filled_in(trained: Trained) -> None:
    assert trained.submitted["status"] == "queued"
    assert trained.submitted["params"]["generator_lr"] > 0  # defaults are filled in and recorded


def test_training_runs_once_and_reports_progress_to_the_end(trained: Trained) -> None:
    train = trained.job
    assert "running" in {update["status"] for update in trained.updates}
    assert train["attempt"] == 1
    assert train["started_at"] and train["finished_at"]
    assert train["progress"]["step"] == TINY_TRAIN["steps"] == train["progress"]["total"]
    assert train["progress"]["fraction"] == 1.0
    assert {"d_loss", "g_loss"} <= set(train["progress"]["metrics"])


def test_training_logs_its_attempt_and_losses(trained: Trained) -> None:
    logs = "\n".join(trained.client.logs(trained.job["id"]))
    assert "attempt 1 of train dcgan" in logs and "step 20/30 d_loss=" in logs


def test_training_outputs_a_sample_grid_per_sample_step(trained: Trained) -> None:
    sample_names = sorted(o["name"] for o in trained.job["outputs"])
    assert sample_names == [f"samples/step-{s:07d}.png" for s in (10, 20, 30)]


def test_the_model_records_its_source_config_metrics_and_grid(trained: Trained) -> None:
    model = trained.model
    assert model["source_job_id"] == trained.job["id"]
    assert model["name"] == "e2e-digits" and model["version"] is not None
    assert trained.client.model(f"e2e-digits:{model['version']}")["id"] == model["id"]
    assert model["config"]["image_size"] == 28 and model["config"]["channels"] == 1
    # Digits carry labels: the model is conditional and reports its mode-seeking spread.
    assert model["config"]["classes"] == 10
    assert set(model["metrics"]) == {"d_loss", "g_loss", "spread"}
    assert model["sample_grid_url"] is not None
    grid = Image.open(io.BytesIO(trained.client.fetch(model["sample_grid_url"])))
    assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 8x8 tiles of 28 px with 2 px gutters


def test_generate_writes_pngs_of_the_dataset_size(trained: Trained, generated: Generated) -> None:
    names = sorted(o["name"] for o in generated.first["outputs"])
    assert names == ["0000.png", "0001.png", "0002.png", "0003.png", "0004.png", "grid.png"]
    first = output(generated.first, "0000.png")
    image = Image.open(io.BytesIO(trained.client.fetch(first["url"])))
    assert image.format == "PNG" and image.size == (28, 28) and image.mode == "L"


def test_output_urls_suit_the_storage(trained: Trained, generated: Generated) -> None:
    first = output(generated.first, "0000.png")
    if trained.stack.name == "s3":
        assert "X-Amz-Signature" in first["url"]  # a presigned URL, fetched without our key
    else:
        assert "/v1/files/" in first["url"]
        assert requests.get(first["url"], timeout=10).status_code == 401


def test_same_seed_same_images_and_the_model_stays_loaded(
    trained: Trained, generated: Generated
) -> None:
    assert generated.first["metrics"]["model_cache_hit"] == 0.0
    assert generated.again["metrics"]["model_cache_hit"] == 1.0
    same = output(generated.again, "0000.png")
    first = output(generated.first, "0000.png")
    assert trained.client.fetch(same["url"]) == trained.client.fetch(first["url"])


def test_past_64_images_one_archive_or_one_array_of_the_same_pixels(
    trained: Trained, generated: Generated
) -> None:
    """The same seed gives the same pixels in every format."""
    client = trained.client
    bulk = {"model_id": trained.model["id"], "n": 65, "seed": 3}
    archived = client.wait(client.submit("generate", "dcgan", bulk)["id"], timeout=120)
    array = client.wait(
        client.submit("generate", "dcgan", {**bulk, "format": "npy"})["id"], timeout=120
    )
    assert [o["name"] for o in archived["outputs"]] == ["grid.png", "images.zip"]
    assert [o["name"] for o in array["outputs"]] == ["grid.png", "images.npy"]
    with zipfile.ZipFile(io.BytesIO(client.fetch(archived["outputs"][1]["url"]))) as archive:
        names = archive.namelist()
        zipped = np.stack([np.asarray(Image.open(archive.open(name))) for name in names])
    pixels = np.load(io.BytesIO(client.fetch(array["outputs"][1]["url"])))
    assert names[0] == "0000.png" and names[-1] == "0064.png"
    assert pixels.shape == (65, 28, 28, 1) and pixels.dtype == np.uint8
    assert np.array_equal(zipped, pixels[..., 0])
    image = Image.open(io.BytesIO(client.fetch(output(generated.first, "0000.png")["url"])))
    assert np.array_equal(np.asarray(image), pixels[0, ..., 0])


def test_checkpoints_are_in_storage_and_only_the_newest_are_kept(stack: RunningStack) -> None:
    from atelier.shared.storage import ObjectLayout, make_object_store

    client = stack.client("carol")
    params = {**TINY_TRAIN, "steps": 30, "checkpoint_every": 5}
    job = client.wait(client.submit("train", "dcgan", params)["id"], timeout=300)
    assert job["status"] == "succeeded"
    assert job["model_id"] is not None
    objects = make_object_store(stack.settings)
    stored = objects.list_keys(ObjectLayout.job_prefix("carol", job["id"]))
    kept = sorted(int(key[-11:-4]) for key in stored if "/checkpoints/step-" in key)
    assert stack.settings.checkpoints_kept == 2 and kept == [20, 25]
    assert job["checkpoint_step"] == 25
    assert objects.exists(ObjectLayout.model_weights("carol", job["model_id"]))


def test_one_grep_follows_a_job_through_api_and_worker_logs(local_stack: RunningStack) -> None:
    import json

    client = local_stack.client("logan")
    job = client.wait(
        client.submit("train", "dcgan", {**TINY_TRAIN, "steps": 3})["id"], timeout=120
    )
    client.get(job["id"])
    logs = local_stack.stack.data_dir / "logs"

    def lines_for(name: str) -> list[dict[str, object]]:
        entries = []
        for line in (logs / name).read_text(errors="replace").splitlines():
            if job["id"] in line and line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    api_lines = lines_for("api.log")
    worker_lines = lines_for("worker-train.log")
    assert any(e["message"] == "accepted train dcgan job" for e in api_lines), api_lines
    assert any("attempt 1 of train dcgan" in str(e["message"]) for e in worker_lines)
    assert all(
        e.get("job_id") == job["id"] and e.get("owner") == "logan"
        for e in api_lines + worker_lines
        if e.get("job_id")
    )
