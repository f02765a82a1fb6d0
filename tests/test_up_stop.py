"""``atelier up`` says it stopped whenever it was stopped, Ctrl-C during the start included.

A clean-clone CI run sent SIGINT just after the API answered ``/readyz`` but before the
stack's own readiness wait had seen it: ``EmbeddedStack.start`` stopped what it had started
and re-raised, and ``up`` printed "stopping…" and never "stopped (…)", as if the teardown
had been cut short. The stand-in stack below is interrupted the same way."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field

import pytest

from atelier.cli.up import run_up


@dataclass
class StartInterrupted:
    """Starts one child, is signalled while starting, and stops it itself as ``start`` does."""

    processes: list[str] = field(default_factory=list)
    stops: int = 0
    say: object = None

    def start(self) -> None:
        self.processes.append("api")
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the handler raises KeyboardInterrupt
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.stops += 1
        self.processes.clear()


def test_ctrl_c_while_starting_still_says_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    stack = StartInterrupted()
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    handlers = {sig: signal.getsignal(sig) for sig in signals}
    try:
        run_up(stack, demo=False, demo_steps=None, exit_after_demo=False)  # type: ignore[arg-type]
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    out = capsys.readouterr().out
    assert "\nstopping…\n" in out and "\nstopped (" in out, out
    assert stack.stops >= 1 and stack.processes == []
