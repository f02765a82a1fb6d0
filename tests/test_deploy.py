"""Deploy files agree with the code and pass their tools: promtool for the alert rules
(with unit tests), the Kubernetes schemas (and ours for KEDA's objects) for the manifests
and their Sentinel overlay, the Dockerfiles and dashboard checked against the CLI, settings
and metrics, and `--once` workers that exit after their job or an idle wait. The compose
file: tests/test_deploy_compose.py (and test_compose_podman.py, for real)."""

from __future__ import annotations

import json
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
from tests.conftest import IN_CI, flush_db

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SETTINGS_ENV = {ENV_PREFIX + name.upper() for name in Settings.model_fields}


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
    page = (ROOT / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| `(atelier_[a-z_]+)` \|", page, flags=re.M))


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


def test_dockerfiles_keep_tensorflow_out_of_the_api_image() -> None:
    api = (DEPLOY / "api.Dockerfile").read_text()
    worker = (DEPLOY / "worker.Dockerfile").read_text()
    assert "requirements/api.lock" in api and "tensorflow" not in api.lower().split("#")[0]
    assert "ARG LOCK=worker" in worker and "requirements/${LOCK}.lock" in worker
    for dockerfile in (api, worker):  # locked dependencies in a layer before the source
        install = "pip install --require-hashes -r /tmp/requirements.lock"
        assert dockerfile.index(install) < dockerfile.index("COPY api api")
        assert "pip install --no-deps ." in dockerfile
    assert "EXPOSE 8000" in api and "EXPOSE 9808" in worker
    assert str(Settings().worker_metrics_port) == "9808"
    boot = (DEPLOY / "boot.sh").read_text()
    assert "atelier api" in boot and "atelier worker" in boot
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert not any("tensorflow" in dep or "keras" in dep for dep in extras["api"])
    api_lock = (ROOT / "requirements" / "api.lock").read_text()
    assert "\ntensorflow==" not in api_lock and "\nkeras==" not in api_lock
    gpu_lock = (ROOT / "requirements" / "worker-gpu.lock").read_text()
    assert "\nnvidia-cudnn-cu12==" in gpu_lock and "\ntensorflow==" in gpu_lock


def manifests(overlay: str | None = None) -> list[dict[str, Any]]:
    """The manifests of deploy/k8s, with an overlay's JSON patches applied (what
    `kubectl apply -k deploy/k8s/OVERLAY` sends)."""
    base = DEPLOY / "k8s"
    listed = yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(
        p.name for p in base.glob("*.yaml") if p.stem != "kustomization"
    )
    docs = [d for name in listed for d in yaml.safe_load_all((base / name).read_text()) if d]
    if overlay is not None:
        kustomization = yaml.safe_load((base / overlay / "kustomization.yaml").read_text())
        assert kustomization["resources"] == [".."]
        for patch in kustomization["patches"]:
            target = patch["target"]
            (doc,) = [
                d
                for d in docs
                if (d["kind"], d["metadata"]["name"]) == (target["kind"], target["name"])
            ]
            for op in yaml.safe_load(patch["patch"]):
                json_patch(doc, op)
    return docs


def json_patch(doc: dict[str, Any], op: dict[str, Any]) -> None:
    """One RFC 6902 `add` or `replace`, the two the overlays use."""
    *parents, last = op["path"].strip("/").split("/")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if op["op"] == "add":
            node.insert(index, op["value"])
        else:
            node[index] = op["value"]
    else:
        assert op["op"] == "add" or last in node, op
        node[last] = op["value"]


@pytest.mark.parametrize("overlay", [None, "sentinel"], ids=["one-redis", "sentinel"])
def test_kubernetes_manifests_validate_against_the_schemas(overlay: str | None) -> None:
    """Kubernetes' kinds against the 1.30 schemas (strict); KEDA's against the schemas in
    tests/keda_schemas.py, with each ScaledJob's job as a batch/v1 Job."""
    import jsonschema
    import kubernetes_validate

    from tests.keda_schemas import SCHEMAS

    for doc in manifests(overlay):
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(doc, SCHEMAS[doc["kind"]])
            if doc["kind"] == "ScaledJob":
                job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "t"}}
                job["spec"] = doc["spec"]["jobTargetRef"]
                kubernetes_validate.validate(job, "1.30.0", strict=True)
            continue
        kubernetes_validate.validate(doc, "1.30.0", strict=True)
    (typo,) = [d for d in manifests() if d["kind"] == "ScaledJob"]
    typo["spec"]["scalingStrategy"] = {"stratgy": "accurate"}
    with pytest.raises(jsonschema.ValidationError, match="stratgy"):  # a typo is refused
        jsonschema.validate(typo, SCHEMAS["ScaledJob"])


