"""Uploaded datasets train models of both kinds through the real workers (a labelled upload
a conditional DCGAN), and the CLI uploads with a progress bar. (What the API checks on
upload is in ``test_uploads`` and ``test_labelled_uploads``.)"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from atelier.client import Client
from atelier.shared.models import ModelStore
from atelier.shared.storage import make_object_store
from tests.conftest import TINY_TEXT, TINY_TRAIN, RunningStack
from tests.payloads import IMAGE_UPLOADS, upload_corpus, upload_images, zip_of

pytestmark = pytest.mark.slow


def _shade(level: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(level - 20, level + 20, (12, 12))
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


CLASS_FOLDERS = {
    f"{name}/{i:02d}.png": _shade(level, i)
    for name, count, level in (("cats", 10, 220), ("dogs", 12, 40))
    for i in range(count)
}
"""Two classes, light and dark, in a folder each (inside a wrapper folder, as zipping a
folder makes)."""


# --- good uploads, both kinds, end to end -------------------------------------------------------
@IMAGE_UPLOADS
def test_images_train_a_dcgan_at_each_size(
    local_stack: RunningStack, tmp_path: Path, size: int, channels: int, mode: str, fmt: str
) -> None:
    client = local_stack.client("uma")
    dataset = upload_images(client, tmp_path, size, channels, mode, fmt)
    params = {**TINY_TRAIN, "dataset": dataset["name"], "steps": 4, "batch_size": 8}
    train = client.wait(client.submit("train", "dcgan", params)["id"], timeout=300)
    assert train["status"] == "succeeded", train["error"]
    generated = client.wait(
        client.submit("generate", "dcgan", {"model_id": train["model_id"], "n": 2})["id"],
        timeout=120,
    )
    image = Image.open(io.BytesIO(client.fetch(generated["outputs"][-1]["url"])))
    assert image.size == (size, size) and image.mode == mode


def test_a_labelled_upload_trains_a_conditional_dcgan(
    local_stack: RunningStack, tmp_path: Path
) -> None:
    """A zip with a folder per class trains a conditional DCGAN (its G holds a learned
    vector per class) that records the classes' names; generation draws the classes asked
    for, by index or by name, n images in turn: the same noise drawn as the same class
    gives the same image, as the other class another."""
    client = local_stack.client("ida")
    archive = tmp_path / "pets.zip"
    archive.write_bytes(zip_of({f"pets/{k}": v for k, v in CLASS_FOLDERS.items()}))
    dataset = client.upload_dataset(archive)
    assert (dataset["class_names"], dataset["class_counts"]) == (["cats", "dogs"], [10, 12])
    params = {**TINY_TRAIN, "dataset": dataset["name"], "steps": 60, "batch_size": 8}
    train = client.wait(client.submit("train", "dcgan", params)["id"], timeout=300)
    assert train["status"] == "succeeded", train["error"]
    model_id = str(train["model_id"])
    config = client.model(model_id)["config"]
    assert (config["classes"], config["class_names"]) == (2, ["cats", "dogs"])
    embeddings = [a for n, a in weights_of(local_stack, model_id).items() if n.startswith("g/")]
    assert any(array.shape == (2, TINY_TRAIN["latent_dim"]) for array in embeddings)

    def drawn(**asked: Any) -> np.ndarray:
        asked = {"model_id": model_id, "n": 4, "seed": 3, "format": "npy", **asked}
        job = client.wait(client.submit("generate", "dcgan", asked)["id"], timeout=120)
        assert job["status"] == "succeeded", job["error"]
        array = next(o for o in job["outputs"] if o["name"] == "images.npy")
        pixels: np.ndarray = np.load(io.BytesIO(client.fetch(array["url"])))
        return pixels.astype(np.int16)

    cats, dogs = drawn(label_names=["cats"]), drawn(labels=[1])
    turns = drawn(label_names=["cats", "dogs"])
    assert cats.shape == dogs.shape == turns.shape == (4, 28, 28, 1)
    assert np.abs(drawn(labels=[0]) - cats).max() <= 1  # "cats" is class 0
    for index, same in ((0, cats), (1, dogs), (2, cats), (3, dogs)):  # in turn
        assert np.abs(turns[index] - same[index]).max() <= 1
    assert np.abs(cats[0] - cats[1]).max() > 8  # the noise matters, so the above says something
    assert np.abs(cats - dogs).max() > 8  # and so does the class


def weights_of(stack: RunningStack, model_id: str) -> dict[str, np.ndarray]:
    record = ModelStore(stack.redis).get(model_id)
    assert record is not None
    data = make_object_store(stack.settings).get_bytes(record.weights_key)
    with np.load(io.BytesIO(data)) as arrays:
        return {name: arrays[name] for name in arrays.files}


def test_text_upload_trains_a_textgen_model(local_stack: RunningStack, tmp_path: Path) -> None:
    client = local_stack.client("vera")
    dataset = upload_corpus(client, tmp_path)

    train = client.wait(
        client.submit("train", "textgen", {**TINY_TEXT, "dataset": dataset["name"]})["id"],
        timeout=300,
    )
    assert train["status"] == "succeeded", train["error"]
    metrics = train["progress"]["metrics"]
    assert {"val_loss", "val_perplexity", "loss"} <= set(metrics)
    # The default model mixes its network with a 4-gram: both figures, and the weight.
    assert {"val_bits_per_byte_network", "ngram_weight"} <= set(metrics)
    assert 0 < metrics["ngram_weight"] < 1
    assert metrics["val_bits_per_byte"] <= metrics["val_bits_per_byte_network"] + 0.01
    samples = [o for o in train["outputs"] if o["name"].startswith("samples/")]
    assert samples and (samples[0]["text"] or "").startswith("The ")

    params = {
        "model_id": train["model_id"],
        "prompt": "the ",
        "max_new_tokens": 40,
        "n": 2,
        "seed": 5,
        "stop": ["\n"],
    }
    first = client.wait(client.submit("generate", "textgen", params)["id"], timeout=120)
    assert first["status"] == "succeeded", first["error"]
    texts = [o["text"] for o in first["outputs"]]
    assert len(texts) == 2 and all(t is not None and "\n" not in t for t in texts)
    assert client.fetch(first["outputs"][0]["url"]).decode() == texts[0]
    again = client.wait(client.submit("generate", "textgen", params)["id"], timeout=120)
    assert [o["text"] for o in again["outputs"]] == texts  # same seed, same text
    assert again["metrics"]["model_cache_hit"] == 1.0

    # Past the 64-byte context the window slides (it used to be accepted, then fail).
    past = client.wait(
        client.submit("generate", "textgen", {**params, "max_new_tokens": 200, "stop": []})["id"],
        timeout=120,
    )
    assert past["status"] == "succeeded", past["error"]
    assert len(past["outputs"][0]["text"] or "") > 100


def test_builtin_corpus_trains_textgen(local_stack: RunningStack) -> None:
    client = local_stack.client("wade")
    train = client.wait(client.submit("train", "textgen", TINY_TEXT)["id"], timeout=300)
    assert train["status"] == "succeeded", train["error"]
    assert train["params"]["dataset"] == "fables"


def test_cli_uploads_with_a_progress_bar(local_stack: RunningStack, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    corpus = tmp_path / "cli.txt"
    corpus.write_text("words for the command line. " * 2000)
    env = {
        **os.environ,
        "ATELIER_API_URL": local_stack.settings.api_url,
        "ATELIER_API_KEY": local_stack.raw_key("cli-user"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "atelier.cli.main", "datasets", "upload", str(corpus)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("ds_")
    assert "cli.txt" in done.stderr and "100%" in done.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "atelier.cli.main", "datasets", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert done.stdout.strip() in listed and "fables" in listed
    client = Client(local_stack.settings.api_url, env["ATELIER_API_KEY"])
    assert client.dataset(done.stdout.strip())["count"] == len(corpus.read_text())
