"""Deploy files agree with the code and pass their tools: promtool for the alert rules
(with unit tests), the Kubernetes schemas for the manifests, and the compose file,
Dockerfiles, dashboard and `.env.example` checked against the CLI, settings and metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from atelier.shared.settings import ENV_PREFIX, Settings
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SETTINGS_ENV = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if IN_CI:
            pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus")
        pytest.skip("promtool not installed (apt-get install prometheus)")
    return found


def run(argv: list[str], cwd: Path = ROOT) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_alert_rules_pass_promtool_and_their_unit_tests() -> None:
    tool = promtool()
    assert "SUCCESS: 4 rules found" in run(
        [tool, "check", "rules", "alerts.yml"], DEPLOY / "prometheus"
    )
    assert "SUCCESS" in run([tool, "test", "rules", "alerts_test.yml"], DEPLOY / "prometheus")


def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    tool = promtool()
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    local = tmp_path / "prometheus.yml"
    local.write_text(
        config.replace("/etc/prometheus/alerts.yml", str(DEPLOY / "prometheus" / "alerts.yml"))
    )
    run([tool, "check", "config", str(local)])


def documented_metrics() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `(atelier_[a-z_]+)` \|", readme, flags=re.M))


def test_dashboard_and_alerts_use_only_metrics_that_exist() -> None:
    known = documented_metrics()
    assert len(known) >= 13
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "atelier.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs.append((DEPLOY / "prometheus" / "alerts.yml").read_text())
    used = {
        re.sub(r"_(bucket|count|sum)$", "", name)
        for expr in exprs
        for name in re.findall(r"atelier_[a-z_]+", expr)
    }
    assert used <= known, used - known
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in (
        "throughput",
        "queue depth",
        "queue wait",
        "run time",
        "failure rate",
        "training steps",
        "gpu memory",
    ):
        assert topic in titles, topic


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_services_run_real_cli_commands() -> None:
    services = compose()["services"]
    assert {
        "redis",
        "minio",
        "api",
        "worker-train",
        "worker-generate",
        "worker-cpu",
        "worker-webhooks",
        "prometheus",
        "grafana",
    } <= set(services)
    redis_start = (DEPLOY / "redis" / "start.sh").read_text()
    assert services["redis"]["entrypoint"] == ["/bin/sh", "/atelier/start.sh"]
    assert "--appendonly yes" in redis_start and "noeviction" in redis_start
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    gpu = services["worker-train"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    for name in ("api", "worker-train", "worker-generate", "worker-cpu", "worker-webhooks"):
        command = services[name]["command"]
        argv = [sys.executable, "-m", "atelier.cli.main", *command, "--help"]
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=60)
    assert services["api"]["build"]["dockerfile"] == "deploy/api.Dockerfile"
    assert "8000:8000" in services["api"]["ports"]


def test_env_example_documents_real_settings() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    names = [line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")]
    atelier = [n for n in names if n.startswith(ENV_PREFIX)]
    assert set(atelier) <= SETTINGS_ENV, set(atelier) - SETTINGS_ENV
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            above = lines[index - 1]
            assert above.startswith("#") or "=" in above, f"{line} has no comment"
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    port = dict(line.split("=", 1) for line in lines if line.startswith(ENV_PREFIX))[
        "ATELIER_WORKER_METRICS_PORT"
    ]
    targets = [
        t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    ]
    assert "api:8000" in targets
    assert all(t.endswith(f":{port}") for t in targets if t.startswith("worker"))
    assert {t.split(":")[0] for t in targets} <= set(compose()["services"])


def test_dockerfiles_keep_tensorflow_out_of_the_api_image() -> None:
    api = (DEPLOY / "api.Dockerfile").read_text()
    worker = (DEPLOY / "worker.Dockerfile").read_text()
    assert 'pip install ".[api]"' in api and "tensorflow" not in api.lower().split("#")[0]
    assert 'pip install ".[worker]"' in worker
    assert "EXPOSE 8000" in api and "EXPOSE 9808" in worker
    assert str(Settings().worker_metrics_port) == "9808"
    boot = (DEPLOY / "boot.sh").read_text()
    assert "atelier api" in boot and "atelier worker" in boot
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert not any("tensorflow" in dep or "keras" in dep for dep in extras["api"])


def manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_validate_against_the_schemas() -> None:
    import kubernetes_validate

    for doc in manifests():
        if doc["apiVersion"].startswith("keda.sh/"):
            continue
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_keda_objects_scale_the_right_queues_and_never_kill_training() -> None:
    import kubernetes_validate

    docs = {(d["kind"], d["metadata"]["name"]): d for d in manifests()}
    settings = Settings()
    scaled = docs[("ScaledObject", "atelier-worker-generate")]
    assert ("Deployment", scaled["spec"]["scaleTargetRef"]["name"]) in docs
    assert scaled["spec"]["triggers"][0]["metadata"]["listName"] == settings.generate_queue

    training = docs[("ScaledJob", "atelier-worker-train")]
    assert training["spec"]["triggers"][0]["metadata"]["listName"] == settings.train_queue
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": training["spec"]["jobTargetRef"],
    }
    kubernetes_validate.validate(job, "1.30.0", strict=True)
    pod = training["spec"]["jobTargetRef"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["worker", "--queues", "train", "--once"]
    assert pod["terminationGracePeriodSeconds"] >= 300
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert not any(k == "Deployment" and "train" in n for k, n in docs)


@pytest.mark.slow  # a real worker process trains a model with TensorFlow
def test_once_worker_exits_after_one_job(tmp_path: Path, redis_base_url: str) -> None:
    """`atelier worker --once`, as the training ScaledJob runs it: one job, then exit 0."""
    from atelier.cli.processes import ManagedProcess, child_env
    from atelier.shared.jobs import JobStore, JobType
    from atelier.shared.queue import enqueue, make_celery
    from atelier.shared.redis_client import connect

    settings = Settings(
        redis_url=f"{redis_base_url}/7",
        train_queue="once-train",
        local_storage_dir=tmp_path / "objects",
        worker_metrics_port=0,
        metrics_dir=str(tmp_path / "metrics"),
    )
    client = connect(settings.redis_url)
    client.flushdb()
    job = JobStore(client).create(
        "olga",
        JobType.TRAIN,
        "dcgan",
        {
            "dataset": "shapes",
            "steps": 3,
            "batch_size": 8,
            "latent_dim": 4,
            "base_filters": 4,
            "sample_every": 3,
            "checkpoint_every": 3,
        },
    )
    enqueue(make_celery(settings), settings, job.id, JobType.TRAIN)
    worker = ManagedProcess(
        "once",
        [sys.executable, "-m", "atelier.cli.main", "worker", "--queues", "train", "--once"],
        {**child_env(settings), "PATH": os.environ["PATH"]},
        tmp_path / "once.log",
    )
    try:
        worker.process.wait(timeout=180)
    finally:
        worker.stop()
    assert worker.process.returncode == 0, (tmp_path / "once.log").read_text()[-2000:]
    done = JobStore(client).get(job.id)
    assert done is not None and done.status.value == "succeeded"
    client.flushdb()


def test_idle_exit_waits_for_a_whole_idle_stretch() -> None:
    """Busy resets the wait: the stop comes ``idle_seconds`` after the last busy look."""
    from atelier.workers.idle_exit import IdleExit

    looks = iter([True, True, False, True] + [False] * 100)
    stopped: list[float] = []
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    thread = IdleExit(3.0, lambda: next(looks), lambda: stopped.append(now[0]), clock)
    thread.poll_seconds = 0.0
    thread.run()
    assert stopped == [8.0]  # busy at t=2, 3 and 5 (looks 1, 2, 4); idle 3 s by t=8


@pytest.mark.slow  # a real Celery worker (it never gets a job, so no TensorFlow)
def test_an_idle_once_worker_stops_instead_of_holding_its_gpu(
    tmp_path: Path, redis_base_url: str
) -> None:
    """`atelier worker --once` with nothing to claim exits 0 after ``once_idle_seconds``."""
    import time

    from atelier.cli.processes import ManagedProcess, child_env

    settings = Settings(
        redis_url=f"{redis_base_url}/7",
        train_queue="idle-train",
        once_idle_seconds=3.0,
        local_storage_dir=tmp_path / "objects",
        worker_metrics_port=0,
        metrics_dir=str(tmp_path / "metrics"),
    )
    started = time.monotonic()
    worker = ManagedProcess(
        "idle-once",
        [sys.executable, "-m", "atelier.cli.main", "worker", "--queues", "train", "--once"],
        {**child_env(settings), "PATH": os.environ["PATH"]},
        tmp_path / "idle.log",
    )
    try:
        worker.process.wait(timeout=120)
    finally:
        worker.stop()
    log = (tmp_path / "idle.log").read_text()
    assert worker.process.returncode == 0, log[-2000:]
    assert "no job for" in log and time.monotonic() - started >= 3.0


# Secrets of the compose deployment: empty in .env.example, made by deploy/make-env.sh.
COMPOSE_SECRETS = (
    "REDIS_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "ATELIER_S3_SECRET_ACCESS_KEY",
    "GF_SECURITY_ADMIN_PASSWORD",
)


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")


def test_compose_publishes_only_the_api_beyond_this_host() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            if name != "api":
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"
    assert "ports" not in compose()["services"]["redis"]


def test_compose_reads_dot_env_and_ships_no_working_secret() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "env_file: .env.example" not in text
    services = compose()["services"]
    for name in ("api", "worker-train", "worker-generate", "worker-cpu", "minio-init"):
        assert services[name]["env_file"] == ".env", name
    example = env_example()
    for secret in COMPOSE_SECRETS:
        assert example[secret] == "", f"{secret} has a default in .env.example"
    # Every use of a secret in the compose file makes compose refuse to start without it.
    uses = re.findall(r"\$\{(\w+)(:\?[^}]*)?\}", text)
    assert {name for name, _ in uses} >= {"REDIS_PASSWORD", "MINIO_ROOT_PASSWORD"}
    assert all(required for name, required in uses if name in COMPOSE_SECRETS), uses
    assert example["ATELIER_S3_ACCESS_KEY_ID"] != example["MINIO_ROOT_USER"]
    assert "ATELIER_REDIS_URL" not in example  # compose builds it with the password
    api = services["api"]["environment"]
    assert api["ATELIER_REDIS_URL"].startswith("redis://atelier:${REDIS_PASSWORD:?")
    assert services["worker-cpu"]["environment"]["ATELIER_REDIS_URL"] == api["ATELIER_REDIS_URL"]
    assert services["api"]["depends_on"]["minio-init"] == {
        "condition": "service_completed_successfully"
    }


def test_make_env_fills_every_secret_once_with_mode_0600(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    shutil.copy(DEPLOY / "make-env.sh", tmp_path / "deploy")
    shutil.copy(ROOT / ".env.example", tmp_path)
    script = str(tmp_path / "deploy" / "make-env.sh")
    run(["sh", script], tmp_path)
    made = tmp_path / ".env"
    assert made.stat().st_mode & 0o777 == 0o600
    values = dict(
        line.split("=", 1) for line in made.read_text().splitlines() if line[:1] not in "#"
    )
    secrets = [values[name] for name in COMPOSE_SECRETS]
    assert all(len(s) >= 32 for s in secrets) and len(set(secrets)) == len(secrets)
    again = subprocess.run(["sh", script], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr
    assert (
        dict(line.split("=", 1) for line in made.read_text().splitlines() if line[:1] not in "#")
        == values
    )


def test_minio_gives_atelier_a_user_limited_to_its_bucket() -> None:
    policy = json.loads((DEPLOY / "minio" / "atelier-policy.json").read_text())
    statements = policy["Statement"]
    resources = {r for s in statements for r in s["Resource"]}
    assert resources == {"arn:aws:s3:::BUCKET", "arn:aws:s3:::BUCKET/*"}
    actions = {a for s in statements for a in s["Action"]}
    assert all(a.startswith("s3:") and "*" not in a for a in actions), actions
    assert not any(
        "Bucket" in a and a.startswith(("s3:Create", "s3:Delete", "s3:Put")) for a in actions
    )
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
    init = (DEPLOY / "minio" / "init.sh").read_text()
    assert 'sed "s/BUCKET/$ATELIER_S3_BUCKET/g"' in init
    assert "mc admin user add" in init and "mc admin policy attach" in init
    minio_init = compose()["services"]["minio-init"]
    assert minio_init["entrypoint"] == ["/bin/sh", "/init/init.sh"]
    assert "./deploy/minio:/init:ro" in minio_init["volumes"]


def test_the_compose_redis_script_serves_only_atelier_and_keeps_transactions(
    tmp_path: Path,
) -> None:
    """deploy/redis/start.sh with this host's redis-server (the image's entrypoint stubbed):
    no command without the password, and MULTI/EXEC writes survive a kill -9."""
    import redis

    from atelier.cli.processes import ManagedProcess, find_redis_server, free_port, wait_until

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker-entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "docker-entrypoint.sh").chmod(0o755)
    (bin_dir / "redis-server").symlink_to(find_redis_server(Settings()))
    port, password = free_port(), "x" * 40
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "REDIS_PASSWORD": password}
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
        with redis.Redis.from_url(url).pipeline(transaction=True) as pipe:
            pipe.set("job", "queued")
            pipe.rpush("queue", "job")
            pipe.execute()
        server.restart()  # SIGKILL, then the same command
        wait_until(lambda: bool(redis.Redis.from_url(url).ping()), 20, "redis again")
        assert redis.Redis.from_url(url).get("job") == b"queued"
    finally:
        server.stop(10)
    assert "NOPERM" not in (tmp_path / "redis.log").read_text()


def test_kubernetes_pods_reach_redis_with_the_secret_password() -> None:
    docs = manifests()
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert "ATELIER_REDIS_URL" not in config["data"]
    secrets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Secret"}
    assert secrets["atelier-redis"]["stringData"]["username"] == "atelier"
    for secret in secrets.values():  # shipped empty: nothing works until an operator fills it
        assert all(v in ("", "atelier") for v in secret["stringData"].values()), secret
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]
    pods += [
        d["spec"]["jobTargetRef"]["template"]["spec"] for d in docs if d["kind"] == "ScaledJob"
    ]
    assert len(pods) == 4
    for pod in pods:
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        ref = env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "atelier-redis", "key": "password"}
        assert env["ATELIER_REDIS_URL"]["value"].startswith("redis://atelier:$(REDIS_PASSWORD)@")
        assert list(env).index("REDIS_PASSWORD") < list(env).index("ATELIER_REDIS_URL")
    auth = next(d for d in docs if d["kind"] == "TriggerAuthentication")
    for doc in docs:
        for trigger in doc.get("spec", {}).get("triggers", []):
            assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}


def test_the_webhooks_worker_runs_in_the_api_image_on_its_own_queue() -> None:
    """Webhooks are sent by a worker of their own, never by a job worker, and need no
    TensorFlow: compose and Kubernetes run it from the API image."""
    service = compose()["services"]["worker-webhooks"]
    assert service["command"] == ["worker", "--queues", "webhooks"]
    assert service["build"]["dockerfile"] == "deploy/api.Dockerfile"
    docs = {(d["kind"], d["metadata"]["name"]): d for d in manifests()}
    pod = docs[("Deployment", "atelier-worker-webhooks")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["worker", "--queues", "webhooks"]
    assert container["image"].startswith("atelier-api:")
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    for other in ("worker-train", "worker-generate", "worker-cpu"):
        assert "webhooks" not in ",".join(compose()["services"][other]["command"])
