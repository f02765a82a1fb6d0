"""Atelier's benchmarks: each figure beside a baseline measured in the same invocation
(these machines are noisy, so only ratios are compared with goals).

    python -m bench.run                       # every benchmark, default size
    python -m bench.run --only scale --size quick
    python -m bench.run --list

Writes bench/results/latest.md and latest.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

from bench.capacity import capacity
from bench.common import Result
from bench.digits_quality import digits_quality
from bench.events import event_streams
from bench.failover import failover
from bench.fairness import fairness
from bench.generation import bulk_generation, textgen_cache
from bench.housekeeping import housekeeping
from bench.jobs import scale, training_throughput, warm_vs_cold
from bench.labelled_quality import labelled_quality
from bench.melody_quality import melody_quality
from bench.polling import status_polling
from bench.roundtrip import round_trip
from bench.text_quality import text_quality

BENCHMARKS: dict[str, Callable[[str], list[Result]]] = {
    "training": training_throughput,
    "bulk-generate": bulk_generation,
    "textgen-cache": textgen_cache,
    "round-trip": round_trip,
    "polling": status_polling,
    "scale": scale,
    "events": event_streams,
    "warm-cold": warm_vs_cold,
    "fairness": fairness,
    "failover": failover,
    "housekeeping": housekeeping,
    "capacity": capacity,
    "text-quality": text_quality,
    "digits-quality": digits_quality,
    "melody-quality": melody_quality,
    "labelled-uploads": labelled_quality,
}
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, str]:
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": str(os.cpu_count()),
        "tensorflow": version("tensorflow"),
        "celery": version("celery"),
        "redis-py": version("redis"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def markdown(results: list[Result], info: dict[str, str], size: str) -> str:
    lines = [
        f"Machine: {info['platform']}, {info['cpus']} CPUs, Python {info['python']}, "
        f"TensorFlow {info['tensorflow']}, Celery {info['celery']}; {info['date']}; "
        f"size `{size}`.",
        "",
        "| Benchmark | Atelier | Baseline | Ratio | Goal | Met | Notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.value:.4g} {r.unit} | {r.baseline:.4g} {r.unit} "
            f"({r.baseline_name}) | {r.ratio:.3g} | {r.goal} | {'yes' if r.met else 'no'} "
            f"| {r.notes} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS))
    parser.add_argument("--size", choices=["quick", "full"], default="full")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    results: list[Result] = []
    for name in args.only or list(BENCHMARKS):
        print(f"== {name}", file=sys.stderr, flush=True)
        found = BENCHMARKS[name](args.size)
        for result in found:
            print(f"   {result.name}: {result.ratio:.3g} (goal {result.goal})", file=sys.stderr)
        results += found
    info = machine()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(markdown(results, info, args.size))
    (RESULTS / "latest.json").write_text(
        json.dumps(
            {"machine": info, "size": args.size, "results": [asdict(r) for r in results]}, indent=2
        )
        + "\n"
    )
    print(markdown(results, info, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
