"""How ``./dev test`` shares the suite between two processes (pytest-xdist, ``--dist
loadgroup``).

A full run on the 2-core machine left the CPU idle 55% of its 30 minutes (sampled every
10 s): most tests wait on a stack, a lease or a fault to recover. Two processes fill that
time. Each test gets an ``xdist_group``, and a group runs whole on one process:

- the tests on a shared stack (``local_stack``, ``s3_stack``, or ``stack`` with that
  parameter) form one group per stack, so each stack starts once; the local stack's group
  also holds the other tests that train for minutes (``TRAINING``);
- every other test is grouped by its module, so module-scoped fixtures (the reliability
  stack, the soak's hosts) start once and a module's tests keep their order.

Groups are handed out in collection order, so the heaviest go first (``HEAVIEST``, from a
full run's durations) and the fast tier's modules fill the gaps at the end; the podman tests
stay last (``tests/podman_prebuild.py``) to give their image build the whole run.
"""

from __future__ import annotations

import pytest

# The tests that train for minutes: the local stack's (the quality tier's two default
# trainings, 238 s of its 445 s in a serial full run of 44c8090) and the in-process ones
# (the melody quality run 124 s, the memory estimates 112 s). They share one group, so they
# run one after another beside the tests that wait: in a first two-process run they ran at
# once, each on both cores, and a generation beside them took over 20 s.
TRAINING = "training"
TRAINING_MODULES = frozenset({"test_melody_quality.py", "test_estimates_real.py"})
# Shared stacks: their tests run in one process each.
STACK_GROUPS = {"local_stack": TRAINING, "s3_stack": "s3-stack"}
# The costliest groups, most first (seconds in that serial run): training 681, the soaks
# 202, reliability 161, the CLI 108, fencing 90, failover 58, the object-store outage 50,
# schemathesis 53.
HEAVIEST = (
    TRAINING,
    "test_soak.py",
    "test_reliability.py",
    "test_cli.py",
    "test_fencing.py",
    "test_failover.py",
    "test_s3.py",
    "test_contract.py",
)


def group_of(item: pytest.Item) -> str:
    names = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    stack_param = callspec.params.get("stack") if callspec is not None else None
    for fixture, group in STACK_GROUPS.items():
        if fixture in names or (stack_param is not None and f"{stack_param}_stack" == fixture):
            return group
    return TRAINING if item.path.name in TRAINING_MODULES else item.path.name


def _rank(item: pytest.Item) -> tuple[int, int]:
    group = group_of(item)
    if item.get_closest_marker("podman"):
        return (3, 0)
    if group in HEAVIEST:
        return (0, HEAVIEST.index(group))
    return (1, 0) if item.get_closest_marker("slow") else (2, 0)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test in its group, the heaviest groups first and the podman tests last (a
    stable sort: the order within a group, and among groups of a rank, is kept).
    ``tests/tiers.py`` has marked ``slow`` already (tryfirst)."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of(item)))
    items.sort(key=_rank)
