"""Limits before authentication (api.address_limits), the open routes' costs, trusted
proxies, and what answers may be kept by caches. The app in this process against the real
redis-server (the budgets are Redis's)."""

from __future__ import annotations

from typing import Any

import pytest

from atelier.api.dashboard.blueprint import SIGN_IN_COOKIE
from atelier.api.dashboard.sessions import COOKIE_NAME, CSRF_FIELD
from atelier.shared.auth import SCOPES, ApiKeyStore
from tests.conftest import InProcessApi


def test_made_up_keys_run_into_the_address_budget_and_a_real_key_does_not(
    make_api: Any,
) -> None:
    """Before: 400 made-up keys got 400 x 401 and no 429."""
    api = make_api(anonymous_per_minute=60, anonymous_burst=20)
    statuses = [
        api.http.get(
            api.url("/v1/jobs"), headers={"Authorization": f"Bearer ak_made-up-{n}"}
        ).status_code
        for n in range(60)
    ]
    assert statuses[:20] == [401] * 20
    assert set(statuses[20:]) == {429}
    refused = api.http.get(api.url("/v1/jobs"), headers={"Authorization": "Bearer ak_x"})
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["policy"] == "anonymous"
    # Same address, a valid key: its owner's budget, untouched by the flood.
    key = api.raw_key("alice")
    ok = api.http.get(api.url("/v1/jobs"), headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200 and ok.headers["RateLimit-Policy"].startswith('"reads";')


def test_bad_cookies_and_sign_in_spend_the_address_budget(make_api: Any) -> None:
    api = make_api(anonymous_per_minute=60, anonymous_burst=10)
    browser = api.app.test_client()
    browser.set_cookie(COOKIE_NAME, "not-a-session")
    assert [browser.get("/v1/jobs").status_code for _ in range(3)] == [401] * 3
    assert [browser.get("/models").status_code for _ in range(3)] == [302] * 3
    browser.delete_cookie(COOKIE_NAME)
    browser.set_cookie(SIGN_IN_COOKIE, "t")
    form = {"api_key": "ak_guess", CSRF_FIELD: "t"}
    tries = [browser.post("/sign-in", data=form).status_code for _ in range(6)]
    assert tries[:4] == [401] * 4 and tries[4:] == [429, 429]


def test_each_address_has_its_own_budget_and_ipv6_counts_by_64(make_api: Any) -> None:
    api = make_api(anonymous_per_minute=60, anonymous_burst=3)
    client = api.app.test_client()

    def readyz(address: str) -> int:
        answer = client.get("/readyz", environ_base={"REMOTE_ADDR": address})
        return int(answer.status_code)

    assert [readyz("192.0.2.1") for _ in range(4)] == [200, 200, 200, 429]
    assert readyz("192.0.2.2") == 200
    # One host holds a whole /64: new addresses in it share the budget.
    assert [readyz(f"2001:db8::{n}") for n in range(1, 5)] == [200, 200, 200, 429]
    assert readyz("2001:db8:0:1::1") == 200
    assert readyz("::ffff:192.0.2.1") == 429  # IPv4-mapped: the IPv4 address's budget


def test_forwarded_for_is_believed_only_from_trusted_proxies(make_api: Any) -> None:
    def statuses(api: InProcessApi) -> list[int]:
        return [
            api.http.get(
                api.url("/readyz"), headers={"X-Forwarded-For": f"198.51.100.{n}"}
            ).status_code
            for n in range(4)
        ]

    # No trusted proxy: the header is the client's to choose, so it is ignored.
    assert statuses(make_api(anonymous_per_minute=60, anonymous_burst=3)) == [200, 200, 200, 429]
    # One trusted hop: each forwarded address is a client of its own.
    trusting = make_api(anonymous_per_minute=60, anonymous_burst=3, trusted_proxy_hops=1)
    assert statuses(trusting) == [200] * 4


def test_behind_a_trusted_tls_proxy_cookies_are_secure_and_hsts_is_sent(make_api: Any) -> None:
    """Before: no proxy header was trusted, so the session cookie was never Secure."""
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    trusting = make_api(trusted_proxy_hops=1)
    page = trusting.http.get(trusting.url("/sign-in"), headers=https)
    assert "Secure" in page.headers["Set-Cookie"]
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    plain = make_api()
    page = plain.http.get(plain.url("/sign-in"), headers=https)
    assert "Secure" not in page.headers["Set-Cookie"]
    assert "Strict-Transport-Security" not in page.headers


def test_readyz_probes_its_dependencies_at_most_once_a_moment(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: each /readyz made a Redis PING and an S3 HeadBucket."""
    from atelier.api.services import EXTENSION_NAME

    svc = inprocess_api.app.extensions[EXTENSION_NAME]
    pings: list[int] = []
    real_ping = svc.redis.ping

    def counted_ping() -> Any:
        pings.append(1)
        return real_ping()

    monkeypatch.setattr(svc.redis, "ping", counted_ping)
    answers = [inprocess_api.http.get(inprocess_api.url("/readyz")) for _ in range(30)]
    assert {a.status_code for a in answers} == {200}
    assert len(pings) == 1


def test_the_openapi_document_is_built_once(
    inprocess_api: InProcessApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    import atelier.api.app as app_module
    from atelier.api.contract import document_contract

    first = inprocess_api.http.get(inprocess_api.url("/v1/openapi.json")).content
    built: list[int] = []

    def counted(document: dict[str, Any]) -> dict[str, Any]:
        built.append(1)
        return document_contract(document)

    monkeypatch.setattr(app_module, "document_contract", counted)
    again = [inprocess_api.http.get(inprocess_api.url("/v1/openapi.json")) for _ in range(5)]
    assert built == [] and all(a.content == first for a in again)


def test_signed_in_dashboard_pages_spend_the_owners_reads(make_api: Any) -> None:
    """Before: dashboard pages were not budgeted; ``/?status=`` scans up to 5,000 records."""
    from atelier.api.dashboard.sessions import SessionStore

    api = make_api(reads_per_minute=60, reads_burst=3)
    session_id, _ = SessionStore(api.redis, 600).create(api.raw_key("alice"))
    browser = api.app.test_client()
    browser.set_cookie(COOKIE_NAME, session_id)
    pages = [browser.get("/?status=queued").status_code for _ in range(4)]
    assert pages == [200, 200, 200, 429]


def test_answers_carrying_secrets_are_never_stored(inprocess_api: InProcessApi) -> None:
    """Before: POST /v1/keys answered the new key with no Cache-Control."""
    key = ApiKeyStore(inprocess_api.redis).create("alice", scopes=SCOPES)
    headers = {"Authorization": f"Bearer {key}"}
    answers = [
        inprocess_api.http.post(
            inprocess_api.url("/v1/keys"), json={"name": "ci"}, headers=headers
        ),
        inprocess_api.http.get(inprocess_api.url("/v1/webhooks/secret"), headers=headers),
        inprocess_api.http.post(inprocess_api.url("/v1/webhooks/secret/rotate"), headers=headers),
        inprocess_api.http.get(inprocess_api.url("/v1/jobs"), headers=headers),
    ]
    for answer in answers:
        assert answer.ok, answer.text
        assert answer.headers["Cache-Control"] == "no-store", answer.request.url


def test_a_metrics_token_guards_metrics(make_api: Any) -> None:
    api = make_api(metrics_token="s3cret-token")
    assert api.http.get(api.url("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert api.http.get(api.url("/metrics"), headers=wrong).status_code == 401
    right = {"Authorization": "Bearer s3cret-token"}
    assert api.http.get(api.url("/metrics"), headers=right).status_code == 200


def test_a_metrics_bind_must_be_host_and_port() -> None:
    from atelier.shared.settings import Settings

    with pytest.raises(ValueError, match="host:port"):
        Settings(api_metrics_bind="9100")
    assert Settings(api_metrics_bind="0.0.0.0:9100").api_metrics_bind == "0.0.0.0:9100"
