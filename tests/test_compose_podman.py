"""docker-compose.yml run for real, with podman and no registry (issue 22, point 4).

Stand-ins for the public images are built from Debian's packages (``tests/podman_images``)
under the names the compose file pins; Atelier's own images are built from
``deploy/*.Dockerfile`` as they are, by ``podman-compose build``. All of them are built in
the background from the session's start (``tests/podman_prebuild.py``), and the podman
tests run last. The stack comes up with the ``cpu`` profile, and with
docker-compose.ha.yml (a replica, three sentinels, Atelier through them) in a second run.
Each run creates a key in the API container, trains a tiny dcgan through the published API
port, generates from it, downloads an output through its presigned URL, and tears it all
down, volumes included. Prometheus and Grafana are left out (not started): nothing here
depends on them and their stand-ins would only add build time.

Runs as root where podman, runc and debootstrap are installed (.ci/run installs them); skips
elsewhere, and where podman cannot start a container, saying why. Marker ``podman``.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from atelier.cli.processes import free_port
from tests.conftest import IN_CI, TINY_TRAIN
from tests.podman_images import (
    ROOT,
    SERVICES,
    Podman,
    compose_argv,
    compose_env,
    missing_tools,
    pinned_images,
    podman_in,
)
from tests.podman_prebuild import images_built

pytestmark = [pytest.mark.podman, pytest.mark.slow]

WAIT_SECONDS = 600
# The background build (tests/podman_prebuild.py) started when collection ended; on a
# fresh machine it takes two to three minutes, more on a loaded one.
BUILD_SECONDS = 1800


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    reason = missing_tools()
    if reason is not None:
        if IN_CI and os.geteuid() == 0:
            pytest.fail(f"{reason}, in CI")
        pytest.skip(reason)
    tool = podman_in(tmp_path_factory.mktemp("podman"))
    started = time.monotonic()
    summary = images_built(BUILD_SECONDS)
    print(f"{summary}; waited {time.monotonic() - started:.0f} s for the build")
    try:
        tool.run(
            "run",
            "--rm",
            "--pull=never",
            "--network=none",
            pinned_images()["redis"],
            "true",
            timeout=60,
        )
    except RuntimeError as exc:
        pytest.skip(f"podman cannot start a container here: {exc}")
    return tool


@dataclass
class Stack:
    podman: Podman
    argv: list[str]
    env: dict[str, str]
    api: str
    s3_port: int
    ha: bool

    def compose(self, *args: str, timeout: float = WAIT_SECONDS) -> str:
        done = subprocess.run(
            [*self.argv, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"podman-compose {args[:2]}: {(done.stdout + done.stderr)[-4000:]}")
        return done.stdout

    def logs(self) -> str:
        return "\n".join(
            f"--- {service}\n{self.podman.run('logs', '--tail', '40', self.container(service))}"
            for service in SERVICES
        )

    def container(self, service: str) -> str:
        return self.podman.run(
            "ps",
            "-a",
            "--filter",
            f"label=io.podman.compose.service={service}",
            "--filter",
            f"label=io.podman.compose.project={self.env['COMPOSE_PROJECT_NAME']}",
            "--format",
            "{{.Names}}",
        ).split()[0]


@pytest.fixture(params=[False, True], ids=["cpu", "ha"])
def stack(request: pytest.FixtureRequest, podman: Podman) -> Iterator[Stack]:
    api_port, s3_port = free_port(), free_port()
    env = compose_env(podman, f"atelier-test-{os.getpid()}", api_port, s3_port)
    argv = compose_argv(request.param)
    stack = Stack(podman, argv, env, f"http://127.0.0.1:{api_port}", s3_port, request.param)
    started = time.monotonic()  # the images: built by podman-compose in the prebuild
    try:
        stack.compose("up", "-d", *SERVICES)
        wait_ready(stack)
        print(f"stack up in {time.monotonic() - started:.0f} s")
        yield stack
    finally:
        try:
            stack.compose("down", "-v", "-t", "10", timeout=300)
        except RuntimeError as exc:
            print(f"teardown: {exc}")


def wait_ready(stack: Stack) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if requests.get(stack.api + "/readyz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(2)
    pytest.fail(f"the API never became ready:\n{stack.logs()}")


def finished(stack: Stack, key: str, job_id: str) -> dict[str, Any]:
    """The job once it is terminal (long polls with ``Prefer: wait``)."""
    headers = {"Authorization": f"Bearer {key}", "Prefer": "wait=30"}
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        job: dict[str, Any] = requests.get(
            f"{stack.api}/v1/jobs/{job_id}", headers=headers, timeout=40
        ).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
    pytest.fail(f"job {job_id} never finished:\n{stack.logs()}")


def submit(stack: Stack, key: str, body: dict[str, Any]) -> str:
    answer = requests.post(
        f"{stack.api}/v1/jobs", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    # The containers' logs with a refusal: a 503 says only that a backing service failed.
    assert answer.status_code == 202, (answer.text, stack.logs())
    job_id: str = answer.json()["id"]
    return job_id


def presigned_download(stack: Stack, url: str) -> bytes:
    """Fetch a presigned URL, which names S3 as the containers reach it
    (http://seaweedfs:8333): connect to the published port, send that host name."""
    assert "X-Amz-Signature" in url and url.startswith("http://seaweedfs:8333/"), url
    local = url.replace("http://seaweedfs:8333", f"http://127.0.0.1:{stack.s3_port}", 1)
    answer = requests.get(local, headers={"Host": "seaweedfs:8333"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_compose_trains_generates_and_serves_a_download(stack: Stack) -> None:
    started = time.monotonic()
    key = create_key(stack)
    params = {**TINY_TRAIN, "dataset": "digits"}
    trained = finished(
        stack, key, submit(stack, key, {"type": "train", "kind": "dcgan", "params": params})
    )
    assert trained["status"] == "succeeded", (trained, stack.logs())
    made = finished(
        stack,
        key,
        submit(
            stack,
            key,
            {
                "type": "generate",
                "kind": "dcgan",
                "params": {"model_id": trained["model_id"], "n": 2},
            },
        ),
    )
    assert made["status"] == "succeeded", (made, stack.logs())
    grid = next(o for o in made["outputs"] if o["name"].endswith(".png"))
    assert presigned_download(stack, grid["url"])[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"key, train, generate, download: {time.monotonic() - started:.0f} s")
    assert_only_atelier_secrets(stack)
    melody_audio = "fluidsynth --version && test -f /usr/share/sounds/sf2/FluidR3_GM.sf2"
    cache = 'touch "$ATELIER_DATA_DIR/cache-probe"'  # the shared cache volume is writable
    stack.compose("exec", "-T", "worker-cpu", "sh", "-c", f"{melody_audio} && {cache}")
    assert_metrics_on_their_own_port(stack)
    if stack.ha:
        assert_through_the_sentinels(stack)


def assert_metrics_on_their_own_port(stack: Stack) -> None:
    """/metrics answers on the API's metrics listener (9100, unpublished), not on 8000."""
    probe = (
        "import urllib.request, urllib.error\n"
        "print(urllib.request.urlopen('http://127.0.0.1:9100/metrics').read().count(b'atelier_'))\n"
        "try:\n"
        "    urllib.request.urlopen('http://127.0.0.1:8000/metrics')\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    said = stack.compose("exec", "-T", "api", "python", "-c", probe).split()
    assert int(said[0]) > 0 and said[1] == "404", said


def create_key(stack: Stack) -> str:
    """A key made in the API container. With HA the key is confirmed by the replica, whose
    first sync can come after the API answers ready (podman-compose starts services without
    waiting for their health checks): the CLI then says to retry shortly, and we do."""
    deadline = time.monotonic() + 60
    argv = ["exec", "-T", "api", "atelier", "keys", "create", "--owner", "podman"]
    while True:
        try:
            made = stack.compose(*argv)
        except RuntimeError as exc:
            if "Retry shortly" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)
            continue
        return made.strip().splitlines()[-1]


def assert_through_the_sentinels(stack: Stack) -> None:
    """Atelier went through the sentinels, and the replica holds what it wrote."""
    env = stack.compose("exec", "-T", "api", "env")
    assert "ATELIER_REDIS_URL=redis+sentinel://atelier:" in env
    assert "ATELIER_REDIS_MIN_REPLICAS=1" in env
    password = stack.env["REDIS_REPLICATION_PASSWORD"]  # ROLE and INFO: not Atelier's to run
    auth = ["--no-auth-warning", "--user", "replication", "--pass", password]
    role = stack.compose("exec", "-T", "redis-replica", "redis-cli", *auth, "role")
    assert role.split()[0] == "slave", role
    keys = stack.compose("exec", "-T", "redis-replica", "redis-cli", *auth, "info", "keyspace")
    assert "db0:keys=" in keys, keys


def assert_only_atelier_secrets(stack: Stack) -> None:
    """Atelier's containers hold no admin secret, and its S3 identity is refused anything
    beyond its bucket."""
    import boto3
    from botocore.exceptions import ClientError

    for service in SERVICES:
        env = stack.compose("exec", "-T", service, "env")
        admins = ("SEAWEEDFS_ADMIN_SECRET_ACCESS_KEY", "GF_SECURITY_ADMIN_PASSWORD")
        for admin in (*admins, "REDIS_REPLICATION_PASSWORD"):
            assert admin not in env and stack.env[admin] not in env, (service, admin)
    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{stack.s3_port}",
        aws_access_key_id=stack.env["ATELIER_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=stack.env["ATELIER_S3_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    assert s3.list_objects_v2(Bucket="atelier", MaxKeys=1)["KeyCount"] == 1
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.create_bucket(Bucket="elsewhere")
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_bucket(Bucket="atelier")
