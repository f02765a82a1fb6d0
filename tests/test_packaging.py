"""The distribution: built from what the Dockerfiles copy, it holds only ``atelier/...``
(every module of the service under the one import root), and building prints no
setuptools warning."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = [ROOT / "deploy" / "api.Dockerfile", ROOT / "deploy" / "worker.Dockerfile"]


def _copied(dockerfile: Path) -> list[str]:
    """The repository paths a Dockerfile copies into its build context before it installs
    Atelier (`pip install --no-deps .`); the lock file it installs first goes to /tmp."""
    text = dockerfile.read_text().split("pip install --no-deps .", 1)[0]
    sources: list[str] = []
    for line in text.splitlines():
        if (match := re.match(r"COPY (.+) (\S+)$", line)) and not match.group(2).startswith("/tmp"):
            sources += match.group(1).split()
    return sources


def test_both_images_install_from_the_same_sources() -> None:
    assert _copied(DOCKERFILES[0]) == _copied(DOCKERFILES[1])
    assert {"atelier", "src", "api", "workers", "shared", "cli"} <= set(_copied(DOCKERFILES[0]))


def test_the_wheel_holds_only_the_import_root_and_builds_quietly(tmp_path: Path) -> None:
    context = tmp_path / "context"
    for source in _copied(DOCKERFILES[0]):
        if (ROOT / source).is_dir() and not (ROOT / source).is_symlink():
            shutil.copytree(ROOT / source, context / source, symlinks=True)
        else:
            (context / source).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / source, context / source, follow_symlinks=False)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(tmp_path), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    output = built.stdout + built.stderr
    assert not re.search(r"(?i)setuptools\w*warning|deprecat", output), output
    (wheel,) = tmp_path.glob("atelier-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    outside = [n for n in names if not n.startswith(("atelier/", "atelier-"))]
    assert outside == []
    shipped = {n for n in names if n.endswith(".py")}
    expected = {
        "atelier/" + str(path.relative_to(ROOT))
        for folder in ("api", "workers", "shared", "cli")
        for path in (ROOT / folder).rglob("*.py")
    }
    assert expected <= shipped
    assert {"atelier/__init__.py", "atelier/client.py", "atelier/py.typed"} <= set(names)
