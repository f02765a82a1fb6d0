"""Shared pieces of the benchmarks: the result record and a throwaway stack."""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from atelier.cli.processes import free_port
from atelier.cli.stack import EmbeddedStack
from atelier.client import Client
from atelier.shared.settings import Settings


@dataclass
class Result:
    name: str
    value: float
    baseline: float
    baseline_name: str
    unit: str
    ratio: float
    goal: str
    met: bool
    notes: str = ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def stack(
    roles: tuple[str, ...] = ("train", "generate"),
) -> Iterator[tuple[EmbeddedStack, Client]]:
    """An `atelier up` stack of its own (own redis-server, local storage) in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="atelier-bench-") as directory:
        base = Settings.from_env(
            {}, data_dir=Path(directory), log_format="text", progress_interval_seconds=0.5
        )
        running = EmbeddedStack(base, port=free_port(), worker_roles=roles)
        settings = running.start()
        try:
            yield running, Client(settings.api_url, running.api_key, timeout=120)
        finally:
            running.stop()
