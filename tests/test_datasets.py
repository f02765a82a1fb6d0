"""Uploads: good ones train models of both kinds; hostile and broken ones are refused with
a problem+json 4xx, store nothing, and leave the server serving."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from atelier.client import ApiError, Client
from tests.conftest import TINY_TRAIN, UPLOAD_LIMITS, RunningStack

pytestmark = pytest.mark.slow

TINY_TEXT = {
    "steps": 20,
    "batch_size": 8,
    "sequence_length": 64,
    "num_layers": 1,
    "num_heads": 2,
    "hidden_dim": 32,
    "sample_every": 10,
    "checkpoint_every": 10,
}


def png(size: tuple[int, int], mode: str = "L", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = rng.integers(0, 255, (size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode=mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def zip_of(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def npz_of(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, images=array)
    return buffer.getvalue()


def upload(
    stack: RunningStack, key: str, filename: str, data: bytes, **fields: Any
) -> requests.Response:
    return requests.post(
        stack.url("/v1/datasets"),
        headers={"Authorization": f"Bearer {key}"},
        files={"file": (filename, data)},
        data={k: str(v) for k, v in fields.items()},
        timeout=60,
    )


# --- good uploads, both kinds, end to end -------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "channels", "mode", "fmt"),
    [
        (28, 1, "L", "zip"),
        (32, 3, "RGB", "zip"),
        (64, 1, "L", "npz"),
    ],
)
def test_images_train_a_dcgan_at_each_size(
    local_stack: RunningStack, size: int, channels: int, mode: str, fmt: str
) -> None:
    client = local_stack.client("uma")
    source = tmp = Path(f"/tmp/atelier-upload-{size}.{fmt}")
    if fmt == "zip":
        tmp.write_bytes(zip_of({f"img/{i:03d}.png": png((40, 50), mode, i) for i in range(24)}))
    else:
        tmp.write_bytes(
            npz_of(np.random.default_rng(0).integers(0, 255, (24, 48, 48), dtype=np.uint8))
        )
    dataset = client.upload_dataset(source, title="mine", image_size=size, channels=channels)
    assert (dataset["modality"], dataset["count"], dataset["image_size"], dataset["channels"]) == (
        "image",
        24,
        size,
        channels,
    )
    preview = Image.open(io.BytesIO(client.fetch(dataset["preview_url"])))
    assert preview.size == (5 * size, 5 * size)
    assert client.dataset(dataset["name"])["title"] == "mine"

    params = {**TINY_TRAIN, "dataset": dataset["name"], "steps": 4, "batch_size": 8}
    train = client.wait(client.submit("train", "dcgan", params)["id"], timeout=300)
    assert train["status"] == "succeeded", train["error"]
    generated = client.wait(
        client.submit("generate", "dcgan", {"model_id": train["model_id"], "n": 2})["id"],
        timeout=120,
    )
    image = Image.open(io.BytesIO(client.fetch(generated["outputs"][-1]["url"])))
    assert image.size == (size, size) and image.mode == mode


def test_text_upload_trains_a_textgen_model(local_stack: RunningStack, tmp_path: Path) -> None:
    client = local_stack.client("vera")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\nthe dog sat on the log.\n" * 200)
    dataset = client.upload_dataset(corpus)
    assert dataset["modality"] == "text" and dataset["count"] == len(corpus.read_text())
    assert dataset["excerpt"].startswith("the cat sat on the mat.")

    train = client.wait(
        client.submit("train", "textgen", {**TINY_TEXT, "dataset": dataset["name"]})["id"],
        timeout=300,
    )
    assert train["status"] == "succeeded", train["error"]
    assert {"val_loss", "val_perplexity", "loss"} <= set(train["progress"]["metrics"])
    samples = [o for o in train["outputs"] if o["name"].startswith("samples/")]
    assert samples and samples[0]["text"].startswith("The ")

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
    assert len(texts) == 2 and all("\n" not in t for t in texts)
    assert client.fetch(first["outputs"][0]["url"]).decode() == texts[0]
    again = client.wait(client.submit("generate", "textgen", params)["id"], timeout=120)
    assert [o["text"] for o in again["outputs"]] == texts  # same seed, same text
    assert again["metrics"]["model_cache_hit"] == 1.0

    too_long = client.wait(
        client.submit("generate", "textgen", {**params, "max_new_tokens": 200})["id"], timeout=60
    )
    assert too_long["status"] == "failed" and "context of 64" in too_long["error"]["message"]


def test_builtin_corpus_trains_textgen(local_stack: RunningStack) -> None:
    client = local_stack.client("wade")
    train = client.wait(client.submit("train", "textgen", TINY_TEXT)["id"], timeout=300)
    assert train["status"] == "succeeded", train["error"]
    assert train["params"]["dataset"] == "fables"


def test_delete_is_refused_while_a_job_reads_the_dataset(
    local_stack: RunningStack, tmp_path: Path
) -> None:
    client = local_stack.client("xena")
    corpus = tmp_path / "c.txt"
    corpus.write_text("some words to read. " * 100)
    name = client.upload_dataset(corpus)["name"]
    job = client.submit("train", "textgen", {**TINY_TEXT, "dataset": name, "steps": 100_000})
    with pytest.raises(ApiError) as busy:
        client.delete_dataset(name)
    assert busy.value.status == 409 and job["id"] in busy.value.problem["detail"]
    client.cancel(job["id"])
    client.wait(job["id"], timeout=60)
    client.delete_dataset(name)
    with pytest.raises(ApiError) as gone:
        client.dataset(name)
    assert gone.value.status == 404
    with pytest.raises(ApiError) as unusable:
        client.submit("train", "textgen", {**TINY_TEXT, "dataset": name})
    assert unusable.value.problem["type"] == "urn:atelier:problem:unknown-dataset"


def test_datasets_belong_to_their_owner(local_stack: RunningStack, tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("private words. " * 100)
    name = local_stack.client("yves").upload_dataset(corpus)["name"]
    other = local_stack.client("zoe")
    with pytest.raises(ApiError) as hidden:
        other.dataset(name)
    assert hidden.value.status == 404
    assert name not in [d["name"] for d in other.datasets()]
    with pytest.raises(ApiError):
        other.submit("train", "textgen", {**TINY_TEXT, "dataset": name})


# --- hostile and broken uploads ------------------------------------------------------------------
def _bomb_png() -> bytes:
    side = int(UPLOAD_LIMITS["pixels"] ** 0.5) + 500
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG")  # tiny file, huge image
    return buffer.getvalue()


def _zip_bomb() -> bytes:
    return zip_of({"zeros.png": b"\0" * (UPLOAD_LIMITS["uncompressed"] + 1)})


HOSTILE: dict[str, tuple[Callable[[], tuple[str, bytes]], int, str]] = {
    "over the size cap": (
        lambda: ("big.zip", b"x" * (UPLOAD_LIMITS["bytes"] + 1)),
        413,
        "byte limit",
    ),
    "too many files": (
        lambda: ("many.zip", zip_of({f"{i}.png": b"" for i in range(UPLOAD_LIMITS["files"] + 1)})),
        413,
        "entries",
    ),
    "zip bomb": (lambda: ("bomb.zip", _zip_bomb()), 413, "zip bomb"),
    "decompression bomb": (
        lambda: ("px.zip", zip_of({"big.png": _bomb_png()})),
        413,
        "decompression bomb",
    ),
    "path traversal": (
        lambda: ("up.zip", zip_of({"../evil.png": png((8, 8))})),
        422,
        "outside the archive",
    ),
    "absolute path": (
        lambda: ("abs.zip", zip_of({"/etc/evil.png": png((8, 8))})),
        422,
        "outside the archive",
    ),
    "symlink": (
        lambda: ("link.zip", zip_of({"a.png": png((8, 8))}, links=("b.png",))),
        422,
        "is a link",
    ),
    "truncated image": (
        lambda: ("cut.zip", zip_of({"a.png": png((30, 30))[:60]})),
        422,
        "truncated or corrupt",
    ),
    "corrupt archive": (
        lambda: ("junk.zip", b"PK\x03\x04 not really a zip"),
        422,
        "not a readable zip",
    ),
    "non-UTF-8 text": (lambda: ("latin.txt", "café crème".encode("latin-1")), 422, "not UTF-8"),
    "binary text": (lambda: ("bin.txt", b"abc\x00\x01\x02" * 50), 422, "binary"),
    "empty text": (lambda: ("empty.txt", b"  \n "), 422, "empty"),
    "archive without images": (
        lambda: ("none.zip", zip_of({"readme.md": b"hi"})),
        422,
        "no images",
    ),
    "npz of floats": (lambda: ("f.npz", npz_of(np.zeros((4, 8, 8), np.float32))), 422, "uint8"),
    "npz of the wrong shape": (lambda: ("s.npz", npz_of(np.zeros((4, 8), np.uint8))), 422, "shape"),
    "unsupported file": (lambda: ("notes.pdf", b"%PDF-1.4"), 422, "Unsupported file"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_uploads_are_refused_and_nothing_is_stored(
    local_stack: RunningStack, case: str
) -> None:
    make, status, mentions = HOSTILE[case]
    filename, data = make()
    key = local_stack.raw_key("mallory")
    response = upload(local_stack, key, filename, data)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert mentions in response.json()["detail"]
    assert local_stack.redis.zcard("atelier:owner:mallory:datasets") == 0
    stored = local_stack.settings.local_storage_dir / "owners" / "mallory"
    assert not stored.exists() or not any(stored.rglob("*"))
    assert requests.get(local_stack.url("/readyz"), timeout=10).ok


def test_bad_form_fields(local_stack: RunningStack) -> None:
    key = local_stack.raw_key("mallory")
    response = upload(local_stack, key, "a.zip", zip_of({"a.png": png((8, 8))}), image_size=30)
    assert response.status_code == 422 and "image_size" in response.json()["detail"]
    missing = requests.post(
        local_stack.url("/v1/datasets"),
        files={"title": (None, "x")},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert missing.status_code == 422 and "'file'" in missing.json()["detail"]


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
