"""The chaos soak: short seeded runs in the suite, on one host and across three (full
ones are in bench/results/soak.md), and the ledger's checks shown to catch what they look for (the
cluster soak's two-writers check has its own tests: test_soak_writers.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from soak.__main__ import parse, soak
from soak.hosts import unavailable
from soak.hosts_soak import soak_hosts
from soak.ledger import Entry, Failover, Ledger


def poll(
    step: int, checkpoint: int | None, status: str = "running", attempt: int = 1
) -> dict[str, Any]:
    return {
        "status": status,
        "progress": {"step": step},
        "checkpoint_step": checkpoint,
        "attempt": attempt,
        "model_id": None,
    }


def test_the_ledger_sees_a_step_going_back_past_its_checkpoint() -> None:
    ledger = Ledger()
    entry = Entry("job_1", "ana", "train", "dcgan", "k", {}, 0.0)
    for step, checkpoint in ((50, 25), (80, 75), (76, 75), (90, 75)):
        ledger.observe(entry, poll(step, checkpoint))  # back to 76: resumed from 75, fine
    assert ledger.violations == []
    ledger.observe(entry, poll(10, 75, attempt=2))
    assert ledger.violations and "went back from step 90 to 10" in ledger.violations[0]


def test_the_ledger_sees_a_terminal_state_change() -> None:
    ledger = Ledger()
    entry = Entry("job_2", "ana", "generate", "dcgan", "k", {}, 0.0)
    ledger.observe(entry, poll(0, None, "succeeded"))
    ledger.observe(entry, poll(0, None, "succeeded"))
    assert ledger.violations == []
    ledger.observe(entry, poll(0, None, "failed"))
    assert ledger.violations == ["job_2 was succeeded, then failed"]


def test_only_a_failover_may_rewind_a_job_past_its_checkpoint() -> None:
    """Progress and checkpoint pointers are not confirmed by a replica: a failover may
    lose the newest. Across one, a rewind is counted; with none under way, it is a
    violation."""
    ledger = Ledger()
    rewound = Entry("job_3", "ana", "train", "dcgan", "k", {}, 0.0)
    ledger.observe(rewound, poll(60, 50))
    ledger.failovers.append(Failover("kill-primary", time.time(), 3.0, None))
    ledger.observe(rewound, poll(10, None))
    assert ledger.violations == [] and ledger.rewound_by_failovers == {"job_3"}

    ledger.failovers[0] = Failover("kill-primary", time.time() - 100, 3.0, 5.0)  # long over
    later = Entry("job_4", "ana", "train", "dcgan", "k", {}, 0.0)
    ledger.observe(later, poll(60, 50))
    ledger.observe(later, poll(10, None))
    assert ledger.violations and "job_4 went back from step 60 to 10" in ledger.violations[0]


@pytest.mark.slow
def test_a_short_soak_holds_every_invariant() -> None:
    # A minute and a half under a fault every 5-9 s and 30 jobs: the full runs are
    # 30 minutes (bench/results/soak.md); this one proves the seeded soak still holds.
    short = "--minutes 1.5 --fault-every 5 9 --drain-seconds 90"
    args = parse(["--seed", "11", *short.split()])
    ledger, report = soak(args)
    print(report)
    assert ledger.violations == [], report
    assert len(ledger.faults) >= 5 and len(ledger.entries) >= 15, report
    assert all(e.final in ("succeeded", "failed", "canceled") for e in ledger.entries.values())
    assert any(e.final == "succeeded" and e.job_type == "generate" for e in ledger.entries.values())


@pytest.mark.slow
def test_a_short_cluster_soak_across_three_hosts_holds_every_invariant() -> None:
    """Three hosts of network namespaces; the seed's first faults are kill -9 of the
    primary, a host cut off, a SeaweedFS restart and a job process killed. Within 3 min."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"the cluster soak needs network namespaces, and here {reason}")
    faults = "kill-primary,cut-host,restart-sentinel,restart-s3,kill-job-process"
    short = ["--minutes", "1", "--fault-every", "3", "6", "--drain-seconds", "45"]
    args = parse(["--hosts", "3", "--seed", "19", *short, "--faults", faults])
    started = time.monotonic()
    ledger, report = soak_hosts(args)
    print(report)
    assert ledger.violations == [], report
    assert len(ledger.failovers) >= 1 and len(ledger.faults) >= 3, report
    assert all(e.final in ("succeeded", "failed", "canceled") for e in ledger.entries.values())
    assert any(e.final == "succeeded" and e.job_type == "train" for e in ledger.entries.values())
    assert time.monotonic() - started < 180, report
