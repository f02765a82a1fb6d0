"""The README stays a front page people finish: its two commands exist and CI runs the
test one, and it is short (the rest is in docs/; every setting is on docs/configuration.md,
checked by tests/test_docs.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_README_LINES = 300


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./dev test" in readme and "./dev demo" in readme
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= MAX_README_LINES
