"""Status polling: `GET /v1/jobs/{id}` under gunicorn against a minimal Flask JSON route
under the same gunicorn configuration, both driven by `bench.loadgen` in its own process."""

from __future__ import annotations

import json
import subprocess
import sys

from atelier.cli.processes import ManagedProcess, api_argv, child_env, free_port, wait_until
from bench.common import Result, stack
from bench.loadgen import REQUESTS_PER_CONNECTION

CONNECTIONS = 8  # the API's 2 gunicorn workers, 4 threads each


def status_polling(size: str) -> list[Result]:
    """Two records: a queued generation job (what a poller mostly sees) and a finished
    training job (the richest record: progress, metrics, sample outputs)."""
    seconds, rounds = (4.0, 2) if size == "quick" else (10.0, 3)
    with stack(("train",)) as (running, client):
        settings = running.settings
        assert settings is not None
        trained = client.wait(
            client.submit("train", "dcgan", {"steps": 20, "batch_size": 16, "sample_every": 10})[
                "id"
            ],
            timeout=600,
        )
        # No generation worker runs, so this one stays queued.
        queued = client.submit("generate", "dcgan", {"model_id": trained["model_id"]})
        documents = running.data_dir / "status"
        documents.mkdir()
        for job in (queued, trained):
            response = client.http.get(f"{settings.api_url}/v1/jobs/{job['id']}")
            assert response.status_code == 200
            (documents / f"{job['id']}.json").write_bytes(response.content)
        port = free_port()
        argv = api_argv(f"127.0.0.1:{port}", running.api_workers)
        argv[-1] = "bench.minimal_app:app"
        minimal = ManagedProcess(
            "minimal-flask",
            argv,
            child_env(settings, {"BENCH_STATUS_DIR": str(documents)}),
            running.data_dir / "logs" / "minimal.log",
        )
        auth = f"Authorization: Bearer {running.api_key}"
        results = []
        try:
            minimal_base = f"http://127.0.0.1:{port}/v1/jobs"
            wait_until(lambda: _answers(f"{minimal_base}/{queued['id']}"), 30, "the minimal app")
            for label, job in (("queued job", queued), ("finished training job", trained)):
                url = f"{settings.api_url}/v1/jobs/{job['id']}"
                minimal_url = f"{minimal_base}/{job['id']}"
                _load(url, [auth], 1.0)  # warm both: connections, imports, caches
                _load(minimal_url, [], 1.0)
                atelier, baseline = [], []
                for _ in range(rounds):  # interleaved, so drift hits both alike
                    atelier.append(_load(url, [auth], seconds))
                    baseline.append(_load(minimal_url, [], seconds))
                results.append(_result(label, atelier, baseline, rounds, seconds))
        finally:
            minimal.stop()
    return results


def _result(
    label: str,
    atelier: list[dict[str, float]],
    baseline: list[dict[str, float]],
    rounds: int,
    seconds: float,
) -> Result:
    best = max(atelier, key=lambda r: r["requests_per_second"])
    best_baseline = max(baseline, key=lambda r: r["requests_per_second"])
    assert best["errors"] == 0 and best_baseline["errors"] == 0, (best, best_baseline)
    ratio = best["requests_per_second"] / best_baseline["requests_per_second"]
    return Result(
        f"status polling, GET /v1/jobs/{{id}} of a {label}",
        best["requests_per_second"],
        best_baseline["requests_per_second"],
        "minimal Flask JSON route, same gunicorn config",
        "req/s",
        ratio,
        ">= 0.7",  # with every check on (issue 26)
        ratio >= 0.7,
        f"p99 {best['p99_ms']:.1f} ms against {best_baseline['p99_ms']:.1f} ms; "
        f"{CONNECTIONS} connections, each reconnecting after "
        f"{REQUESTS_PER_CONNECTION} requests; best of {rounds} runs of {seconds:.0f} s",
    )


def _load(url: str, headers: list[str], seconds: float) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.loadgen", url, "--seconds", str(seconds)]
    argv += ["--connections", str(CONNECTIONS)]
    for header in headers:
        argv += ["--header", header]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return dict(json.loads(done.stdout))


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False
