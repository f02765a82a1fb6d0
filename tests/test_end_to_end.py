"""train → model → generate → download, over HTTP, through gunicorn and real Celery
workers, with each storage backend."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import TINY_TRAIN, RunningStack

pytestmark = pytest.mark.slow


def test_train_then_generate_then_download(stack: RunningStack) -> None:
    client = stack.client("alice")
    submitted = client.submit("train", "dcgan", {**TINY_TRAIN, "dataset": "digits"})
    assert submitted["status"] == "queued"
    assert submitted["params"]["generator_lr"] > 0  # defaults are filled in and recorded

    seen_running = []
    train = client.wait(
        submitted["id"], on_update=seen_running.append, poll_seconds=0.1, timeout=300
    )
    assert train["status"] == "succeeded", train["error"]
    assert train["attempt"] == 1
    assert train["started_at"] and train["finished_at"]
    assert train["progress"]["step"] == TINY_TRAIN["steps"] == train["progress"]["total"]
    assert train["progress"]["fraction"] == 1.0
    assert {"d_loss", "g_loss"} <= set(train["progress"]["metrics"])
    logs = "\n".join(client.logs(train["id"]))
    assert "attempt 1 of train dcgan" in logs and "step 20/30 d_loss=" in logs
    sample_names = sorted(o["name"] for o in train["outputs"])
    assert sample_names == [f"samples/step-{s:07d}.png" for s in (10, 20, 30)]

    # Checkpoints were written to the object store (steps 10 and 20; 30 is the model).
    model = client.model(train["model_id"])
    assert model["source_job_id"] == train["id"]
    assert model["config"]["image_size"] == 28 and model["config"]["channels"] == 1
    assert set(model["metrics"]) == {"d_loss", "g_loss"}
    grid = Image.open(io.BytesIO(client.fetch(model["sample_grid_url"])))
    assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 8x8 tiles of 28 px with 2 px gutters

    generate = client.submit("generate", "dcgan", {"model_id": model["id"], "n": 5, "seed": 3})
    generate = client.wait(generate["id"], poll_seconds=0.1, timeout=120)
    assert generate["status"] == "succeeded", generate["error"]
    names = sorted(o["name"] for o in generate["outputs"])
    assert names == ["0000.png", "0001.png", "0002.png", "0003.png", "0004.png", "grid.png"]
    first = next(o for o in generate["outputs"] if o["name"] == "0000.png")
    image = Image.open(io.BytesIO(client.fetch(first["url"])))
    assert image.format == "PNG" and image.size == (28, 28) and image.mode == "L"
    if stack.name == "s3":
        assert "X-Amz-Signature" in first["url"]  # a presigned URL, fetched without our key
    else:
        assert "/v1/files/" in first["url"]
        assert requests.get(first["url"], timeout=10).status_code == 401

    # Same seed, same images; and the worker kept the model loaded.
    again = client.wait(
        client.submit("generate", "dcgan", {"model_id": model["id"], "n": 5, "seed": 3})["id"],
        poll_seconds=0.1,
        timeout=120,
    )
    assert generate["metrics"]["model_cache_hit"] == 0.0
    assert again["metrics"]["model_cache_hit"] == 1.0
    same = next(o for o in again["outputs"] if o["name"] == "0000.png")
    assert client.fetch(same["url"]) == client.fetch(first["url"])

    # Past 64 images, one archive; or one array. The same seed gives the same pixels in
    # every format.
    bulk = {"model_id": model["id"], "n": 65, "seed": 3}
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
    assert np.array_equal(np.asarray(image), pixels[0, ..., 0])


def test_checkpoints_are_in_storage_and_only_the_newest_are_kept(stack: RunningStack) -> None:
    from atelier.shared.storage import ObjectLayout, make_object_store

    client = stack.client("carol")
    params = {**TINY_TRAIN, "steps": 30, "checkpoint_every": 5}
    job = client.wait(client.submit("train", "dcgan", params)["id"], timeout=300)
    assert job["status"] == "succeeded"
    objects = make_object_store(stack.settings)
    kept = [
        step
        for step in (5, 10, 15, 20, 25)
        if objects.exists(ObjectLayout.checkpoint("carol", job["id"], step))
    ]
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
