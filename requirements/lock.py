"""The lock files: every package Atelier installs, pinned with its hashes, per use.

    ./dev lock                  # resolve again (after a change to pyproject.toml, or to take
                                # new releases), then run the tests and commit the .lock files
    python requirements/lock.py --check    # CI: do the locks still match pyproject.toml?

``dev.lock`` is what ``./dev`` and CI install (the project with every extra, the tools of
the tests); ``api.lock``, ``worker.lock`` and ``worker-gpu.lock`` are what the images
install. Each is resolved by ``uv pip compile --universal`` for Python 3.11 and up, on any
platform, and starts with a digest of the dependency tables of pyproject.toml it was
resolved from: ``--check`` fails when the two disagree, so a dependency changed without a
new lock cannot land.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "requirements"
LOCKS = {"dev": ["dev"], "api": ["api"], "worker": ["worker"], "worker-gpu": ["worker", "gpu"]}
"""Lock name -> the extras it installs beside the core dependencies."""
DIGEST_PREFIX = "# pyproject-dependencies-sha256: "


def digest() -> str:
    """A digest of what pyproject.toml asks to install (and nothing else in it)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
    }
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()


def recorded(lock: Path) -> str | None:
    for line in lock.read_text().splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).strip()
    return None


def check() -> list[str]:
    """What is out of date: a missing lock, or one resolved from other dependencies."""
    now = digest()
    stale = []
    for name in LOCKS:
        lock = HERE / f"{name}.lock"
        if not lock.is_file():
            stale.append(f"{lock.name} is missing")
        elif recorded(lock) != now:
            stale.append(f"{lock.name} was resolved from other dependencies than pyproject.toml's")
    return stale


def resolve(uv: str) -> None:
    now = digest()
    for name, extras in LOCKS.items():
        lock = HERE / f"{name}.lock"
        extra_args = [arg for extra in extras for arg in ("--extra", extra)]
        subprocess.run(
            [
                uv,
                "pip",
                "compile",
                str(ROOT / "pyproject.toml"),
                *extra_args,
                "--generate-hashes",
                "--universal",
                "--python-version",
                "3.11",
                "--no-header",
                "--quiet",
                "-o",
                str(lock),
            ],
            check=True,
        )
        body = lock.read_text()
        header = (
            f"# Atelier's {name} lock (requirements/lock.py; refresh with ./dev lock).\n"
            f"{DIGEST_PREFIX}{now}\n"
        )
        lock.write_text(header + body)
        print(f"wrote {lock.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a lock is out of date")
    args = parser.parse_args()
    if args.check:
        stale = check()
        for problem in stale:
            print(f"requirements: {problem}; run ./dev lock", file=sys.stderr)
        return 1 if stale else 0
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    resolve(uv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
