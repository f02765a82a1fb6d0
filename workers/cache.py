"""A small LRU for loaded models (functools.lru_cache cannot key on an id while the
loader needs the job's storage, so the cache takes the loader per call)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LoadedModels(Generic[T]):
    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 1)
        self._items: OrderedDict[str, T] = OrderedDict()

    def get_or_load(self, model_id: str, load: Callable[[], T]) -> tuple[T, bool]:
        """The cached value and True, or a freshly loaded one and False."""
        if model_id in self._items:
            self._items.move_to_end(model_id)
            return self._items[model_id], True
        value = load()
        self._items[model_id] = value
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value, False
