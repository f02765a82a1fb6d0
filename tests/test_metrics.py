"""Metrics on the API and on a worker: valid exposition (promtool), the series docs/metrics.md
lists, and a real Prometheus scraping both."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from atelier.cli.processes import ManagedProcess, free_port
from tests.conftest import IN_CI, TINY_TRAIN, InProcessApi, RunningStack, wait_for

pytestmark = pytest.mark.slow


def needs(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        if IN_CI:
            pytest.fail(f"{tool} is missing in CI: .ci/run installs Debian's prometheus")
        pytest.skip(f"{tool} not installed (apt-get install prometheus)")
    return found


def worker_url(stack: RunningStack, name: str = "worker-train") -> str:
    return f"http://127.0.0.1:{stack.stack.worker_metrics_ports[name]}/metrics"


def sample(text: str, prefix: str) -> float:
    """Sum of every series whose line starts with ``prefix``."""
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def run_jobs(stack: RunningStack, owner: str) -> None:
    client = stack.client(owner)
    train = client.wait(client.submit("train", "dcgan", TINY_TRAIN)["id"], timeout=300)
    assert train["status"] == "succeeded"
    generated = client.wait(
        client.submit("generate", "dcgan", {"model_id": train["model_id"], "n": 3})["id"],
        timeout=120,
    )
    assert generated["status"] == "succeeded"


def test_worker_and_api_metrics_are_valid_and_complete(local_stack: RunningStack) -> None:
    promtool = needs("promtool")
    run_jobs(local_stack, "metrics-a")

    def images_counted() -> bool:  # a worker counts a job just after recording its result
        text = requests.get(worker_url(local_stack, "worker-generate"), timeout=10).text
        return sample(text, 'atelier_generated_images_total{kind="dcgan"}') >= 3

    wait_for(images_counted, 10, "the generation to be counted")
    train_text = requests.get(worker_url(local_stack), timeout=10).text
    generate_text = requests.get(worker_url(local_stack, "worker-generate"), timeout=10).text
    api_text = requests.get(local_stack.url("/metrics"), timeout=10).text
    for text in (train_text, generate_text, api_text):
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=text, text=True, capture_output=True, timeout=30
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

    assert (
        sample(
            train_text, 'atelier_jobs_finished_total{kind="dcgan",status="succeeded",type="train"}'
        )
        >= 1
    )
    assert sample(train_text, "atelier_job_queue_wait_seconds_count") >= 1
    assert sample(train_text, 'atelier_job_run_seconds_bucket{kind="dcgan",le="604800.0"') >= 1
    assert sample(train_text, 'atelier_training_steps_total{kind="dcgan"}') >= TINY_TRAIN["steps"]
    assert sample(generate_text, 'atelier_generated_images_total{kind="dcgan"}') >= 3
    assert sample(train_text, "atelier_worker_up") >= 1
    assert 'atelier_queue_depth{queue="atelier-train",state="waiting"}' in train_text
    assert 'atelier_queue_depth{queue="atelier-generate",state="running"}' in api_text
    assert sample(api_text, "atelier_jobs_submitted_total") >= 2


def test_prometheus_scrapes_the_api_and_a_worker(local_stack: RunningStack, tmp_path: Path) -> None:
    prometheus = needs("prometheus")
    port = free_port()
    api = local_stack.settings.api_url.removeprefix("http://")
    worker = f"127.0.0.1:{local_stack.stack.worker_metrics_ports['worker-train']}"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: api\n    static_configs: [{{targets: ['{api}']}}]\n"
        f"  - job_name: worker\n    static_configs: [{{targets: ['{worker}']}}]\n"
    )
    server = ManagedProcess(
        "prometheus",
        [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        dict(os.environ),
        tmp_path / "prometheus.log",
    )
    base = f"http://127.0.0.1:{port}/api/v1"

    def query(expression: str) -> float:
        result = requests.get(f"{base}/query", params={"query": expression}, timeout=5).json()[
            "data"
        ]["result"]
        return float(result[0]["value"][1]) if result else 0.0

    try:
        wait_for(lambda: _targets_up(base) == 2, 60, "both targets up")
        run_jobs(local_stack, "metrics-b")
        time.sleep(2.5)  # two scrapes
        assert query('sum(atelier_jobs_finished_total{status="succeeded"})') >= 1
        assert query("sum(atelier_job_queue_wait_seconds_count)") >= 1
        assert (
            query("histogram_quantile(0.5, sum by (le) (atelier_job_queue_wait_seconds_bucket))")
            > 0
        )
        assert query('sum(atelier_jobs_submitted_total{kind="dcgan"})') >= 2
    finally:
        server.stop()


def _targets_up(base: str) -> int:
    try:
        targets = requests.get(f"{base}/targets", timeout=2).json()["data"]["activeTargets"]
    except (requests.ConnectionError, KeyError, ValueError):
        return 0
    return sum(1 for t in targets if t["health"] == "up")


def test_made_up_methods_and_paths_add_no_series(inprocess_api: InProcessApi) -> None:
    """500 requests with random methods and paths, no key: the request series do not grow
    beyond one ``other`` method and one ``unmatched`` route."""
    import random
    import string

    def series() -> set[str]:
        text = inprocess_api.http.get(inprocess_api.url("/metrics")).text
        return {line.split(" ")[0] for line in text.splitlines() if line.startswith("atelier_http")}

    rng = random.Random(7)

    def made_up(count: int) -> None:
        for _ in range(count):
            method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 8)))
            path = "/" + "".join(rng.choices(string.ascii_lowercase + "/", k=rng.randint(1, 20)))
            inprocess_api.http.request(method, inprocess_api.url(path))

    # The first `other` method and `unmatched` route with each status they can get (404,
    # and 405 on a real route's path), and the series of /metrics itself.
    made_up(100)
    inprocess_api.http.request("ZQ", inprocess_api.url("/healthz"))
    series()
    before = series()
    made_up(500)
    after = series()
    # The registry is the process's, so other tests' series are here too: what is bounded is
    # the method label (the known set plus `other`), whoever made the series.
    methods = {m.group(1) for m in map(re.compile(r'method="([^"]*)"').search, before) if m}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
    assert after - before == set(), sorted(after - before)[:10]
