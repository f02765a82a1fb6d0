"""Installs reproduce: the lock files match pyproject.toml, and pin what it asks for."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK_SCRIPT = ROOT / "requirements" / "lock.py"


def _pinned(lock: str) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)", lock, flags=re.M)
    return {name.lower().replace("_", "-"): version for name, version in found}


def test_the_locks_match_pyproject() -> None:
    answer = subprocess.run(
        [sys.executable, str(LOCK_SCRIPT), "--check"], capture_output=True, text=True
    )
    assert answer.returncode == 0, answer.stderr


def test_check_fails_when_pyproject_changes(tmp_path: Path) -> None:
    """The check reads pyproject.toml beside requirements/: a copy with one dependency
    more must fail it."""
    (tmp_path / "requirements").mkdir()
    for lock in (ROOT / "requirements").glob("*.lock"):
        (tmp_path / "requirements" / lock.name).write_text(lock.read_text())
    (tmp_path / "requirements" / "lock.py").write_text(LOCK_SCRIPT.read_text())
    pyproject = (ROOT / "pyproject.toml").read_text()
    changed = pyproject.replace('"tqdm>=4.66",', '"tqdm>=4.66",\n    "attrs>=23",', 1)
    assert changed != pyproject
    (tmp_path / "pyproject.toml").write_text(changed)
    answer = subprocess.run(
        [sys.executable, str(tmp_path / "requirements" / "lock.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 1 and "dev.lock" in answer.stderr


def test_every_lock_pins_every_direct_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {
        "dev": [*project["dependencies"], *extras["api"], *extras["worker"]],
        "api": [*project["dependencies"], *extras["api"]],
        "worker": [*project["dependencies"], *extras["worker"]],
    }
    for name, requirements in wanted.items():
        text = (ROOT / "requirements" / f"{name}.lock").read_text()
        pinned = _pinned(text)
        for requirement in requirements:
            package = re.split(r"[\[<>=!~ ;]", requirement, maxsplit=1)[0].lower()
            assert package.replace("_", "-") in pinned, f"{name}.lock lacks {package}"
        assert text.count("--hash=sha256:") >= len(pinned)
