"""The README documents every setting, and its two commands exist."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from atelier.shared.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        ENV_PREFIX + f.name.upper()
        for f in fields(Settings)
        if ENV_PREFIX + f.name.upper() not in readme
    ]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./dev test" in readme and "./dev demo" in readme
    assert "./dev test" in (ROOT / ".ci" / "run").read_text()
