"""Redis connections that ride out a Redis restart or a Sentinel failover instead of failing
the caller, from either kind of ``ATELIER_REDIS_URL``:

- ``redis://[user:password@]host:port/DB`` (or ``rediss://``, ``unix://``): one server;
- ``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB]``: the primary of
  ``SERVICE`` as the sentinels name it now. The user and password are the data nodes'; the
  sentinels' own password is ``ATELIER_REDIS_SENTINEL_PASSWORD``.

A Sentinel client asks the sentinels for the primary on every new connection, and drops its
connections when the primary it reaches turns replica (``READONLY``), so a failover needs
no restart: commands in flight fail, are retried with backoff while the sentinels elect
the new primary, and go to it once they have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

if TYPE_CHECKING:  # settings imports this module to check URLs: no import at run time
    from .settings import Settings

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379

PATIENT_SECONDS = 30.0
"""How long workers, reapers and the CLI retry: longer than a Redis restart with AOF replay
of a busy queue, or a Sentinel failover (about 10 s on loopback with down-after 2 s)."""
_BACKOFF_BASE, _BACKOFF_CAP = 0.05, 2.0


@dataclass(frozen=True)
class SentinelUrl:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        """ValueError with what is wrong, for a URL that is not a usable sentinel URL."""
        scheme, sep, rest = url.partition("://")
        if scheme != SENTINEL_SCHEME or not sep:
            raise ValueError(f"a sentinel URL starts with {SENTINEL_SCHEME}://")
        netloc, _, path = rest.partition("/")
        userinfo, at, hosts = netloc.rpartition("@")
        if not at:
            hosts = netloc
        username, password = _userinfo(userinfo) if at else (None, None)
        sentinels = tuple(_host_port(part) for part in hosts.split(","))
        parts = [p for p in path.split("/") if p]
        if not parts or len(parts) > 2:
            raise ValueError("a sentinel URL ends with /SERVICE or /SERVICE/DB")
        if len(parts) == 2 and not parts[1].isdigit():
            raise ValueError(f"the database in a sentinel URL is a number, not {parts[1]!r}")
        return cls(
            sentinels,
            unquote(parts[0]),
            int(parts[1]) if len(parts) == 2 else 0,
            username,
            password,
        )

    def kombu_url(self) -> str:
        """The same place as kombu's sentinel transport spells it (``master_name`` goes in
        its transport options): ``sentinel://user:pass@h1:p1/DB;sentinel://…``."""
        auth = ""
        if self.username or self.password:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password or '', safe='')}@"
        return ";".join(
            f"sentinel://{auth}{_bracketed(host)}:{port}/{self.db}" for host, port in self.sentinels
        )


def _userinfo(text: str) -> tuple[str | None, str | None]:
    user, colon, password = text.partition(":")
    if not colon:  # redis://password@host is the old, password-only spelling
        return None, unquote(user) or None
    return unquote(user) or None, unquote(password) or None


def _host_port(part: str) -> tuple[str, int]:
    part = part.strip()
    if part.startswith("["):  # [::1]:26379
        host, _, tail = part[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = part.rpartition(":") if ":" in part else (part, "", "")
    if not host:
        raise ValueError(f"a sentinel address is host:port, not {part!r}")
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise ValueError(f"the port of sentinel {part!r} is not a port number")
    return host, int(port_text) if port_text else DEFAULT_SENTINEL_PORT


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME + "://")


def check_url(url: str) -> None:
    """ValueError unless ``url`` is a Redis URL Atelier can connect with."""
    if is_sentinel_url(url):
        SentinelUrl.parse(url)
    elif not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("use redis://, rediss://, unix:// or redis+sentinel://")


def retries_within(seconds: float) -> int:
    """How many retries of the backoff (50 ms doubling to 2 s) fit in ``seconds``."""
    retries, waited, delay = 0, 0.0, _BACKOFF_BASE
    while waited + delay <= seconds:
        waited += delay
        retries += 1
        delay = min(delay * 2, _BACKOFF_CAP)
    return retries


def connect(
    url: str,
    *,
    sentinel_password: str = "",
    patience_seconds: float = PATIENT_SECONDS,
    socket_timeout: float = 30.0,
    connect_timeout: float = 5.0,
) -> redis.Redis:
    """A client of ``url`` that retries connection errors with backoff (50 ms doubling to
    2 s) for about ``patience_seconds``: through a restart, or while sentinels elect a new
    primary; then the error reaches the caller."""
    options: dict[str, Any] = {
        "retry": Retry(
            ExponentialBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE),
            retries_within(patience_seconds),
        ),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "health_check_interval": 30,
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
    }
    if not is_sentinel_url(url):
        return redis.Redis.from_url(url, **options)
    where = SentinelUrl.parse(url)
    sentinel = Sentinel(
        list(where.sentinels),
        sentinel_kwargs={
            "password": sentinel_password or None,
            "socket_connect_timeout": 1,
            "socket_timeout": 1,
        },
    )
    client: redis.Redis = sentinel.master_for(
        where.service,
        db=where.db,
        username=where.username,
        password=where.password,
        **options,
    )
    return client


def redis_for(settings: Settings, **options: Any) -> redis.Redis:
    """``connect`` to the settings' Redis (``ATELIER_REDIS_URL``, the sentinels' password)."""
    return connect(
        settings.redis_url, sentinel_password=settings.redis_sentinel_password, **options
    )


def connect_quickly(url: str, *, sentinel_password: str = "", seconds: float = 1.0) -> redis.Redis:
    """A client that gives up at once: a probe (is Redis up?) or a signal handler that must
    not hold a shutdown for half a minute of retries."""
    return connect(
        url,
        sentinel_password=sentinel_password,
        patience_seconds=0.0,
        socket_timeout=seconds,
        connect_timeout=seconds,
    )
