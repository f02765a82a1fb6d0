"""``atelier up`` in the foreground: start the stack, supervise it until a signal, then a
teardown that nothing interrupts.

The first SIGINT, SIGTERM or SIGHUP ends the loop; any signal after that, while the
stack stops, is noted and ignored, so the teardown always runs to its end (every child
gets a bounded grace, then SIGKILL to its whole process group). A teardown cut short by
a second Ctrl-C is how a worker used to outlive the stack.
"""

from __future__ import annotations

import _thread
import contextlib
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import click

from atelier.client import Client

from .datadir import DataDirInUse
from .processes import ChildExited
from .stack import REDIS_PASSWORD_FILE, EmbeddedStack

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SUPERVISE_EVERY_SECONDS = 0.5


class StopRequest:
    """The signal handler: the first signal interrupts, later ones are only noted."""

    def __init__(self) -> None:
        self.stopping = False
        self.signalled_at: float | None = None

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.handle)

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping:
            click.echo(f"{signal.Signals(signum).name}: already stopping, please wait", err=True)
            return
        self.stopping = True
        self.signalled_at = time.monotonic()
        raise KeyboardInterrupt


def say(line: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {line}", err=True)


def run_up(
    stack: EmbeddedStack, demo: bool, demo_steps: int | None, exit_after_demo: bool
) -> None:
    request = StopRequest()
    request.install()
    stack.say = say
    try:
        _serve(stack, demo, demo_steps, exit_after_demo)
    except KeyboardInterrupt:
        click.echo("\nstopping…")
    except (ChildExited, DataDirInUse) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        request.stopping = True  # from here on a signal cannot cut the teardown short
        started, running = time.monotonic(), bool(stack.processes)
        stack.stop()
        # A Ctrl-C while the stack was still starting (the API already answering, the
        # stack's own readiness wait not yet past) was stopped by ``start`` itself.
        if running or request.signalled_at is not None:
            since = request.signalled_at or started
            click.echo(f"stopped ({time.monotonic() - since:.1f}s).")


def _serve(
    stack: EmbeddedStack, demo: bool, demo_steps: int | None, exit_after_demo: bool
) -> None:
    settings = stack.start()
    click.echo(f"Atelier is up at {settings.api_url} (data in {stack.data_dir})")
    click.echo(f"  export ATELIER_API_URL={settings.api_url}")
    click.echo(f"  export ATELIER_API_KEY={stack.api_key}")
    click.echo(f"  export ATELIER_REDIS_URL={redis_url_for_shell(settings.redis_url, stack)}")
    click.echo(f"  docs: {settings.api_url}/v1/docs/redoc/   logs: {stack.data_dir}/logs/")
    if demo:
        from .demo import run_demo

        client = Client(settings.api_url, stack.api_key, timeout=60)
        with supervised_in_background(stack):
            run_demo(client, stack.data_dir / "demo", demo_steps)
        if exit_after_demo:
            return
    click.echo("Press Ctrl-C to stop.")
    while True:
        stack.supervise()
        time.sleep(SUPERVISE_EVERY_SECONDS)


def redis_url_for_shell(url: str, stack: EmbeddedStack) -> str:
    """The Redis URL for `atelier keys`, with the password read from its file by the shell
    rather than printed (it would stay in terminal scrollback and CI logs)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    secret = f"$(cat {shlex.quote(str(stack.data_dir / REDIS_PASSWORD_FILE))})"
    netloc = f"{parts.username}:{secret}@{parts.hostname}:{parts.port}"
    return '"' + urlunsplit(parts._replace(netloc=netloc)) + '"'


@contextlib.contextmanager
def supervised_in_background(stack: EmbeddedStack) -> Iterator[None]:
    """Supervise from a thread while the main thread is busy (the demo). A stack that gives
    up interrupts the main thread as a signal would, and its reason is raised there."""
    done = threading.Event()
    failed: list[ChildExited] = []

    def watch() -> None:
        while not done.wait(SUPERVISE_EVERY_SECONDS):
            try:
                stack.supervise()
            except ChildExited as exc:
                failed.append(exc)
                _thread.interrupt_main()
                return

    thread = threading.Thread(target=watch, name="atelier-supervisor", daemon=True)
    thread.start()
    try:
        yield
    except KeyboardInterrupt:
        if failed:
            raise failed[0] from None
        raise
    finally:
        done.set()
        thread.join()
