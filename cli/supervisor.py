"""The CLI's one process supervisor: restarting children that crash, and giving up on
one that will not stay up. ``atelier up`` checks its stack's children with it between its
own rounds; ``atelier worker`` on a node with GPUs runs one Celery worker per GPU under
``run_supervised``.

A child that exits while the stack runs (killed, out of memory, a bug) is restarted with
the same command after a backoff (1, 2, 4 … s, capped), with a log line naming it, how it
ended and its log; the others keep serving. Redis comes back on the same port and the same
append-only file, and every client of it reconnects by itself: the API and the job
processes through ``connect``'s retries, the reaper and lease threads on their next
round, and Celery's consumer through ``broker_connection_retry``.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

from .processes import ChildExited, ManagedProcess, describe_exit


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a crashed child and when to stop trying.

    Five crashes of one child in five minutes means it will not stay up (a bad setting, a
    full disk, a port someone took, a model that kills its process at once): restarting it
    for longer only hides that, so the stack stops and says why. A child that crashed once
    an hour ago starts again with the shortest backoff, since old crashes leave the window.
    """

    max_crashes: int = 5
    window_seconds: float = 300.0
    first_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    clean_exit_is_done: bool = False
    """Whether a child that exits with code 0 on its own has finished (a one-job worker,
    or one someone stopped warmly) rather than crashed. ``atelier up``'s children never
    exit 0 while the stack runs, so there it is a crash like any other end."""

    def backoff(self, crashes: int) -> float:
        """Seconds to wait before the restart that follows the ``crashes``-th crash."""
        doubled = self.first_backoff_seconds * 2.0 ** max(crashes - 1, 0)
        return min(doubled, self.max_backoff_seconds)


class GaveUp(ChildExited):
    """A child crashed ``max_crashes`` times within the window; the stack stops."""


@dataclass
class Supervisor:
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    say: Callable[[str], None] = print
    restarts: int = 0
    done: set[str] = field(default_factory=set)
    """Children that finished (``clean_exit_is_done``): never restarted."""
    _crashes: dict[str, list[float]] = field(default_factory=dict, init=False)
    _due: dict[str, float] = field(default_factory=dict, init=False)
    """Children waiting out their backoff: when each is restarted."""

    def check(self, processes: Sequence[ManagedProcess]) -> None:
        """Note children that exited and restart those whose backoff is over; ``GaveUp``
        when one has crashed too often."""
        now = time.monotonic()
        for process in processes:
            if process.name in self.done:
                continue
            if process.name in self._due:
                if now >= self._due[process.name]:
                    del self._due[process.name]
                    process.restart()
                    self.restarts += 1
                    self.say(f"{process.name} restarted (pid {process.process.pid})")
            elif not process.alive():
                if self.policy.clean_exit_is_done and process.process.returncode == 0:
                    self.done.add(process.name)
                    self.say(f"{process.name} finished (exit 0)")
                else:
                    self._crashed(process, now)

    def _crashed(self, process: ManagedProcess, now: float) -> None:
        # What the child started dies with it: a job process left training, or a gunicorn
        # worker holding the API's port, must not outlive its parent.
        process.signal_group(signal.SIGKILL)
        window = self.policy.window_seconds
        recent = [t for t in self._crashes.get(process.name, []) if now - t < window]
        recent.append(now)
        self._crashes[process.name] = recent
        ended = f"{process.name} {describe_exit(process.process.returncode)}"
        up_for = now - process.started_at
        if len(recent) >= self.policy.max_crashes:
            raise GaveUp(
                f"giving up on {process.name}: it crashed {len(recent)} times within "
                f"{self.policy.window_seconds:.0f}s (last: {ended} after {up_for:.0f}s up); "
                f"stopping the stack; {process.log_report()}"
            )
        delay = self.policy.backoff(len(recent))
        self._due[process.name] = now + delay
        self.say(
            f"{ended} after {up_for:.0f}s up; restarting it in {delay:.0f}s "
            f"(crash {len(recent)} of {self.policy.max_crashes} allowed within "
            f"{self.policy.window_seconds:.0f}s); log: {process.log}"
        )


def run_supervised(
    processes: Sequence[ManagedProcess],
    policy: RestartPolicy,
    say: Callable[[str], None] = print,
    poll_seconds: float = 0.5,
) -> int:
    """Keep ``processes`` up until each has finished or a SIGTERM or SIGINT comes; returns
    the highest exit code. A crash is restarted by ``policy``; once it gives up, the others
    are stopped and the answer is 1.

    A signal goes to each child once, not to its group: each runs in its own session, so
    a terminal's Ctrl-C reaches it through us only. Reaching a Celery worker twice (from
    the terminal and forwarded) is its cold shutdown, which kills the running job instead
    of draining it. Whatever a child leaves behind (a job process of a worker that was
    SIGKILLed) is killed once it has exited. A child killed by signal N counts as 128 + N."""
    supervisor = Supervisor(policy, say)
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for process in processes:
            if process.alive():
                with contextlib.suppress(ProcessLookupError):
                    process.process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping and len(supervisor.done) < len(processes):
            try:
                supervisor.check(processes)
            except GaveUp as exc:
                say(str(exc))
                forward(signal.SIGTERM, None)
                _wait_all(processes)
                return 1
            time.sleep(poll_seconds)
        _wait_all(processes)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return max(_exit_status(process.process.returncode or 0) for process in processes)


def _exit_status(code: int) -> int:
    """A shell's status for a child's end: 128 + N for one killed by signal N."""
    return 128 - code if code < 0 else code


def _wait_all(processes: Sequence[ManagedProcess]) -> None:
    """Wait for every child to end on its own, then kill what each one left behind."""
    for process in processes:
        process.process.wait()
    for process in processes:
        process.signal_group(signal.SIGKILL)
        process.close_log()
