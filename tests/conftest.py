"""Test fixtures against the real things: one redis-server and one S3 server (SeaweedFS,
over HTTP, requiring the tests' credentials) per session, and stacks of gunicorn + Celery
worker processes built the way ``atelier up`` builds them.

Three tiers (``tests/tiers.py``). The fast tier (``-m "not slow"``) runs the Flask app in
this process against the real redis-server (``inprocess_api``), with no worker and no
TensorFlow: jobs it submits stay queued. Every test that starts a stack, a worker or a CLI
against a stack, or imports TensorFlow is ``slow`` (integration); the default recipes'
trainings are ``quality`` as well. A fast run that loads TensorFlow fails.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from flask import Flask

from atelier.api.app import create_app
from atelier.cli.processes import free_port, start_redis
from atelier.cli.redis_acl import ATELIER_USER
from atelier.cli.seaweedfs import SeaweedServer
from atelier.cli.stack import EmbeddedStack
from atelier.client import Client
from atelier.shared.auth import ApiKeyStore
from atelier.shared.kinds import KINDS, DcganGenerateParams, DcganTrainParams, KindSpec
from atelier.shared.settings import Settings
from tests.flask_transport import session_for

# The tiers: markers, which modules a run imports, and the fast tier's guard.
pytest_plugins = ("tests.tiers", "tests.xdist_groups", "tests.podman_prebuild")

IN_CI = os.environ.get("CI") == "true"
TOY_KIND = "tests.toy_kind:KIND"

# Redis databases: each stack gets its own, the in-process API its own (flushed per test),
# unit tests share the last one (flushed per test).
STACK_DBS = {"local": 1, "s3": 2}
INPROCESS_DB = 3
UNIT_DB = 9


def register_image_kind(monkeypatch: pytest.MonkeyPatch, name: str, implementation: str) -> None:
    """A test's own kind (dcgan's parameters, ``implementation`` as ``module:Class``) in the
    kinds table for this test only."""
    spec = KindSpec(
        name=name,
        description="test",
        train_params=DcganTrainParams,
        generate_params=DcganGenerateParams,
        implementation=implementation,
        modality="image",
    )
    monkeypatch.setitem(KINDS, name, spec)
UPLOAD_LIMITS = {"bytes": 4 << 20, "files": 200, "uncompressed": 32 << 20, "pixels": 2000 * 2000}
# Rate limits and quotas far above anything a test does: only the tests of the limits
# themselves (tests/test_limits.py, which set their own) ever meet one.
ROOMY_LIMITS: dict[str, Any] = {
    "submits_per_minute": 600_000,
    "submits_burst": 100_000,
    "uploads_per_minute": 600_000,
    "uploads_burst": 100_000,
    "reads_per_minute": 600_000,
    "reads_burst": 100_000,
    "anonymous_per_minute": 600_000,
    "anonymous_burst": 100_000,
    "max_queued_jobs": 0,
    "max_stored_bytes": 0,
    "max_datasets": 0,
}
# The suite's Redis serves the code under test as a deployment's does: as the ACL user
# `atelier`, allowed Atelier's commands and nothing else (cli/redis_acl.py), so the whole
# suite, training and all, runs under that ACL. What only a test does (empty a database,
# list or copy keys) goes through `default`, with every right: `admin_redis`.
REDIS_PASSWORD = "atelier-test-password"
AdminRedis = redis.Redis  # a name a dataclass's `redis` field does not hide
REDIS_ADMIN_PASSWORD = "atelier-test-admin-password"


def admin_url(url: str) -> str:
    """``url`` (the suite's Redis, as ``atelier``) as the admin user ``default``."""
    ours = f"{ATELIER_USER}:{REDIS_PASSWORD}@"
    assert ours in url, "not the suite's Redis"
    return url.replace(ours, f"default:{REDIS_ADMIN_PASSWORD}@")


def admin_redis(url: str) -> redis.Redis:
    """A client of ``url``'s database with every right, for what only a test does."""
    return redis.Redis.from_url(admin_url(url))


def url_of(client: redis.Redis) -> str:
    """The URL ``client`` reaches (the suite's Redis), its credentials included."""
    kw = client.connection_pool.connection_kwargs
    return f"redis://{kw['username']}:{kw['password']}@{kw['host']}:{kw['port']}/{kw['db']}"


def flush_db(url: str) -> None:
    """Empty ``url``'s database (FLUSHDB is not Atelier's to run)."""
    with admin_redis(url) as client:
        client.flushdb()


@pytest.fixture(autouse=True)
def kinds_table_restored() -> Iterator[None]:
    """The kinds table as each test found it: an app made with ``kind_plugins`` adds to the
    process's table, and a later test in that process (under xdist, in another order) saw
    the benchmarks' ``sim`` kind among the served kinds."""
    before = dict(KINDS)
    yield
    KINDS.clear()
    KINDS.update(before)


@pytest.fixture(scope="session")
def redis_base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own on a free port; never the machine's shared one. The URL
    names the `atelier` user. A command it was refused anywhere in the session (even one
    the code caught) fails the session: the ACL lacks something Atelier runs."""
    directory = tmp_path_factory.mktemp("redis")
    process, url = start_redis(
        Settings(),
        directory,
        free_port(),
        directory / "redis.log",
        password=REDIS_PASSWORD,
        admin_password=REDIS_ADMIN_PASSWORD,
    )
    yield url.rsplit("/", 1)[0]
    try:
        with admin_redis(url) as admin:
            refused = [e for e in admin.acl_log(count=100) if e["reason"] != "auth"]
    finally:
        process.stop()
    assert refused == [], f"the atelier user was refused: {refused}"


@pytest.fixture()
def redis_client(redis_base_url: str) -> Iterator[redis.Redis]:
    url = f"{redis_base_url}/{UNIT_DB}"
    flush_db(url)
    client = redis.Redis.from_url(url)
    yield client
    client.close()
    flush_db(url)


@pytest.fixture()
def redis_admin(redis_base_url: str) -> Iterator[redis.Redis]:
    """``redis_client``'s database with every right (KEYS, DUMP, RESTORE, FLUSHDB)."""
    with admin_redis(f"{redis_base_url}/{UNIT_DB}") as client:
        yield client


@dataclass
class InProcessApi:
    """``create_app(settings)`` in this process, on its own Redis database and a local store
    in a temporary directory; no gunicorn, no worker. Its sessions and clients reach the
    app through ``tests.flask_transport``, so tests use the public client and plain
    ``requests`` calls as they would against a stack."""

    app: Flask
    settings: Settings
    redis: redis.Redis
    """As the app reaches it: the `atelier` user."""
    http: requests.Session
    """A session without a key."""
    admin: AdminRedis
    """The same database with every right, for a test's own look at the keys."""

    def client(self, owner: str = "alice") -> Client:
        return Client(self.settings.api_url, self.raw_key(owner), session=self.session())

    def session(self) -> requests.Session:
        return session_for(self.app, self.settings.api_url)

    def url(self, path: str) -> str:
        return self.settings.api_url + path

    def raw_key(self, owner: str = "alice") -> str:
        return ApiKeyStore(self.redis).create(owner, name="raw")


def inprocess_settings(redis_base_url: str, directory: Path, **extra: Any) -> Settings:
    return Settings.from_env(
        {},
        redis_url=f"{redis_base_url}/{INPROCESS_DB}",
        data_dir=directory,
        local_storage_dir=directory / "objects",
        api_url="http://atelier.test",
        log_level="WARNING",
        max_upload_bytes=UPLOAD_LIMITS["bytes"],
        max_upload_files=UPLOAD_LIMITS["files"],
        max_uncompressed_bytes=UPLOAD_LIMITS["uncompressed"],
        max_image_pixels=UPLOAD_LIMITS["pixels"],
        **{**ROOMY_LIMITS, **extra},
    )


@pytest.fixture()
def inprocess_api(redis_base_url: str, tmp_path: Path) -> Iterator[InProcessApi]:
    """A fresh app on an empty database for each test (the app's Celery producer declares
    its queues once, so the database is emptied before the app exists, never under it)."""
    yield from inprocess_api_for(inprocess_settings(redis_base_url, tmp_path))


@pytest.fixture()
def make_api(redis_base_url: str, tmp_path: Path) -> Iterator[Callable[..., InProcessApi]]:
    """``make_api(**settings)``: an in-process API with these settings over the roomy
    limits (one at a time; each on an emptied database), stopped after the test."""
    running: list[Iterator[InProcessApi]] = []

    def make(**settings: Any) -> InProcessApi:
        apis = inprocess_api_for(inprocess_settings(redis_base_url, tmp_path, **settings))
        running.append(apis)
        return next(apis)

    yield make
    for apis in running:
        next(apis, None)


def inprocess_api_for(settings: Settings) -> Iterator[InProcessApi]:
    client = redis.Redis.from_url(settings.redis_url)
    admin = admin_redis(settings.redis_url)
    admin.flushdb()
    app = create_app(settings)
    http = session_for(app, settings.api_url)
    try:
        yield InProcessApi(app, settings, client, http, admin)
    finally:
        http.close()
        admin.flushdb()
        client.close()
        admin.close()


# The one identity the tests' S3 server accepts; a secret unlike the key, so a mix-up of
# the two is refused rather than passing by luck.
S3_ACCESS_KEY = "atelier-test"
S3_SECRET_KEY = "atelier-test-secret"


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SeaweedFS S3 server of our own (``weed mini``, ~1 s to start) on a free port."""
    server = s3_server(tmp_path_factory.mktemp("seaweedfs"))
    yield server.start()
    server.stop()


def s3_server(directory: Path) -> SeaweedServer:
    """A SeaweedFS server (not yet started) on a free port, for a test that stops it."""
    return SeaweedServer(directory, free_port(), S3_ACCESS_KEY, S3_SECRET_KEY)


def s3_settings(endpoint: str, bucket: str = "atelier-test") -> dict[str, str]:
    return {
        "storage": "s3",
        "s3_endpoint_url": endpoint,
        "s3_bucket": bucket,
        "s3_access_key_id": S3_ACCESS_KEY,
        "s3_secret_access_key": S3_SECRET_KEY,
    }


@dataclass
class RunningStack:
    name: str
    stack: EmbeddedStack
    settings: Settings
    redis: redis.Redis
    admin: AdminRedis
    """The stack's database with every right, for a test's own look at the keys."""

    def client(self, owner: str = "alice") -> Client:
        key = ApiKeyStore(self.redis).create(owner, name="test")
        return Client(self.settings.api_url, key, timeout=30)

    def url(self, path: str) -> str:
        return self.settings.api_url + path

    def raw_key(self, owner: str = "alice") -> str:
        return ApiKeyStore(self.redis).create(owner, name="raw")


def _start_stack(
    name: str, redis_base_url: str, directory: Path, extra: dict[str, str]
) -> EmbeddedStack:
    base = Settings.from_env(
        {},
        data_dir=directory,
        log_level="INFO",
        # The test-only third kind (tests/toy_kind.py), loaded by the API and the workers.
        kind_plugins=TOY_KIND,
        # Fast cooperative cancel and progress for tests; defaults are the same order.
        progress_interval_seconds=0.2,
        cancel_check_interval_seconds=0.2,
        # Small upload limits, so the hostile-input tests stay small.
        max_upload_bytes=UPLOAD_LIMITS["bytes"],
        max_upload_files=UPLOAD_LIMITS["files"],
        max_uncompressed_bytes=UPLOAD_LIMITS["uncompressed"],
        max_image_pixels=UPLOAD_LIMITS["pixels"],
        **{**ROOMY_LIMITS, **extra},
    )
    stack = EmbeddedStack(
        base,
        port=free_port(),
        api_workers=2,
        external_redis_url=f"{redis_base_url}/{STACK_DBS[name]}",
    )
    stack.start()
    return stack


def _stack_fixture(name: str, request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    redis_base_url: str = request.getfixturevalue("redis_base_url")
    directory = request.getfixturevalue("tmp_path_factory").mktemp(f"stack-{name}")
    extra = s3_settings(request.getfixturevalue("s3_endpoint")) if name == "s3" else {}
    url = f"{redis_base_url}/{STACK_DBS[name]}"
    client = redis.Redis.from_url(url)
    flush_db(url)
    stack = _start_stack(name, redis_base_url, directory, extra)
    assert stack.settings is not None
    try:
        yield RunningStack(name, stack, stack.settings, client, admin_redis(url))
    finally:
        stack.stop()
        if request.session.testsfailed:
            _dump_logs(directory)
        shutil.rmtree(directory, ignore_errors=True)


def _dump_logs(directory: Path) -> None:
    for log in sorted((directory / "logs").glob("*.log")):
        print(f"===== {log.name} (last 60 lines) =====")
        print("\n".join(log.read_text(errors="replace").splitlines()[-60:]))


@pytest.fixture(scope="session")
def local_stack(request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    yield from _stack_fixture("local", request)


@pytest.fixture(scope="session")
def s3_stack(request: pytest.FixtureRequest) -> Iterator[RunningStack]:
    yield from _stack_fixture("s3", request)


@pytest.fixture(scope="session", params=["local", "s3"])
def stack(request: pytest.FixtureRequest) -> RunningStack:
    """Each storage backend in turn."""
    found: RunningStack = request.getfixturevalue(f"{request.param}_stack")
    return found


def get_json(url: str, key: str) -> requests.Response:
    return requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


# A DCGAN small enough to train in seconds on CPU, with samples and checkpoints on.
TINY_TRAIN = {
    "steps": 30,
    "batch_size": 16,
    "latent_dim": 8,
    "base_filters": 4,
    "sample_every": 10,
    "checkpoint_every": 10,
}


# A textgen model small enough to train in seconds on CPU.
TINY_TEXT = {
    "steps": 20,
    "batch_size": 8,
    "sequence_length": 64,
    "num_layers": 1,
    "num_heads": 2,
    "hidden_dim": 32,
    "sample_every": 10,
    "checkpoint_every": 10,
}


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)
