"""The suite's tiers, as pytest markers (pyproject.toml), and the fast tier's promise kept.

- **fast**: no marker. The in-process API on the real redis-server, no worker, and no
  TensorFlow: neither imported nor run. ``./dev test --fast`` (``-m "not slow"``).
- **integration**: ``slow``. Stacks, workers, the CLI against a stack, and TensorFlow.
  ``./dev test --integration`` (``-m "slow and not quality"``); ``podman`` tests (the
  compose file in podman) are among them.
- **quality**: ``quality`` (and ``slow``). Trained models judged on their output: the
  default recipes' trainings and a small melody run. ``./dev test --quality`` (``-m quality``).

Tests using a stack fixture are marked ``slow`` here, as are the modules that import
TensorFlow when imported (``TENSORFLOW_MODULES``): those are not even imported when ``-m``
leaves ``slow`` out, so collecting the fast tier loads no TensorFlow. When a run selects
no ``slow`` test, TensorFlow (or Keras) loaded after collection, by a test or by the end of
the session fails the run, naming who loaded it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression

# Fixtures that start gunicorn and Celery workers: a test using one is slow.
STACK_FIXTURES = frozenset({"local_stack", "s3_stack", "stack", "rel"})
# Test modules that import TensorFlow at import time (directly or through the workers'
# model code). A module missing here fails the fast tier's collection, saying so.
TENSORFLOW_MODULES = frozenset(
    {
        "test_melody_guard.py",
        "test_model_units.py",
        "test_textgen_decoding.py",
    }
)
TENSORFLOW = ("tensorflow", "keras")


def tensorflow_loaded() -> bool:
    return any(name in sys.modules for name in TENSORFLOW)


def _m_selects(config: pytest.Config, *markers: str) -> bool:
    """Whether ``-m`` selects a test carrying exactly ``markers`` (pytest's own evaluation
    of the expression, so a module can be judged before it is imported)."""
    expression = config.getoption("markexpr")
    if not expression:
        return True

    def carries(name: str, /, **_: str | int | bool | None) -> bool:
        return name in markers

    return Expression.compile(expression).evaluate(carries)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A TensorFlow module is not imported when ``-m`` leaves its tests (``slow``) out."""
    if collection_path.name in TENSORFLOW_MODULES and not _m_selects(config, "slow"):
        return True
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark stack and TensorFlow tests ``slow`` before ``-m`` selects (tryfirst)."""
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())) or (
            item.path.name in TENSORFLOW_MODULES
        ):
            item.add_marker(pytest.mark.slow)


class TensorFlowWatch:
    """Who first loaded TensorFlow: a module being collected, or a test being run."""

    def __init__(self) -> None:
        self.culprit: str | None = "before collection" if tensorflow_loaded() else None

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Iterator[None]:
        report = yield
        if self.culprit is None and tensorflow_loaded():
            self.culprit = f"importing {collector.nodeid}"
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        outcome = yield
        if self.culprit is None and tensorflow_loaded():
            self.culprit = f"running {item.nodeid}"
        return outcome

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self._fast_only(session) and self.culprit is not None:
            pytest.exit(self._message("collecting"), returncode=pytest.ExitCode.TESTS_FAILED)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._fast_only(session) and self.culprit is not None:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(self._message("the session"), red=True, bold=True)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @staticmethod
    def _fast_only(session: pytest.Session) -> bool:
        """The run selected no slow test: the fast tier, or a part of it."""
        return not any(item.get_closest_marker("slow") for item in session.items)

    def _message(self, when: str) -> str:
        return (
            f"the fast tier loaded TensorFlow by the end of {when} ({self.culprit}): mark "
            "the test slow, or list its module in TENSORFLOW_MODULES (tests/tiers.py)"
        )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(TensorFlowWatch(), "atelier-tensorflow-watch")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A fast test that loads TensorFlow fails itself, by name."""
    loaded_before = tensorflow_loaded()
    result = yield
    if not loaded_before and tensorflow_loaded() and not item.get_closest_marker("slow"):
        pytest.fail(f"{item.nodeid} imported TensorFlow: mark it slow", pytrace=False)
    return result
