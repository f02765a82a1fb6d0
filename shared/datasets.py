"""Datasets: the built-in ones every installation has, and those users upload.

Built-ins are metadata here (loading lives in the worker). An uploaded dataset is checked
and normalised by the API, stored as one object (``images.npz`` of uint8 pixels or
``corpus.txt``), and described by a record in Redis.
"""

from __future__ import annotations

from typing import Literal, cast

import redis
from pydantic import BaseModel

from .redis_keys import KEYS, RedisKeys

Modality = Literal["image", "text", "music"]


class DatasetInfo(BaseModel):
    name: str
    """A built-in's name, or an upload's id (``ds_…``): what a job's params name."""
    title: str = ""
    description: str
    modality: Modality
    image_size: int | None = None
    channels: int | None = None
    count: int
    """Images, characters of text, or tunes."""
    classes: int = 0
    """Class labels the images carry (digits: 10); 0 when unlabelled. A dcgan trained on a
    labelled set draws the class it is asked for."""
    class_names: list[str] = []
    """Each class's name, in class order (class 0 first): an upload's folder names or
    string labels, sorted (``api.labelled``); numbered labels are named "0", "1", …"""
    class_counts: list[int] = []
    """Images of each class, in the same order."""
    size_bytes: int = 0
    builtin: bool = True
    owner: str | None = None
    data_key: str | None = None
    preview_key: str | None = None
    excerpt: str | None = None
    created_at: float | None = None


BUILTIN_DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            name="digits",
            title="Handwritten digits",
            description=(
                "scikit-learn's 1,797 handwritten digits (8x8, 16 grey levels, ten classes), "
                "upscaled to 28x28 with bicubic interpolation."
            ),
            modality="image",
            image_size=28,
            channels=1,
            count=1797,
            classes=10,
            class_names=[str(digit) for digit in range(10)],
            class_counts=[178, 182, 177, 183, 181, 182, 181, 179, 174, 180],
        ),
        DatasetInfo(
            name="shapes",
            title="Shapes",
            description=(
                "4,096 procedurally generated white circles, squares and triangles of random "
                "size and position on black, 28x28; generated from a fixed seed."
            ),
            modality="image",
            image_size=28,
            channels=1,
            count=4096,
            classes=3,
            class_names=["circle", "square", "triangle"],
            class_counts=[1366, 1365, 1365],
        ),
        DatasetInfo(
            name="fables",
            title="Generated fables",
            description=(
                "About 300 KB of short animal fables written by a seeded grammar that ships "
                "with Atelier (workers/corpus.py); generated, so free of any licence."
            ),
            modality="text",
            count=300_000,
        ),
        DatasetInfo(
            name="folk",
            title="Folk tunes in ABC",
            description=(
                "About 11,000 public-domain folk tunes in ABC notation from music21's corpus "
                "(Ryan's Mammoth Collection, 1883; O'Neill's 1850 Irish tunes; the Essen "
                "folk-song collection), normalised; tunes music21 cannot parse are dropped. "
                "Built on a worker's first use and cached (workers/kinds/melody/folk.py)."
            ),
            modality="music",
            count=11_211,
        ),
    )
}


class DatasetStore:
    def __init__(self, client: redis.Redis, keys: RedisKeys = KEYS) -> None:
        self._redis = client
        self._keys = keys

    def save(self, dataset: DatasetInfo) -> DatasetInfo:
        assert dataset.owner is not None
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._keys.dataset(dataset.name), dataset.model_dump_json())
        pipe.zadd(self._keys.owner_datasets(dataset.owner), {dataset.name: 0})
        pipe.execute()
        return dataset

    def get_for_owner(self, name: str, owner: str) -> DatasetInfo | None:
        """A built-in, or the owner's upload; None for anything else."""
        if name in BUILTIN_DATASETS:
            return BUILTIN_DATASETS[name]
        raw = cast(bytes | None, self._redis.get(self._keys.dataset(name)))
        if raw is None:
            return None
        dataset = DatasetInfo.model_validate_json(raw)
        return dataset if dataset.owner == owner else None

    def list_for_owner(self, owner: str) -> list[DatasetInfo]:
        ids = cast(
            list[bytes], self._redis.zrevrangebylex(self._keys.owner_datasets(owner), "+", "-")
        )
        pipe = self._redis.pipeline(transaction=False)
        for dataset_id in ids:
            pipe.get(self._keys.dataset(dataset_id.decode()))
        uploads = [DatasetInfo.model_validate_json(raw) for raw in pipe.execute() if raw]
        return [*BUILTIN_DATASETS.values(), *uploads]

    def add_user(self, name: str, job_id: str) -> None:
        """Remember that a job reads this dataset (deletes check it)."""
        if name not in BUILTIN_DATASETS:
            self._redis.sadd(self._keys.dataset_users(name), job_id)

    def remove_user(self, name: str, job_id: str) -> None:
        """A deleted job no longer holds its dataset."""
        self._redis.srem(self._keys.dataset_users(name), job_id)

    def users(self, name: str) -> list[str]:
        members = cast(set[bytes], self._redis.smembers(self._keys.dataset_users(name)))
        return [m.decode() for m in members]

    def delete(self, dataset: DatasetInfo) -> None:
        assert dataset.owner is not None
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.dataset(dataset.name), self._keys.dataset_users(dataset.name))
        pipe.zrem(self._keys.owner_datasets(dataset.owner), dataset.name)
        pipe.execute()