def test_keda_objects_scale_the_right_queues_and_never_kill_training() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in manifests()}
    settings = Settings()
    scaled = docs[("ScaledObject", "atelier-worker-generate")]
    assert ("Deployment", scaled["spec"]["scaleTargetRef"]["name"]) in docs
    assert scaled["spec"]["triggers"][0]["metadata"]["listName"] == settings.generate_queue

    training = docs[("ScaledJob", "atelier-worker-train")]
    assert training["spec"]["triggers"][0]["metadata"]["listName"] == settings.train_queue
    # One pod per queued job while others run: the list holds only waiting jobs.
    assert training["spec"]["scalingStrategy"] == {"strategy": "accurate"}
    assert training["spec"]["triggers"][0]["metadata"]["listLength"] == "1"
    pod = training["spec"]["jobTargetRef"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["worker", "--queues", "train", "--once"]
    assert pod["terminationGracePeriodSeconds"] >= 300
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert not any(k == "Deployment" and "train" in n for k, n in docs)
    config = docs[("ConfigMap", "atelier")]["data"]
    assert float(config["ATELIER_ONCE_IDLE_SECONDS"]) > training["spec"]["pollingInterval"]
    assert int(config["ATELIER_WORKER_GPU_MEMORY_BYTES"]) > 0  # admission: GPU, not host RAM


def test_the_sentinel_overlay_moves_pods_and_keda_to_the_sentinels() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in manifests("sentinel")}
    redis = docs[("ConfigMap", "atelier-redis")]["data"]
    url = "{REDIS_URL_SCHEME}://atelier:PASSWORD@{REDIS_URL_HOSTS}/{REDIS_URL_PATH}".format(**redis)
    assert url == (
        "redis+sentinel://atelier:PASSWORD@sentinel-1:26379,sentinel-2:26379,sentinel-3:26379"
        "/atelier/0"
    )
    assert redis["ATELIER_REDIS_MIN_REPLICAS"] == "1"
    for kind, name in (
        ("ScaledObject", "atelier-worker-generate"),
        ("ScaledJob", "atelier-worker-train"),
    ):
        (trigger,) = docs[(kind, name)]["spec"]["triggers"]
        assert trigger["type"] == "redis-sentinel"
        assert trigger["metadata"]["addresses"] == redis["REDIS_URL_HOSTS"]
        assert trigger["metadata"]["sentinelMaster"] == redis["REDIS_URL_PATH"].split("/")[0]
    auth = docs[("TriggerAuthentication", "atelier-redis")]["spec"]["secretTargetRef"]
    assert {
        "parameter": "sentinelPassword",
        "name": "atelier-redis",
        "key": "sentinel-password",
    } in auth
    assert docs[("ScaledJob", "atelier-worker-train")]["spec"]["scalingStrategy"] == {
        "strategy": "accurate"
    }


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
    flush_db(settings.redis_url)
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
    flush_db(settings.redis_url)


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


def test_kubernetes_pods_reach_redis_with_the_secret_password() -> None:
    docs = manifests()
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "atelier"
    )
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
        container = pod["containers"][0]
        assert {"configMapRef": {"name": "atelier-redis"}} in container["envFrom"]
        env = {e["name"]: e for e in container["env"]}
        ref = env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "atelier-redis", "key": "password"}
        sentinel = env["ATELIER_REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert sentinel == {"name": "atelier-redis", "key": "sentinel-password"}
        assert env["ATELIER_REDIS_URL"]["value"] == (
            "$(REDIS_URL_SCHEME)://atelier:$(REDIS_PASSWORD)@$(REDIS_URL_HOSTS)/$(REDIS_URL_PATH)"
        )
        assert list(env).index("REDIS_PASSWORD") < list(env).index("ATELIER_REDIS_URL")
    redis = next(
        d for d in docs if d["metadata"]["name"] == "atelier-redis" and d["kind"] == "ConfigMap"
    )["data"]
    assert "{REDIS_URL_SCHEME}://{REDIS_URL_HOSTS}/{REDIS_URL_PATH}".format(**redis) == (
        "redis://redis:6379/0"
    )
    auth = next(d for d in docs if d["kind"] == "TriggerAuthentication")
    for doc in docs:
        for trigger in doc.get("spec", {}).get("triggers", []):
            assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}


