"""Small pure pieces: GPU selection, the model cache, image grids, CLI params."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from atelier.shared.images import encode_png, grid
from atelier.workers.cache import LoadedModels
from atelier.workers.gpu import visible_gpus


def test_gpu_setting() -> None:
    assert visible_gpus("none") == []
    assert visible_gpus("0, 2") == ["0", "2"]


def test_loaded_models_evicts_least_recently_used() -> None:
    cache: LoadedModels[str] = LoadedModels(2)
    loads: list[str] = []

    def loader(name: str) -> Callable[[], str]:
        def load() -> str:
            loads.append(name)
            return name.upper()

        return load

    assert cache.get_or_load("a", loader("a")) == ("A", False)
    assert cache.get_or_load("b", loader("b")) == ("B", False)
    assert cache.get_or_load("a", loader("a")) == ("A", True)
    cache.get_or_load("c", loader("c"))  # evicts b, the least recently used
    assert cache.get_or_load("a", loader("a"))[1] is True
    assert cache.get_or_load("b", loader("b"))[1] is False
    assert loads == ["a", "b", "c", "b"]


def test_grid_layout_and_png() -> None:
    tiles = np.full((5, 4, 4, 1), 200, dtype=np.uint8)
    canvas = grid(tiles, columns=3, padding=1)
    assert canvas.shape == (2 * 5 + 1, 3 * 5 + 1, 1)
    assert canvas[1, 1, 0] == 200 and canvas[0, 0, 0] == 0
    assert canvas[6:10, 11:15].max() == 0  # the sixth slot is empty
    assert encode_png(canvas)[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("channels", [1, 3])
def test_fast_png_encoder_round_trips_through_pillow(channels: int) -> None:
    import io
    import zipfile

    from PIL import Image

    from atelier.shared.images import encode_pngs, zip_pngs

    images = np.random.default_rng(channels).integers(0, 256, (3, 7, 5, channels), np.uint8)
    pngs = encode_pngs(images)
    for png, expected in zip(pngs, images, strict=True):
        decoded = Image.open(io.BytesIO(png))
        assert decoded.mode == ("L" if channels == 1 else "RGB") and decoded.size == (5, 7)
        assert np.array_equal(np.asarray(decoded).reshape(expected.shape), expected)
    with zipfile.ZipFile(io.BytesIO(zip_pngs(pngs))) as archive:
        assert archive.namelist() == ["0000.png", "0001.png", "0002.png"]
        assert archive.read("0002.png") == pngs[2]


def test_cli_param_parsing() -> None:
    import click

    from atelier.cli.main import _parse_params

    assert _parse_params(("steps=5", "dataset=digits", "lr=0.1")) == {
        "steps": 5,
        "dataset": "digits",
        "lr": 0.1,
    }
    with pytest.raises(click.BadParameter):
        _parse_params(("steps",))
