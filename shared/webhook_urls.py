"""Which webhook URLs Atelier will call, and which addresses it will connect to (SSRF guard).

Two checks, both here so the API and the webhooks worker apply one rule:

- at submit, ``check_webhook_url``: http(s) only, no credentials in the URL, at most
  ``MAX_URL_CHARS``, a host, and a host written as an IP address (in any of the spellings
  ``inet_aton`` accepts: ``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``) must be one we
  would connect to;
- at delivery, ``vetted_address``: resolve the host and refuse it if *any* address it
  resolves to is refused (a name that answers one public and one private address is how
  DNS tricks reach an internal service); the sender then connects to the vetted address
  itself, so a second lookup cannot rebind the name between the check and the connect.

Refused always: multicast, unspecified, reserved, the cloud metadata endpoints, and
anything not globally routable that is not one of the "private" kinds below.
Refused unless ``allow_private`` (``ATELIER_WEBHOOK_ALLOW_PRIVATE``, for tests and private
deployments): loopback, private (RFC 1918, unique-local, CGNAT shared space) and link-local.
IPv4-mapped, IPv4-compatible, 6to4 and NAT64 IPv6 addresses are judged by the IPv4 address
they carry.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Sequence
from urllib.parse import SplitResult, urlsplit

from .errors import WebhookRefused

log = logging.getLogger(__name__)

MAX_URL_CHARS = 2048

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.123",  # AWS time sync
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS DNS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")

Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses`` as text; ``resolve_host`` is the real one."""


class UnresolvedHost(OSError):
    """The host did not resolve now (DNS may answer later: a delivery retries)."""


def check_webhook_url(url: str, allow_private: bool) -> SplitResult:
    """The parsed URL, or ``WebhookRefused`` saying what is wrong with it."""
    if len(url) > MAX_URL_CHARS:
        raise WebhookRefused(f"longer than {MAX_URL_CHARS} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise WebhookRefused("spaces and control characters must be percent-encoded")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(f"not a valid URL ({exc})") from None
    host = _checked_host(parts, port)
    literal = literal_address(host)
    if literal is not None:
        reason = refusal(literal, allow_private)
        if reason:
            raise WebhookRefused(f"{host} is {reason}")
    return parts


def _checked_host(parts: SplitResult, port: int | None) -> str:
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("the scheme must be http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookRefused("credentials in the URL are not allowed")
    if not parts.hostname:
        raise WebhookRefused("the URL has no host")
    if port == 0:
        raise WebhookRefused("port 0 is not a port")
    if not (parts.path + parts.query).isascii():
        # An HTTP request line is ASCII; only the host may be an internationalised name.
        raise WebhookRefused("the path and query must be ASCII (percent-encode the rest)")
    return parts.hostname


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, if it is an address: dotted, IPv6, or one of the legacy
    forms (decimal, octal, hex, short) that C resolvers, and so curl and browsers, accept."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if ":" in host or not host or not all(c.isalnum() or c == "." for c in host):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = address.packed
    if packed[:12] == bytes(12) and int(address) > 1:  # IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(packed[12:])
    return None


def refusal(address: IPAddress, allow_private: bool, name_inner: bool = True) -> str:
    """Why a webhook must not be sent to ``address``; empty when it may be.
    ``name_inner``: say which address an embedded IPv4 one was found inside."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = refusal(inner, allow_private)
        return f"{reason} (inside {address})" if reason and name_inner else reason
    always = _always_refused(address)
    if always:
        return always
    private_kind = _private_kind(address)
    if private_kind:
        return "" if allow_private else private_kind
    return "a reserved address" if address.is_reserved or not address.is_global else ""


def _always_refused(address: IPAddress) -> str:
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    return ""


def _private_kind(address: IPAddress) -> str:
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address in _CGNAT or (address.is_private and not address.is_reserved):
        return "a private address"
    return ""


def resolve_host(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for TCP (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def vetted_address(
    host: str, port: int, allow_private: bool, resolver: Resolver = resolve_host
) -> IPAddress:
    """The address to connect to for ``host``: refused (``WebhookRefused``) if any of
    its addresses is; ``UnresolvedHost`` if it resolves to none."""
    literal = literal_address(host)
    if literal is not None:
        found: list[IPAddress] = [literal]
    else:
        try:
            found = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host, port)]
        except (OSError, UnicodeError) as exc:
            raise UnresolvedHost(f"{host} does not resolve ({exc})") from None
    if not found:
        raise UnresolvedHost(f"{host} resolves to no address")
    for address in found:
        reason = refusal(address, allow_private, name_inner=False)
        if reason:
            # The owner sees the kind of address, never the address: DNS answers from
            # inside the deployment (10.x, a service's IP) are not theirs to map.
            log.warning("webhook host %s resolves to %s: refused", host, address)
            raise WebhookRefused(f"{host} resolves to {reason}")
    return found[0]