def test_the_webhooks_worker_runs_in_the_api_image_on_its_own_queue() -> None:
    """Webhooks are sent by a worker of their own, never by a job worker, and need no
    TensorFlow: compose and Kubernetes run it from the API image."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    service = services["worker-webhooks"]
    assert service["command"] == ["worker", "--queues", "webhooks"]
    assert service["build"]["dockerfile"] == "deploy/api.Dockerfile"
    docs = {(d["kind"], d["metadata"]["name"]): d for d in manifests()}
    pod = docs[("Deployment", "atelier-worker-webhooks")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"] == ["worker", "--queues", "webhooks"]
    assert container["image"].startswith("atelier-api:")
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    for other in ("worker-train", "worker-generate", "worker-cpu"):
        assert "webhooks" not in ",".join(services[other]["command"])


def pod_templates() -> list[tuple[str, dict[str, Any]]]:
    """(name, pod template) of every Deployment and of the training ScaledJob's Jobs."""
    found = []
    for doc in manifests():
        if doc["kind"] == "Deployment":
            found.append((doc["metadata"]["name"], doc["spec"]["template"]))
        elif doc["kind"] == "ScaledJob":
            found.append((doc["metadata"]["name"], doc["spec"]["jobTargetRef"]["template"]))
    return found


def pods() -> list[tuple[str, dict[str, Any]]]:
    return [(name, template["spec"]) for name, template in pod_templates()]


def test_kubernetes_images_are_the_release_not_latest() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    images = [c["image"] for _, pod in pods() for c in pod["containers"]]
    assert len(images) == 4
    for image in images:
        name, _, tag = image.partition(":")
        assert name in ("atelier-api", "atelier-worker-gpu") and tag == version, image


def test_kubernetes_pods_run_unprivileged_on_a_read_only_root() -> None:
    """Not root (the images' uid), no privilege escalation, no capabilities, a read-only
    root with emptyDir volumes where Atelier writes: /tmp, and the workers' cache."""
    for name, pod in pods():
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] > 0, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        empty = {v["name"] for v in pod["volumes"] if v.get("emptyDir") == {}}
        for container in pod["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            }, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] in empty, name
            if "worker-gpu" in container["image"]:
                assert mounts["/var/cache/atelier"] in empty, name  # ATELIER_DATA_DIR
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["HOME"] == "/tmp", name
    for dockerfile in ("api.Dockerfile", "worker.Dockerfile"):
        assert "useradd --uid 1000 " in (DEPLOY / dockerfile).read_text()


def test_kubernetes_pods_get_named_secret_keys_only() -> None:
    """No whole Secret in a pod's environment: each secret value by its key."""
    wanted = {
        ("atelier-redis", "password"),
        ("atelier-redis", "sentinel-password"),
        ("atelier-s3", "ATELIER_S3_ACCESS_KEY_ID"),
        ("atelier-s3", "ATELIER_S3_SECRET_ACCESS_KEY"),
    }
    for name, pod in pods():
        for container in pod["containers"]:
            assert all("secretRef" not in source for source in container["envFrom"]), name
            refs = {
                (ref["name"], ref["key"])
                for e in container["env"]
                if (ref := e.get("valueFrom", {}).get("secretKeyRef"))
            }
            assert refs == wanted, name


def test_only_atelier_keda_and_redis_itself_reach_redis() -> None:
    policies = {
        d["metadata"]["name"]: d["spec"] for d in manifests() if d["kind"] == "NetworkPolicy"
    }
    atelier_pods = sorted(
        t["metadata"]["labels"]["app.kubernetes.io/name"] for _, t in pod_templates()
    )
    keda = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
        "podSelector": {"matchLabels": {"app": "keda-operator"}},
    }
    for name, selected, port in (
        ("atelier-redis", "redis", 6379),
        ("atelier-redis-sentinel", "redis-sentinel", 26379),
    ):
        spec = policies[name]
        assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": selected}}
        assert spec["policyTypes"] == ["Ingress"]
        (rule,) = spec["ingress"]
        assert rule["ports"] == [{"protocol": "TCP", "port": port}]
        peers = rule["from"]
        (atelier,) = [
            p["podSelector"]["matchExpressions"]
            for p in peers
            if "matchExpressions" in p.get("podSelector", {})
        ]
        assert atelier == [
            {"key": "app.kubernetes.io/name", "operator": "In", "values": atelier_pods}
        ]
        assert keda in peers
        others = [p for p in peers if "matchLabels" in p.get("podSelector", {}) and p != keda]
        assert others == [
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}},
            {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis-sentinel"}}},
        ]
        assert len(peers) == 4  # and nothing else: no address block, no other namespace
