"""The ``atelier`` command as users run it: a subprocess talking HTTP to a running stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from PIL import Image

from atelier.shared.auth import ApiKeyStore, hash_key
from atelier.shared.redis_keys import KEYS
from tests.conftest import RunningStack, wait_for

pytestmark = pytest.mark.slow
ATELIER = [sys.executable, "-m", "atelier.cli.main"]


def run(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ATELIER, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_only_the_hash_is_stored(stack: RunningStack, key: str, owner: str) -> None:
    """The key's record sits under its SHA-256; the key itself is in no Redis key or value."""
    record = stack.redis.get(KEYS.api_key(hash_key(key)))
    assert record is not None and json.loads(record)["owner"] == owner
    assert ApiKeyStore(stack.redis).lookup(key) is not None
    raw = key.encode()
    for name in stack.admin.scan_iter(count=1000):
        assert raw not in name, name
        dumped = stack.admin.dump(name)
        assert dumped is None or raw not in dumped, name


def test_cli_job_life(local_stack: RunningStack, tmp_path: Path) -> None:
    env = {
        "ATELIER_API_URL": local_stack.settings.api_url,
        "ATELIER_REDIS_URL": local_stack.settings.redis_url,
    }
    created = run(["keys", "create", "--owner", "ivan"], env)
    assert created.returncode == 0, created.stderr
    env["ATELIER_API_KEY"] = key = created.stdout.strip()
    assert key.startswith("atk_")
    assert_only_the_hash_is_stored(local_stack, key, owner="ivan")

    trained = run(
        [
            "submit",
            "train",
            "-p",
            "steps=20",
            "-p",
            "base_filters=4",
            "-p",
            "latent_dim=8",
            "-p",
            "batch_size=16",
            "--wait",
        ],
        env,
    )
    assert trained.returncode == 0, trained.stderr
    job_id = trained.stdout.split()[0]
    model_id = trained.stdout.split("model: ")[1].split()[0]
    assert "succeeded" in trained.stdout
    assert "20/20" in trained.stderr  # the progress bar reached the end

    generated = run(["submit", "generate", "-p", f"model_id={model_id}", "-p", "n=3"], env)
    gen_id = generated.stdout.strip()
    assert run(["wait", gen_id], env).returncode == 0
    status = json.loads(run(["status", gen_id], env).stdout)
    assert status["status"] == "succeeded" and len(status["outputs"]) == 4

    downloaded = run(["download", gen_id, "-o", str(tmp_path)], env)
    files = sorted(Path(p).name for p in downloaded.stdout.split())
    assert files == ["0000.png", "0001.png", "0002.png", "grid.png"]
    assert Image.open(tmp_path / gen_id / "0000.png").size == (28, 28)

    listing = run(["list", "--type", "train"], env).stdout
    assert job_id in listing and gen_id not in listing
    assert model_id in run(["models"], env).stdout

    refused = run(["cancel", job_id], env)
    assert refused.returncode == 1 and "409" in refused.stderr and "succeeded" in refused.stderr
    bad = run(["submit", "train", "-p", "steps=-1"], env)
    assert bad.returncode == 1 and "params.steps" in bad.stderr
    bad_owner = run(["keys", "create", "--owner", "Not An Owner"], env)
    assert bad_owner.returncode == 2 and "owner must be" in bad_owner.stderr

    assert run(["delete", "job", gen_id], env).stdout.strip() == f"{gen_id}: deleted"
    gone = run(["status", gen_id], env)
    assert gone.returncode == 1 and "404" in gone.stderr
    assert run(["delete", "model", model_id], env).returncode == 0
    assert model_id not in run(["models"], env).stdout


def test_up_runs_the_demo_then_restarts_with_its_history(tmp_path: Path) -> None:
    """``atelier up`` owns its Redis (AOF) under the data dir; a second ``up`` finds the
    first one's jobs and models, and Ctrl-C stops everything."""
    from atelier.cli.processes import free_port

    port = free_port()
    env = {"ATELIER_DATA_DIR": str(tmp_path / "data")}
    demo = run(
        ["up", "--port", str(port), "--demo", "--demo-steps", "40", "--exit-after-demo"],
        env,
        timeout=400,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    grid_path = Path(demo.stdout.split("grid: ")[1].split()[0])
    assert Image.open(grid_path).format == "PNG"
    assert "digits classifier reads" in demo.stdout

    again = subprocess.Popen(
        [*ATELIER, "up", "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _ready(base), 120, "second `up`")
        key = (tmp_path / "data" / "api-key").read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        jobs = requests.get(f"{base}/v1/jobs", headers=headers, timeout=10).json()["data"]
        assert sorted(j["type"] for j in jobs) == ["generate", "train"]
        assert all(j["status"] == "succeeded" for j in jobs)
        models = requests.get(f"{base}/v1/models", headers=headers, timeout=10).json()["data"]
        assert len(models) == 1
    finally:
        again.send_signal(signal.SIGINT)
        output, _ = again.communicate(timeout=60)
    assert again.returncode == 0, output
    assert "\nstopped (" in output  # "stopped (1.4s)."
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def _ready(base: str) -> bool:
    # A slow answer is "not yet", as a refused connection is: an API still starting on a
    # busy machine has accepted the connection before it can answer (a 2 s read timeout
    # failed this test in a full run).
    try:
        return requests.get(f"{base}/readyz", timeout=2).ok
    except (requests.ConnectionError, requests.Timeout):
        return False
