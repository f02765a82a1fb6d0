"""The compose test's images, built in the background from the start of the session.

Building them (a debootstrapped Debian, three stand-ins, Atelier's two images with their
locked dependencies) takes two to three minutes on a fresh CI machine, most of it waiting on
the package mirrors. When the run selects a ``podman`` test, a thread starts that build as
soon as collection ends, and the podman tests are moved to the end of the run, so the build
overlaps the rest of the suite instead of adding to it. The ``podman`` fixture waits for it;
a build that failed fails the fixture with the build's own error.

Under pytest-xdist every process collects the whole run: the first to claim the run's
status directory (named by xdist's ``testrunuid``) builds, and the process that gets the
podman tests waits for the status file the builder writes (``done`` or ``failed``). The
builder waits for its build before its own session ends, since the other process may still
need it; a waiter that finds no builder any more builds itself (a cached build: seconds).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.podman_images import Podman, build_images, missing_tools, podman_in

POLL_SECONDS = 2.0
# How long a builder's session end waits for its build (the compose test's own bound).
BUILD_SECONDS = 1800


class Prebuild:
    def __init__(self, status: Path) -> None:
        self.status = status
        self._directory = tempfile.TemporaryDirectory(prefix="atelier-podman-")
        self.podman: Podman = podman_in(Path(self._directory.name))
        # At the lowest CPU and disk priority: the tests running meanwhile (some of them
        # timed, such as a cancel's few seconds) come first, and the build takes what they
        # leave. At normal priority, a build that had to install the locks into the images
        # again slowed the first tests past their bounds in a CI run.
        self.podman.prefix = ["nice", "-n", "19", "ionice", "-c", "3"]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._build, name="podman-prebuild", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            summary = build_images(self.podman)
        except BaseException as exc:  # written for the fixture that waits
            _write(self.status / "failed", f"building the images failed: {exc}")
        else:
            _write(self.status / "done", summary)
        finally:
            self._done.set()

    def finish(self, interrupted: bool) -> None:
        """At the session's end: stop a build still running if the run was interrupted, else
        let it end (another process may be waiting for it); remove its directory."""
        if not self._done.is_set():
            if interrupted:
                self.podman.stop()
            self._done.wait(BUILD_SECONDS if not interrupted else 60)
        self._directory.cleanup()


def _write(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)  # whole or absent: a waiter never reads half a message


def _status_dir(config: pytest.Config) -> Path:
    workerinput = getattr(config, "workerinput", None)
    run_id = workerinput["testrunuid"] if workerinput is not None else _LOCAL_RUN_ID
    return Path(tempfile.gettempdir()) / f"atelier-podman-build-{run_id}"


_LOCAL_RUN_ID = uuid.uuid4().hex
_prebuild: Prebuild | None = None
_status: Path | None = None


def _claim(status: Path) -> bool:
    """Whether this process is the run's builder (the first to make the directory)."""
    try:
        status.mkdir()
    except FileExistsError:
        return False
    return True


def images_built(timeout: float) -> str:
    """Wait for the run's background build (starting one if the run has none) and say what
    it built."""
    global _prebuild, _status
    if _status is None:
        _status = Path(tempfile.mkdtemp(prefix="atelier-podman-build-"))
        _prebuild = Prebuild(_status)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (_status / "done").exists():
            return (_status / "done").read_text()
        if (_status / "failed").exists():
            raise RuntimeError((_status / "failed").read_text())
        if _prebuild is None and not _status.exists():  # its builder has ended: build here
            _status = None
            return images_built(deadline - time.monotonic())
        time.sleep(POLL_SECONDS)
    raise TimeoutError(f"the images were not built within {timeout:.0f} s")


def pytest_collection_finish(session: pytest.Session) -> None:
    global _prebuild, _status
    selected = any(item.get_closest_marker("podman") for item in session.items)
    if selected and not session.config.option.collectonly and missing_tools() is None:
        _status = _status_dir(session.config)
        if _claim(_status):
            _prebuild = Prebuild(_status)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _prebuild is not None:
        _prebuild.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        shutil.rmtree(_prebuild.status, ignore_errors=True)
