"""``atelier up`` supervises and owns its data directory (issue 11, point 3): a crashed
Redis, worker or API is restarted with backoff and the stack serves again with every job
it had; a stack that keeps crashing gives up; a second stack on the same data directory
refuses at once, naming the first; teardown leaves nothing behind, whatever interrupts it.

Stacks here own their redis-server (as ``atelier up`` does), so killing it harms no other
test; tests that start a Celery worker are ``slow``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from atelier.cli.datadir import DataDirInUse, DataDirLock
from atelier.cli.processes import ManagedProcess, free_port, start_redis
from atelier.cli.stack import API_STOP_SECONDS, WORKER_STOP_SECONDS_WITHOUT_REDIS, EmbeddedStack
from atelier.cli.supervisor import GaveUp, RestartPolicy, Supervisor, run_supervised
from atelier.client import Client
from atelier.shared.settings import Settings
from tests.conftest import TINY_TRAIN, TOY_KIND, wait_for

FAST_POLICY = RestartPolicy(first_backoff_seconds=0.2, max_backoff_seconds=1.0)


# --- the data directory's lock ----------------------------------------------------------------
def test_a_held_data_directory_is_refused_naming_its_holder(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path)
    first.acquire("http://127.0.0.1:8123")
    try:
        with pytest.raises(DataDirInUse, match=rf"pid {os.getpid()}, started .*8123"):
            DataDirLock(tmp_path).acquire("http://127.0.0.1:8124")
    finally:
        first.release()
    again = DataDirLock(tmp_path)
    again.acquire("http://127.0.0.1:8124")  # released: free again
    again.release()


def test_a_lock_file_left_by_a_killed_stack_does_not_block(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path;"
            "from atelier.cli.datadir import DataDirLock;"
            f"lock = DataDirLock(Path({str(tmp_path)!r})); lock.acquire('x');"
            "print('held', flush=True);"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    with pytest.raises(DataDirInUse, match=f"pid {holder.pid}"):
        DataDirLock(tmp_path).acquire("y")
    holder.kill()
    holder.wait()
    assert str(holder.pid) in (tmp_path / "atelier-up.lock").read_text()  # the stale file stays
    lock = DataDirLock(tmp_path)
    lock.acquire("y")
    lock.release()


def test_what_a_killed_stack_started_still_holds_the_lock(tmp_path: Path) -> None:
    """A Redis or worker orphaned by a kill -9 of ``atelier up`` inherited the lock: a new
    stack must not start beside it on the same append-only file."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, time; from pathlib import Path;"
            "from atelier.cli.datadir import DataDirLock;"
            f"lock = DataDirLock(Path({str(tmp_path)!r})); lock.acquire('x');"
            "child = subprocess.Popen(['sleep', '60'], pass_fds=(lock.fileno,));"
            "print(child.pid, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    orphan = int(holder.stdout.readline())
    holder.kill()
    holder.wait()
    try:
        with pytest.raises(DataDirInUse, match=rf"gone, .* hold the lock: {orphan} \(sleep\)"):
            DataDirLock(tmp_path).acquire("y")
    finally:
        os.kill(orphan, signal.SIGKILL)
    wait_for(lambda: session_members({os.getsid(0)}).count(orphan) == 0, 5, "the orphan gone")
    lock = DataDirLock(tmp_path)
    lock.acquire("y")
    lock.release()


def test_a_second_stack_on_a_data_directory_in_use_refuses_at_once(tmp_path: Path) -> None:
    held = DataDirLock(tmp_path / "data")
    held.acquire("http://127.0.0.1:1")
    stack = EmbeddedStack(Settings(data_dir=tmp_path / "data"), port=free_port(), worker_roles=())
    started = time.monotonic()
    try:
        with pytest.raises(DataDirInUse, match=f"pid {os.getpid()}"):
            stack.start()
    finally:
        held.release()
    assert time.monotonic() - started < 1
    assert stack.processes == [] and not (tmp_path / "data" / "logs").exists()


