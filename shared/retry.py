"""How often a failing job is tried again, and how long it waits in between."""

from __future__ import annotations

from dataclasses import dataclass

from .settings import Settings


@dataclass(frozen=True)
class RetryPolicy:
    """How often a job may fail (transient error or lost worker) and how long it waits."""

    max_attempts: int = 3
    backoff_seconds: float = 2.0
    """Delay before the first retry; doubles with each failure."""
    max_delay_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.max_attempts, settings.retry_backoff_seconds)

    def gives_up(self, failures: int) -> bool:
        return failures >= self.max_attempts

    def delay(self, failures: int) -> float:
        return min(self.backoff_seconds * 2.0 ** max(failures - 1, 0), self.max_delay_seconds)
