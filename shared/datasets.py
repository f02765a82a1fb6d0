"""The datasets every installation has. Metadata only: loading lives in the worker."""

from __future__ import annotations

from pydantic import BaseModel


class DatasetInfo(BaseModel):
    name: str
    description: str
    modality: str
    image_size: int
    channels: int
    count: int
    builtin: bool = True


BUILTIN_DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            name="digits",
            description=(
                "scikit-learn's 1,797 handwritten digits (8x8, 16 grey levels, ten classes), "
                "upscaled to 28x28 with bicubic interpolation."
            ),
            modality="image",
            image_size=28,
            channels=1,
            count=1797,
        ),
        DatasetInfo(
            name="shapes",
            description=(
                "4,096 procedurally generated white circles, squares and triangles of random "
                "size and position on black, 28x28; generated from a fixed seed."
            ),
            modality="image",
            image_size=28,
            channels=1,
            count=4096,
        ),
    )
}
