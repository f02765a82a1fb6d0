"""The webhook SSRF guard: which URLs a job may carry and which addresses a delivery may
reach, judged on resolved addresses (a stubbed resolver stands in for DNS)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from atelier.shared.errors import WebhookRefused
from atelier.shared.webhook_urls import (
    MAX_URL_CHARS,
    Resolver,
    UnresolvedHost,
    check_webhook_url,
    literal_address,
    vetted_address,
)
from atelier.workers.webhook_http import HttpLimits, post


def resolver_of(*addresses: str) -> tuple[list[str], Resolver]:
    """A resolver answering ``addresses`` for any name, and the hosts it was asked."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        return list(addresses)

    return asked, resolve


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("https://example.com/" + "a" * MAX_URL_CHARS, "longer"),
        ("https:///nohost", "no host"),
        ("https://example.com/a b", "spaces"),
        ("https://example.com/x\r\nX-Injected: 1", "control"),
        ("https://example.com/caf\u00e9", "ASCII"),
        ("http://example.com:99999/", "valid URL"),
        ("http://127.0.0.1:8000/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),
        ("http://0x7f.0.0.1/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:a00:1]/", "private"),
        ("http://10.0.0.5/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://100.64.0.1/", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://[fe80::1]/", "link-local"),
        ("http://169.254.1.1/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
    ],
)
def test_urls_refused_at_submit(url: str, reason: str) -> None:
    with pytest.raises(WebhookRefused, match=reason):
        check_webhook_url(url, allow_private=False)


def test_public_urls_and_names_pass_at_submit() -> None:
    for url in ("https://example.com/hook?x=1", "http://8.8.8.8/", "https://[2001:4860::8888]/"):
        check_webhook_url(url, allow_private=False)


def test_allow_private_lets_private_addresses_through_but_never_metadata() -> None:
    check_webhook_url("http://127.0.0.1:9/", allow_private=True)
    check_webhook_url("http://10.1.2.3/", allow_private=True)
    for url in ("http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://224.0.0.1/"):
        with pytest.raises(WebhookRefused):
            check_webhook_url(url, allow_private=True)


def test_legacy_ipv4_spellings_are_read_as_addresses() -> None:
    for spelling in ("2130706433", "0177.0.0.1", "0x7f.0.0.1", "127.1", "0x7f000001"):
        assert str(literal_address(spelling)) == "127.0.0.1"
    assert literal_address("example.com") is None
    assert literal_address("1.2.3.4.5") is None


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.7"],
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["::ffff:169.254.169.254"],
        ["::ffff:10.0.0.1"],
        ["fd00:ec2::254"],
        ["64:ff9b::7f00:1"],  # NAT64 of 127.0.0.1
        ["93.184.216.34", "10.0.0.7"],  # one public, one private: refused
    ],
)
def test_names_resolving_to_refused_addresses_are_refused(answers: list[str]) -> None:
    asked, resolve = resolver_of(*answers)
    with pytest.raises(WebhookRefused, match="resolves to"):
        vetted_address("hooks.example.com", 443, False, resolve)
    assert asked == ["hooks.example.com"]


def test_a_public_name_yields_the_vetted_address_to_connect_to() -> None:
    _, resolve = resolver_of("93.184.216.34", "2606:2800:220:1::248")
    address = vetted_address("hooks.example.com", 443, False, resolve)
    assert str(address) == "93.184.216.34"


def test_a_name_that_does_not_resolve_is_unresolved_not_refused() -> None:
    def failing(host: str, port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    with pytest.raises(UnresolvedHost):
        vetted_address("nowhere.invalid", 80, False, failing)


def test_a_delivery_to_a_private_address_is_refused_without_connecting() -> None:
    asked, resolve = resolver_of("10.0.0.9")
    result = post(
        "http://internal.example.com/hook",
        b"{}",
        {},
        HttpLimits(allow_private=False),
        resolve,
    )
    assert asked == ["internal.example.com"]
    assert result.outcome.retry is False
    assert result.outcome.status_code is None
    assert "private" in (result.outcome.error or "")


def test_a_literal_loopback_delivery_is_refused_when_private_is_off() -> None:
    result = post("http://127.0.0.1:9/", b"{}", {}, HttpLimits(allow_private=False))
    assert result.outcome.retry is False and "loopback" in (result.outcome.error or "")


@pytest.mark.parametrize("answer", ["10.0.0.7", "::ffff:10.0.0.7", "172.20.3.4", "169.254.169.254"])
def test_a_refusal_names_the_kind_of_address_never_the_address(answer: str) -> None:
    """Before: '... resolves to 10.0.0.7, a private address' showed the owner what the
    deployment's DNS answers inside it."""
    _, resolve = resolver_of(answer)
    with pytest.raises(WebhookRefused) as refused:
        vetted_address("hooks.example.com", 443, False, resolve)
    message = str(refused.value)
    assert message.startswith("hooks.example.com resolves to a")
    assert answer not in message and "10.0" not in message and "172.20" not in message
