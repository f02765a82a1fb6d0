"""``atelier keys``: create, list, revoke and rotate API keys, straight through Redis (run
it where ATELIER_REDIS_URL reaches; over HTTP an ``admin`` key can do the same)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click
import redis

from ..shared.audit import AuditLog
from ..shared.auth import DEFAULT_SCOPES, ID_CHARS, SCOPES, ApiKeyStore, hash_key
from ..shared.durability import Durability
from ..shared.errors import NotReplicated
from ..shared.redis_client import redis_for
from ..shared.settings import Settings

OWNER = click.option("--owner", required=True, help="Owner the key acts as (a-z, 0-9, _ and -).")


def _redis() -> redis.Redis:
    return redis_for(Settings.from_env())


def _confirmed(client: redis.Redis, what: str) -> None:
    """A key change is printed only once ``ATELIER_REDIS_MIN_REPLICAS`` replicas hold it: a
    key shown to an operator must not vanish in a failover."""
    settings = Settings.from_env()
    durability = Durability(
        client, settings.redis_min_replicas, settings.redis_replica_wait_seconds
    )
    try:
        durability.confirm(what)
    except NotReplicated as exc:
        raise click.ClickException(f"{exc.detail} Run the command again.") from exc


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M")


@click.group()
def keys() -> None:
    """API keys (talks to Redis directly: run it where ATELIER_REDIS_URL reaches)."""


@keys.command("create")
@OWNER
@click.option("--name", default="cli", show_default=True, help="A label for the key.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help=f"Repeat for several (default: {', '.join(DEFAULT_SCOPES)}; admin implies all).",
)
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), default=None)
def keys_create(owner: str, name: str, scopes: tuple[str, ...], expires_days: float | None) -> None:
    """Create a key and print it; only its hash is stored."""
    client = _redis()
    expires = time.time() + expires_days * 86_400 if expires_days else None
    try:
        key = ApiKeyStore(client).create(owner, name, scopes or DEFAULT_SCOPES, expires)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--owner") from exc
    AuditLog(client).append(owner, "key.create", actor="cli", id=hash_key(key)[:ID_CHARS])
    _confirmed(client, "The new key")
    click.echo(key)


@keys.command("list")
@OWNER
def keys_list(owner: str) -> None:
    """The owner's keys: id, name, scopes, created, expires, last used (never the key)."""
    click.echo(f"{'id':<18}{'name':<16}{'scopes':<26}{'created':<18}{'expires':<18}last used")
    for info in ApiKeyStore(_redis()).list_for_owner(owner):
        click.echo(
            f"{info.id:<18}{info.name[:15]:<16}{','.join(info.scopes):<26}"
            f"{_when(info.created_at):<18}{_when(info.expires_at):<18}{_when(info.last_used_at)}"
        )


@keys.command("revoke")
@OWNER
@click.argument("key_id")
def keys_revoke(owner: str, key_id: str) -> None:
    """Revoke a key by its id (API processes may honour it for ATELIER_AUTH_CACHE_SECONDS)."""
    client = _redis()
    if ApiKeyStore(client).revoke(owner, key_id) is None:
        raise click.ClickException(f"{owner} has no key {key_id!r} (see `atelier keys list`).")
    AuditLog(client).append(owner, "key.revoke", actor="cli", key_id=key_id)
    _confirmed(client, "The revocation")
    click.echo(f"revoked {key_id}")


@keys.command("rotate")
@OWNER
@click.argument("key_id")
def keys_rotate(owner: str, key_id: str) -> None:
    """Print a new key with the old one's name, scopes and expiry; revoke the old one."""
    client = _redis()
    key = ApiKeyStore(client).rotate(owner, key_id)
    if key is None:
        raise click.ClickException(f"{owner} has no key {key_id!r} (see `atelier keys list`).")
    AuditLog(client).append(
        owner, "key.rotate", actor="cli", key_id=key_id, id=hash_key(key)[:ID_CHARS]
    )
    _confirmed(client, "The rotation")
    click.echo(key)