# --- the restart policy, on plain processes ---------------------------------------------------
def test_a_crashed_child_is_restarted_with_backoff_and_given_up_on(tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = Supervisor(RestartPolicy(3, 60, 0.1, 0.2), said.append)
    child = ManagedProcess("flaky", ["sh", "-c", "echo starting; exit 3"], {}, tmp_path / "f.log")
    steady = ManagedProcess("steady", ["sleep", "60"], {}, tmp_path / "s.log")
    started = time.monotonic()
    try:
        with pytest.raises(GaveUp) as caught:
            while time.monotonic() - started < 10:
                supervisor.check([child, steady])
                time.sleep(0.02)
        assert steady.alive(), "the others keep running"
    finally:
        steady.stop(1)
        child.stop(1)
    # Crash 1, restart after 0.1 s, crash 2, restart after 0.2 s, crash 3: give up.
    assert 0.3 <= time.monotonic() - started < 5
    assert said[0].startswith("flaky exited with code 3 after 0s up; restarting it in 0s")
    assert f"log: {tmp_path / 'f.log'}" in said[0]
    assert sum("flaky restarted" in line for line in said) == 2
    message = str(caught.value)
    assert message.startswith("giving up on flaky: it crashed 3 times within 60s")
    assert "starting" in message  # the log's tail says why


def test_stop_kills_a_child_that_ignores_sigterm_and_all_it_started(tmp_path: Path) -> None:
    # An ignored signal stays ignored across exec: the two sleeps ignore SIGTERM too.
    stubborn = ManagedProcess(
        "stubborn", ["sh", "-c", "trap '' TERM; sleep 60 & sleep 60"], {}, tmp_path / "s.log"
    )
    wait_for(lambda: len(session_members({stubborn.process.pid})) == 3, 5, "sh and two sleeps")
    started = time.monotonic()
    stubborn.stop(timeout=0.5)
    assert time.monotonic() - started < 2
    # SIGKILL is delivered to the whole group by then; a grandchild's death still takes the
    # kernel a moment (1 of 4 runs here saw a sleep alive right after the stop returned).
    wait_for(lambda: session_members({stubborn.process.pid}) == [], 1, "the group to die")
    stubborn.stop(timeout=0.5)  # again: nothing to do, no error


def test_backoff_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy()
    assert [policy.backoff(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def _signal_us_when(ready: threading.Event, deadline_seconds: float = 10.0) -> None:
    """SIGTERM to this process once ``ready`` is set, or after the deadline anyway, so a
    failing check can never leave ``run_supervised`` waiting on a child for a minute."""

    def send() -> None:
        ready.wait(deadline_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=send, daemon=True).start()


def test_run_supervised_restarts_a_crash_leaves_a_finished_child_and_forwards_a_stop(
    tmp_path: Path,
) -> None:
    """The GPU workers' supervisor (``atelier worker`` with GPUs): a crash is restarted, a
    worker that finished (exit 0, a --once worker) is left, and a SIGTERM to the CLI reaches
    every child once and ends the run with the children's worst status."""
    marker = tmp_path / "crashed-once"
    flaky = ManagedProcess(
        "flaky",
        ["sh", "-c", f"if [ -e {marker} ]; then exec sleep 60; fi; touch {marker}; exit 5"],
        {},
        tmp_path / "flaky.log",
    )
    once = ManagedProcess("once", ["sh", "-c", "exit 0"], {}, None)
    said: list[str] = []
    restarted = threading.Event()

    def say(line: str) -> None:
        said.append(line)
        if "flaky restarted" in line:
            restarted.set()

    _signal_us_when(restarted)
    policy = RestartPolicy(3, 60, 0.1, 0.2, clean_exit_is_done=True)
    code = run_supervised([flaky, once], policy, say, poll_seconds=0.02)
    assert restarted.is_set(), said
    assert code == 128 + signal.SIGTERM  # the restarted flaky, stopped by the forwarded TERM
    assert not flaky.alive() and not once.alive()
    assert "once finished (exit 0)" in said
    assert not any("once restarted" in line for line in said)
    assert sum("flaky restarted" in line for line in said) == 1
    assert any(line.startswith("flaky exited with code 5") for line in said)


def test_run_supervised_ends_when_every_child_has_finished(tmp_path: Path) -> None:
    children = [ManagedProcess(f"c{n}", ["sh", "-c", "exit 0"], {}, None) for n in range(2)]
    policy = RestartPolicy(clean_exit_is_done=True)
    assert run_supervised(children, policy, lambda _line: None, poll_seconds=0.02) == 0


def test_run_supervised_gives_up_stops_the_others_and_fails(tmp_path: Path) -> None:
    crashing = ManagedProcess("crashing", ["sh", "-c", "exit 4"], {}, tmp_path / "c.log")
    steady = ManagedProcess("steady", ["sleep", "60"], {}, tmp_path / "s.log")
    said: list[str] = []
    policy = RestartPolicy(2, 60, 0.05, 0.05, clean_exit_is_done=True)
    started = time.monotonic()
    assert run_supervised([crashing, steady], policy, said.append, poll_seconds=0.02) == 1
    assert time.monotonic() - started < 10
    assert not steady.alive()
    assert said[-1].startswith("giving up on crashing: it crashed 2 times")


# --- a real stack ------------------------------------------------------------------------------
@dataclass
class Watch:
    said: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


@contextmanager
def supervised(stack: EmbeddedStack) -> Iterator[Watch]:
    """What ``atelier up``'s loop does, in a thread while the test acts."""
    watch = Watch()
    stack.say = watch.said.append
    done = threading.Event()

    def loop() -> None:
        while not done.wait(0.2):
            try:
                stack.supervise()
            except BaseException as exc:
                watch.errors.append(exc)
                return

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        done.set()
        thread.join(30)


def own_stack(
    directory: Path,
    roles: tuple[str, ...] = (),
    policy: RestartPolicy = FAST_POLICY,
    **extra: float,
) -> EmbeddedStack:
    base = Settings.from_env(
        {}, data_dir=directory, log_format="text", kind_plugins=TOY_KIND, **extra
    )
    stack = EmbeddedStack(
        base, port=free_port(), api_workers=1, worker_roles=roles, restart_policy=policy
    )
    stack.start()
    return stack


def child(stack: EmbeddedStack, name: str) -> ManagedProcess:
    return next(p for p in stack.processes if p.name == name)


def kill_and_wait_restart(stack: EmbeddedStack, name: str) -> float:
    """kill -9 the child ``name`` and the seconds until its replacement runs."""
    old = child(stack, name).process.pid
    started = time.monotonic()
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: child(stack, name).process.pid != old, 30, f"{name} restarted")
    return time.monotonic() - started


def ready(stack: EmbeddedStack) -> bool:
    assert stack.settings is not None
    try:
        return requests.get(f"{stack.settings.api_url}/readyz", timeout=2).ok
    except requests.RequestException:
        return False


@pytest.mark.parametrize("victim", ["redis", "api"])
def test_a_killed_redis_or_api_is_restarted_and_keeps_every_job(
    tmp_path: Path, victim: str
) -> None:
    stack = own_stack(tmp_path / "data")
    assert stack.settings is not None
    try:
        client = Client(stack.settings.api_url, stack.api_key, timeout=60)
        job = client.submit("train", "dcgan", TINY_TRAIN)  # no worker: it stays queued
        port = stack.settings.redis_url
        with supervised(stack) as watch:
            killed = time.monotonic()
            restarted = kill_and_wait_restart(stack, victim)
            wait_for(lambda: ready(stack), 30, "the API ready again")
            back = time.monotonic() - killed
            assert client.get(job["id"])["status"] == "queued"
            assert client.submit("train", "dcgan", TINY_TRAIN)["status"] == "queued"
        assert watch.errors == []
        assert stack.settings.redis_url == port  # the same port, the same append-only file
        assert [line.split(" after")[0] for line in watch.said] == [
            f"{victim} was killed by SIGKILL",
            f"{victim} restarted (pid {child(stack, victim).process.pid})",
        ]
        print(f"{victim}: restarted {restarted:.2f}s after kill -9, serving after {back:.2f}s")
    finally:
        stack.stop()


def test_a_stack_whose_redis_keeps_crashing_gives_up_saying_why(tmp_path: Path) -> None:
    stack = own_stack(tmp_path / "data", policy=RestartPolicy(2, 60, 0.2, 0.2))
    try:
        with supervised(stack) as watch:
            kill_and_wait_restart(stack, "redis")
            os.kill(child(stack, "redis").process.pid, signal.SIGKILL)
            wait_for(lambda: bool(watch.errors), 10, "the supervisor to give up")
        assert isinstance(watch.errors[0], GaveUp)
        assert str(watch.errors[0]).startswith("giving up on redis: it crashed 2 times")
    finally:
        stack.stop()
    assert stack.processes == []


# --- with Celery workers (slow: TensorFlow) ----------------------------------------------------
@pytest.mark.slow
def test_killed_redis_and_worker_are_restarted_and_jobs_complete(tmp_path: Path) -> None:
    """Celery's consumer reconnects to the restarted Redis by itself; a job whose worker
    parent was killed mid-training is recovered by its lease and completes."""
    stack = own_stack(
        tmp_path / "data",
        ("train",),
        lease_seconds=3,
        reaper_interval_seconds=0.5,
        lost_message_seconds=5,
        progress_interval_seconds=0.2,
    )
    assert stack.settings is not None
    try:
        client = Client(stack.settings.api_url, stack.api_key, timeout=60)
        with supervised(stack) as watch:
            first = client.submit("train", "toy", {"steps": 6})
            assert client.wait(first["id"], timeout=180)["status"] == "succeeded"

            across = client.submit("train", "toy", {"steps": 100})
            wait_for(lambda: client.get(across["id"])["status"] == "running", 60, "running")
            kill_and_wait_restart(stack, "redis")
            after_redis = client.submit("train", "toy", {"steps": 6})  # rides out the restart
            assert client.wait(after_redis["id"], timeout=120)["status"] == "succeeded"
            assert client.get(first["id"])["status"] == "succeeded"
            survived = client.wait(across["id"], timeout=120)
            assert survived["status"] == "succeeded", survived["error"]

            long = client.submit("train", "toy", {"steps": 100})
            wait_for(lambda: client.get(long["id"])["status"] == "running", 60, "running")
            kill_and_wait_restart(stack, "worker-train")
            done = client.wait(long["id"], timeout=180)
        assert watch.errors == []
        assert done["status"] == "succeeded", done["error"]
        print(
            f"attempts: across the Redis restart {survived['attempt']}, "
            f"with its worker killed {done['attempt']}"
        )
    finally:
        stack.stop()


def session_members(sessions: set[int]) -> list[int]:
    """Pids of every live process in one of ``sessions`` (each child of the stack leads
    its own session, and what it starts stays in it)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) in sessions and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.mark.slow
def test_a_double_sigterm_to_atelier_up_leaves_no_process_behind(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ATELIER_DATA_DIR": str(tmp_path / "data"),
        "ATELIER_KIND_PLUGINS": TOY_KIND,
        "ATELIER_LOG_FORMAT": "text",
    }
    command = [sys.executable, "-m", "atelier.cli.main", "up", "--port"]
    up = subprocess.Popen(
        [*command, str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), 120, "`atelier up`")
        second = subprocess.run(
            [*command, str(free_port())], env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 1
        assert f"in use by another `atelier up` (pid {up.pid}, started" in second.stderr

        key = (tmp_path / "data" / "api-key").read_text().strip()
        client = Client(url, key, timeout=30)
        job = client.submit("train", "toy", {"steps": 100})  # running while we stop
        wait_for(lambda: client.get(job["id"])["status"] == "running", 120, "running")
        members = session_members(set(children_of(up.pid)))
        assert len(members) >= 6  # redis, 2 worker parents + job processes, gunicorn + worker
        up.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        up.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        output, _ = up.communicate(timeout=120)
        print(f"teardown took {time.monotonic() - stopping:.1f}s\n{output}")
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0, output
    assert "already stopping" in output
    assert [pid for pid in members if Path(f"/proc/{pid}").exists()] == []


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=2).ok
    except requests.RequestException:
        return False


@pytest.mark.slow
def test_a_worker_stopping_while_redis_is_down_exits_within_the_bound(tmp_path: Path) -> None:
    stack = own_stack(tmp_path / "data", ("generate",))
    worker = child(stack, "worker-generate")
    wait_for(lambda: "ready." in "\n".join(worker.log_tail(200)), 60, "the worker ready")
    sessions = {p.process.pid for p in stack.processes}
    os.kill(child(stack, "redis").process.pid, signal.SIGKILL)
    time.sleep(1)  # the worker has noticed and is retrying the broker
    started = time.monotonic()
    stack.stop()
    took = time.monotonic() - started
    print(f"stopped in {took:.1f}s with Redis gone")
    assert took < API_STOP_SECONDS + WORKER_STOP_SECONDS_WITHOUT_REDIS + 5
    assert session_members(sessions) == []


@pytest.mark.slow
def test_a_standalone_worker_told_to_stop_while_redis_is_down_exits_promptly(
    tmp_path: Path,
) -> None:
    """`docker stop` of a worker container: SIGTERM to the worker's own process only, with
    Redis gone. Its drain flag is tried once (no retries inside Celery's signal handler),
    so it exits in seconds, not after ~30 s of reconnects."""
    from atelier.cli.processes import ATELIER_COMMAND, child_env

    redis_process, url = start_redis(
        Settings(), tmp_path / "redis", free_port(), tmp_path / "r.log"
    )
    settings = Settings(redis_url=url, data_dir=tmp_path, local_storage_dir=tmp_path / "objects")
    worker = ManagedProcess(
        "worker",
        [*ATELIER_COMMAND, "worker", "--queues", "generate", "--name", "lonely"],
        child_env(settings.replace(worker_metrics_port=0)),
        tmp_path / "worker.log",
    )
    try:
        wait_for(lambda: "ready." in "\n".join(worker.log_tail(200)), 60, "the worker ready")
        redis_process.stop(sig=signal.SIGKILL)
        time.sleep(1)
        started = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)  # the parent only, as a container stop
        assert worker.wait(20), "still running 20 s after SIGTERM"
        took = time.monotonic() - started
        print(f"standalone worker stopped in {took:.1f}s with Redis gone")
        assert took < 10
    finally:
        worker.stop(5)
        redis_process.stop()


@pytest.mark.slow
def test_ctrl_c_reaches_each_gpu_worker_once(tmp_path: Path) -> None:
    """``atelier worker`` with GPUs runs one Celery worker per GPU and forwards signals;
    a terminal's Ctrl-C (SIGINT to the foreground group) must reach each worker once:
    twice is Celery's cold shutdown, which kills the running job instead of draining it."""
    redis_process, url = start_redis(
        Settings(), tmp_path / "redis", free_port(), tmp_path / "redis.log"
    )
    env = {
        **os.environ,
        "ATELIER_REDIS_URL": url,
        "ATELIER_GPUS": "0,1",  # two workers (on CPU here: the GPU ids are only passed on)
        "ATELIER_WORKER_METRICS_PORT": "0",
        "ATELIER_LOG_FORMAT": "text",
        "ATELIER_METRICS_DIR": str(tmp_path / "metrics"),
    }
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "atelier.cli.main", "worker", "--queues", "generate"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: log.read_text().count("ready.") == 2, 60, "both workers ready")
        os.killpg(worker.pid, signal.SIGINT)
        worker.wait(60)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        redis_process.stop()
    text = log.read_text()
    assert text.count("Warm shutdown") == 2
    # Celery answers each SIGINT with a "Hitting Ctrl+C again …" line: one per worker.
    assert text.count("Hitting Ctrl+C again") == 2
