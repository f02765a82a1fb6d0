"""The compose test's images, built in the background from the start of the session.

Building them (a debootstrapped Debian, three stand-ins, Atelier's two images with their
locked dependencies) takes two to three minutes on a fresh CI machine, most of it waiting on
the package mirrors. When the run selects a ``podman`` test, a thread starts that build as
soon as collection ends, and the podman tests are moved to the end of the run, so the build
overlaps the rest of the suite instead of adding to it. The ``podman`` fixture waits for it;
a build that failed fails the fixture with the build's own error.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest

from tests.podman_images import Podman, build_images, missing_tools, podman_in


class Prebuild:
    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="atelier-podman-")
        self.podman: Podman = podman_in(Path(self._directory.name))
        # At the lowest CPU and disk priority: the tests running meanwhile (some of them
        # timed, such as a cancel's few seconds) come first, and the build takes what they
        # leave. At normal priority, a build that had to install the locks into the images
        # again slowed the first tests past their bounds in a CI run.
        self.podman.prefix = ["nice", "-n", "19", "ionice", "-c", "3"]
        self._done = threading.Event()
        self._summary = ""
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._build, name="podman-prebuild", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            self._summary = build_images(self.podman)
        except BaseException as exc:  # handed to the fixture that waits
            self._error = exc
        finally:
            self._done.set()

    def wait(self, timeout: float) -> str:
        if not self._done.wait(timeout):
            raise TimeoutError(f"the images were not built within {timeout:.0f} s")
        if self._error is not None:
            raise RuntimeError(f"building the images failed: {self._error}") from self._error
        return self._summary

    def stop(self) -> None:
        """At the session's end: stop a build still running, and remove its directory."""
        if not self._done.is_set():
            self.podman.stop()
            self._done.wait(60)
        self._directory.cleanup()


_prebuild: Prebuild | None = None


def images_built(timeout: float) -> str:
    """Wait for the background build (starting one if the session did not) and say what
    it built."""
    global _prebuild
    if _prebuild is None:
        _prebuild = Prebuild()
    return _prebuild.wait(timeout)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The podman tests last, keeping the order of the rest."""
    items.sort(key=lambda item: item.get_closest_marker("podman") is not None)


def pytest_collection_finish(session: pytest.Session) -> None:
    global _prebuild
    selected = any(item.get_closest_marker("podman") for item in session.items)
    if selected and not session.config.option.collectonly and missing_tools() is None:
        _prebuild = Prebuild()


def pytest_sessionfinish() -> None:
    if _prebuild is not None:
        _prebuild.stop()
