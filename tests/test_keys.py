"""Key lifecycle (scopes, expiry, last use, revoke, rotate) and the audit trail."""

from __future__ import annotations

import json
import time

import pytest
import redis
from click.testing import CliRunner

from atelier.cli.keys import keys
from atelier.client import ApiError, Client
from atelier.shared.auth import ID_CHARS, ApiKeyStore, hash_key
from atelier.shared.redis_keys import KEYS
from tests.conftest import InProcessApi, url_of


def _client(api: InProcessApi, key: str) -> Client:
    return Client(api.settings.api_url, key, session=api.session())


def test_a_key_from_before_scopes_works_with_default_scopes(redis_client: redis.Redis) -> None:
    legacy = "atk_" + "x" * 43
    old = {"owner": "alice", "name": "old", "created_at": 1.0}
    redis_client.set(
        KEYS.api_key(hash_key(legacy)),
        json.dumps(old),
    )
    store = ApiKeyStore(redis_client)
    record = store.lookup(legacy)
    assert record is not None and record.scopes == ["read", "submit", "upload"]
    assert record.expires_at is None and not record.allows("admin")
    [listed] = store.list_for_owner("alice")  # indexed on first use
    assert listed.id == hash_key(legacy)[:ID_CHARS] and listed.last_used_at is not None


def test_expired_and_revoked_keys_stop_working(redis_client: redis.Redis) -> None:
    store = ApiKeyStore(redis_client, cache_seconds=60)
    soon = store.create("alice", "soon", expires_at=time.time() + 0.3)
    kept = store.create("alice", "kept")
    assert store.lookup(soon) is not None and store.lookup(kept) is not None
    time.sleep(0.4)
    assert store.lookup(soon) is None  # even from the cache
    assert store.revoke("alice", hash_key(kept)[:ID_CHARS]) is not None
    assert store.lookup(kept) is None  # this process forgets it at once
    assert store.revoke("bob", hash_key(kept)[:ID_CHARS]) is None


def test_scopes_are_enforced_with_a_403(inprocess_api: InProcessApi) -> None:
    reader = ApiKeyStore(inprocess_api.redis).create("alice", "r", scopes=["read"])
    client = _client(inprocess_api, reader)
    assert client.jobs()["data"] == []
    with pytest.raises(ApiError) as refused:
        client.submit("generate", "dcgan", {})
    assert refused.value.status == 403
    assert refused.value.problem["type"] == "urn:atelier:problem:missing-scope"
    with pytest.raises(ApiError) as admin_only:
        _client(inprocess_api, inprocess_api.raw_key()).api_keys()
    assert admin_only.value.problem["scope"] == "admin"


def test_an_admin_key_manages_keys_and_the_trail_records_it(inprocess_api: InProcessApi) -> None:
    admin_key = ApiKeyStore(inprocess_api.redis).create("alice", "boss", scopes=["admin"])
    admin = _client(inprocess_api, admin_key)
    made = admin.create_key("ci", ["read", "submit"], expires_in_days=1)
    assert made["key"].startswith("atk_") and made["scopes"] == ["read", "submit"]
    assert made["expires_at"] > time.time() + 86_000
    assert {k["name"] for k in admin.api_keys()} == {"boss", "ci"}
    rotated = admin.rotate_key(made["id"])
    assert rotated["id"] != made["id"] and rotated["scopes"] == made["scopes"]
    with pytest.raises(ApiError) as gone:
        _client(inprocess_api, made["key"]).jobs()
    assert gone.value.status == 401
    admin.revoke_key(rotated["id"])
    with pytest.raises(ApiError) as missing:
        admin.revoke_key(rotated["id"])
    assert missing.value.status == 404
    assert _client(inprocess_api, inprocess_api.raw_key("bob")).audit() == []  # per owner
    trail = admin.audit()
    assert [e["action"] for e in trail] == ["key.revoke", "key.rotate", "key.create"]
    assert (
        trail[0]["key_id"] == rotated["id"] and trail[0]["actor"] == hash_key(admin_key)[:ID_CHARS]
    )
    assert trail[2]["id"] == made["id"]


def test_deletes_are_audited_and_failures_are_not(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    with pytest.raises(ApiError):
        client.delete_dataset("nope")
    assert client.audit() == []
    answer = inprocess_api.http.get(inprocess_api.url("/v1/audit"), timeout=5)
    assert answer.status_code == 401


def test_cli_lists_revokes_and_rotates(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATELIER_REDIS_URL", url_of(redis_client))
    runner = CliRunner()
    made = runner.invoke(keys, ["create", "--owner", "carol", "--scope", "read", "--name", "x"])
    assert made.exit_code == 0, made.output
    key_id = hash_key(made.output.strip())[:ID_CHARS]
    listed = runner.invoke(keys, ["list", "--owner", "carol"])
    assert key_id in listed.output and " read " in listed.output
    rotated = runner.invoke(keys, ["rotate", "--owner", "carol", key_id])
    assert rotated.exit_code == 0 and rotated.output.strip().startswith("atk_")
    assert runner.invoke(keys, ["revoke", "--owner", "carol", key_id]).exit_code == 1
    new_id = hash_key(rotated.output.strip())[:ID_CHARS]
    assert runner.invoke(keys, ["revoke", "--owner", "carol", new_id]).exit_code == 0
    assert ApiKeyStore(redis_client).list_for_owner("carol") == []


def test_submit_and_cancel_are_audited_with_the_job_id(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.client()
    job = client.submit("train", "dcgan", {"steps": 3})
    client.cancel(job["id"])
    trail = client.audit()
    assert [(e["action"], e["id"] if "id" in e else e["job_id"]) for e in trail] == [
        ("job.cancel", job["id"]),
        ("job.submit", job["id"]),
    ]
