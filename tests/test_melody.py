"""A ``melody`` job's life on a real stack: ABC tunes uploaded, a tiny model trained with
progress (loss, val_loss, a sample tune), and "a jig in D" written as ABC, MIDI, a
piano roll and WAV, each with the content type a player needs.

Slow tier (a real worker, TensorFlow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atelier.shared.kinds.melody.abc import split_tunes
from atelier.workers.kinds.melody.folk import source_files
from atelier.workers.kinds.melody.render import audio_missing
from tests.conftest import RunningStack

pytestmark = pytest.mark.slow

TINY_MELODY = {
    "steps": 30,
    "batch_size": 8,
    "sequence_length": 64,
    "num_layers": 1,
    "num_heads": 2,
    "hidden_dim": 32,
    "sample_every": 15,
    "checkpoint_every": 15,
    "transpose_to": "D",  # every tune in D (or its modes): the key asked for below is known
}


def some_tunes(path: Path, count: int = 60) -> Path:
    """``count`` jigs and reels of Ryan's Mammoth Collection as one .abc file."""
    texts = [
        text
        for source in source_files("ryansMammoth")
        if "jig" in source.name.lower() or "reel" in source.name.lower()
        for text in split_tunes(source.read_text(encoding="utf-8", errors="replace"))
    ]
    path.write_text("\n".join(texts[:count]))
    return path


def test_a_melody_job_trains_and_writes_a_jig_in_d(
    local_stack: RunningStack, tmp_path: Path
) -> None:
    client = local_stack.client("fiona")
    dataset = client.upload_dataset(some_tunes(tmp_path / "tunes.abc"))
    assert dataset["modality"] == "music" and dataset["count"] >= 50, dataset
    train = client.wait(
        client.submit("train", "melody", {**TINY_MELODY, "dataset": dataset["name"]})["id"],
        timeout=300,
    )
    assert train["status"] == "succeeded", train["error"]
    metrics = train["progress"]["metrics"]
    assert {"loss", "val_loss", "val_perplexity"} <= set(metrics), metrics
    samples = [o for o in train["outputs"] if o["name"].endswith(".abc")]
    assert samples and str(samples[-1]["text"]).startswith("X:1"), samples
    assert samples[-1]["content_type"].startswith("text/vnd.abc")

    params = {"model_id": train["model_id"], "n": 2, "seed": 3, "rhythm": "jig", "key": "D"}
    generate = client.wait(client.submit("generate", "melody", params)["id"], timeout=300)
    assert generate["status"] == "succeeded", generate["error"]
    by_name = {o["name"]: o for o in generate["outputs"]}
    texts = [str(by_name[f"tune-{i}.abc"]["text"]) for i in range(2)]
    for text in texts:  # a tiny model's body may be nonsense; its header is what was asked
        assert {"R:jig", "K:D"} <= set(text.splitlines()), text
    types = {o["name"].rsplit(".", 1)[-1]: o["content_type"] for o in by_name.values()}
    assert types["abc"].startswith("text/vnd.abc")
    if "mid" in types:  # a tiny model's tune may not parse; then only its .abc is written
        assert types["mid"] == "audio/midi" and types["png"] == "image/png"
        if audio_missing() is None:
            assert types["wav"] == "audio/wav"
            wav = next(o for o in by_name.values() if o["name"].endswith(".wav"))
            assert client.fetch(wav["url"])[:4] == b"RIFF"
        else:
            assert "no-audio.txt" in by_name
    assert generate["metrics"]["tunes"] == 2
