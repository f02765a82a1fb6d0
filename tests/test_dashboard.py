"""The dashboard's sign-in, sessions and CSRF (fast tier: the app in this process, real
Redis, no worker). The browser tests are in tests/test_dashboard_browser.py."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from flask import render_template
from flask.testing import FlaskClient

from atelier.api.dashboard import pages
from atelier.api.dashboard.sessions import COOKIE_NAME, SessionStore
from atelier.api.schemas import OutputOut
from atelier.api.services import EXTENSION_NAME, Services
from atelier.shared.audit import AuditLog
from atelier.shared.jobs import JobType
from tests.conftest import InProcessApi

FORM = "multipart/form-data"
"""How the dashboard's forms post (the app's JSON guard leaves multipart to the form parser)."""
SIGN_IN_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def _sign_in(client: FlaskClient, key: str, follow: bool = False) -> object:
    form = client.get("/sign-in").get_data(as_text=True)
    found = SIGN_IN_TOKEN.search(form)
    assert found is not None
    return client.post(
        "/sign-in",
        data={"api_key": key, "csrf_token": found.group(1)},
        content_type=FORM,
        follow_redirects=follow,
    )


@pytest.fixture()
def browser(inprocess_api: InProcessApi) -> FlaskClient:
    """A test client signed in as alice (it keeps cookies like a browser)."""
    client = inprocess_api.app.test_client()
    answer = _sign_in(client, inprocess_api.raw_key("alice"))
    assert answer.status_code == 302  # type: ignore[attr-defined]
    return client


def services_of(api: InProcessApi) -> Services:
    found: Services = api.app.extensions[EXTENSION_NAME]
    return found


def services_of_client(client: FlaskClient) -> Services:
    found: Services = client.application.extensions[EXTENSION_NAME]
    return found


def _csrf(client: FlaskClient) -> str:
    page = client.get("/").get_data(as_text=True)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found is not None and found.group(1)
    return found.group(1)


def test_pages_without_a_session_redirect_to_sign_in(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.app.test_client()
    for path in ("/", "/jobs/job_x", "/models", "/datasets", "/system"):
        answer = client.get(path)
        assert answer.status_code == 302, path
        assert answer.headers["Location"].startswith("/sign-in?next="), path


def test_session_cookie_flags(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.app.test_client()
    answer = _sign_in(client, inprocess_api.raw_key())
    cookie = next(
        c
        for c in answer.headers.getlist("Set-Cookie")  # type: ignore[attr-defined]
        if c.startswith(COOKIE_NAME + "=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert "secure" not in flags  # plain http here; over https the flag is set
    assert any(f.startswith("max-age=") for f in flags)
    https = inprocess_api.app.test_client()
    form = https.get("/sign-in", base_url="https://atelier.test").get_data(as_text=True)
    token = SIGN_IN_TOKEN.search(form)
    assert token is not None
    secure = https.post(
        "/sign-in",
        base_url="https://atelier.test",
        data={"api_key": inprocess_api.raw_key(), "csrf_token": token.group(1)},
        content_type=FORM,
    )
    assert any(
        "secure" in {p.strip().lower() for p in c.split(";")}
        for c in secure.headers.getlist("Set-Cookie")
    )


def test_sign_in_never_reflects_the_key(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.app.test_client()
    wrong = "atl_" + "x" * 40 + "<script>"
    answer = _sign_in(client, wrong)
    page = answer.get_data(as_text=True)  # type: ignore[attr-defined]
    assert answer.status_code == 401  # type: ignore[attr-defined]
    assert "not valid" in page and "x" * 40 not in page and "<script>" not in page
    good = inprocess_api.raw_key()
    assert good not in _sign_in(client, good, follow=True).get_data(as_text=True)  # type: ignore[attr-defined]


def test_sign_in_form_needs_its_own_token(inprocess_api: InProcessApi) -> None:
    """Login CSRF: another site cannot sign a browser in under its own key."""
    client = inprocess_api.app.test_client()
    answer = client.post("/sign-in", data={"api_key": inprocess_api.raw_key()}, content_type=FORM)
    assert answer.status_code == 401
    assert client.get_cookie(COOKIE_NAME) is None


def test_session_expires(inprocess_api: InProcessApi) -> None:
    store = SessionStore(inprocess_api.redis, ttl_seconds=1)
    session_id, _ = store.create(inprocess_api.raw_key())
    assert store.get(session_id) is not None
    time.sleep(1.2)
    assert store.get(session_id) is None
    client = inprocess_api.app.test_client()
    client.set_cookie(COOKIE_NAME, session_id)
    assert client.get("/").status_code == 302
    assert client.get("/v1/jobs").status_code == 401


def test_sign_out_ends_the_session_server_side(browser: FlaskClient) -> None:
    session_id = browser.get_cookie(COOKIE_NAME)
    assert session_id is not None
    answer = browser.post("/sign-out", data={"csrf_token": _csrf(browser)}, content_type=FORM)
    assert answer.status_code == 302 and answer.headers["Location"] == "/sign-in"
    # The old cookie, replayed, is worthless: the record is gone from Redis.
    browser.set_cookie(COOKIE_NAME, session_id.value)
    assert browser.get("/").status_code == 302
    assert browser.get("/v1/jobs").status_code == 401


def test_a_revoked_key_ends_its_sessions(inprocess_api: InProcessApi) -> None:
    # The app's own store: revoking there also drops the process's cached copy of the key.
    keys = services_of(inprocess_api).api_keys
    key = keys.create("alice", name="dash")
    client = inprocess_api.app.test_client()
    _sign_in(client, key)
    assert client.get("/v1/jobs").status_code == 200
    key_id = keys.lookup_info("alice", key).id
    keys.revoke("alice", key_id)
    assert client.get("/v1/jobs").status_code == 401
    assert client.get("/").status_code == 302


def test_form_posts_need_the_csrf_token(browser: FlaskClient) -> None:
    token = _csrf(browser)
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token[:-1]}):
        assert browser.post("/sign-out", data=data, content_type=FORM).status_code == 403
        assert browser.post("/jobs/job_x/cancel", data=data, content_type=FORM).status_code == 403
    assert browser.get("/").status_code == 200  # still signed in


def test_cookie_auth_on_v1(browser: FlaskClient) -> None:
    token = _csrf(browser)
    assert browser.get("/v1/jobs").status_code == 200
    assert browser.get("/v1/system").status_code == 200
    body = {"type": "generate", "kind": "dcgan", "params": {"model_id": "mdl_x"}}
    refused = browser.post("/v1/jobs", json=body)
    assert refused.status_code == 403
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.get_json()["type"].endswith(":csrf-failed")
    wrong = browser.post("/v1/jobs", json=body, headers={"X-CSRF-Token": "x" + token})
    assert wrong.status_code == 403
    # With the header, the request reaches the route (an unknown model: 422).
    assert browser.post("/v1/jobs", json=body, headers={"X-CSRF-Token": token}).status_code == 422


def test_bearer_auth_unchanged_beside_a_cookie(inprocess_api: InProcessApi) -> None:
    """A bearer key wins over any cookie, and needs no CSRF token (no browser sends it)."""
    client = inprocess_api.app.test_client()
    client.set_cookie(COOKIE_NAME, "not-a-session")
    bob = {"Authorization": f"Bearer {inprocess_api.raw_key('bob')}"}
    assert client.get("/v1/jobs", headers=bob).status_code == 200
    body = {"type": "generate", "kind": "dcgan", "params": {"model_id": "mdl_x"}}
    assert client.post("/v1/jobs", json=body, headers=bob).status_code == 422
    assert client.get("/v1/jobs").status_code == 401


def test_pages_render_with_security_headers(browser: FlaskClient) -> None:
    for path in ("/", "/models", "/datasets", "/system"):
        answer = browser.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in answer.get_data(as_text=True)  # no inline script


def test_docs_pages_load_local_assets(inprocess_api: InProcessApi) -> None:
    client = inprocess_api.app.test_client()
    paths = client.get("/v1/openapi.json").get_json()["paths"]
    assert "/v1/system" in paths  # a JSON route; the HTML pages are not in the document
    assert not {"/", "/sign-in", "/sign-out", "/system", "/assets/{filename}"} & set(paths)
    for page, asset in (
        ("/v1/docs/redoc/", "/assets/vendor/redoc/redoc.standalone.js"),
        ("/v1/docs/swagger/", "/assets/vendor/swagger-ui/swagger-ui-bundle.js"),
    ):
        html = client.get(page).get_data(as_text=True)
        assert asset in html and "unpkg.com" not in html and "cdn" not in html
        served = client.get(asset)
        assert served.status_code == 200 and len(served.get_data()) > 100_000
        served.close()


def test_what_users_wrote_is_escaped(browser: FlaskClient, tmp_path: Path) -> None:
    """A dataset title and excerpt are the user's text: shown, never run."""
    hostile = '<img src=x onerror="alert(1)">'
    corpus = (hostile + " and more text. ") * 20
    answer = browser.post(
        "/v1/datasets",
        data={"title": hostile, "file": (io.BytesIO(corpus.encode()), "c.txt")},
        content_type=FORM,
        headers={"X-CSRF-Token": _csrf(browser)},
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    page = browser.get("/datasets").get_data(as_text=True)
    assert hostile not in page and "&lt;img src=x onerror=" in page


def test_jobs_page_filters_and_pages(browser: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _csrf(browser)
    for _ in range(3):
        body = {"type": "train", "kind": "dcgan", "params": {"steps": 10}}
        assert (
            browser.post("/v1/jobs", json=body, headers={"X-CSRF-Token": token}).status_code == 202
        )
    assert browser.get("/").get_data(as_text=True).count('<tr data-job="') == 3
    assert browser.get("/?status=running").get_data(as_text=True).count('<tr data-job="') == 0
    assert (
        browser.get("/?type=train&kind=dcgan").get_data(as_text=True).count('<tr data-job="') == 3
    )
    monkeypatch.setattr(pages, "PAGE_JOBS", 2)
    first = browser.get("/?type=train").get_data(as_text=True)
    assert first.count('<tr data-job="') == 2
    found = re.search(r'<a href="(/\?[^"]+)">Older jobs</a>', first)
    assert found is not None and "type=train" in found.group(1)
    older = browser.get(found.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert older.count('<tr data-job="') == 1 and "Older jobs" not in older


def test_system_shows_running_jobs_without_other_owners_ids(
    browser: FlaskClient, inprocess_api: InProcessApi
) -> None:
    jobs = services_of(inprocess_api).jobs
    mine = jobs.create("alice", JobType.TRAIN, "dcgan", {"steps": 10})
    theirs = jobs.create("bob", JobType.GENERATE, "dcgan", {})
    for job in (mine, theirs):
        assert jobs.claim(job.id, "gpu-node-1:4242", lease_seconds=30) is not None
    system = browser.get("/v1/system").get_json()
    assert {q["type"]: q["running"] for q in system["queues"]} == {"train": 1, "generate": 1}
    running = {r["type"]: r for r in system["running"]}
    assert running["train"]["job_id"] == mine.id
    assert running["generate"]["job_id"] is None  # bob's: kind and progress only
    assert running["generate"]["worker"] == "gpu-node-1:4242"
    assert 0 < running["train"]["lease_seconds_left"] <= 30
    page = browser.get("/system").get_data(as_text=True)
    assert mine.id in page and theirs.id not in page and "another owner&#39;s job" in page


@pytest.mark.parametrize(
    ("name", "content_type", "text", "shown"),
    [
        ("grid.png", "image/png", None, "<img src="),
        ("tune.wav", "audio/wav", None, "<audio controls"),
        ("tune.mid", "audio/midi", None, None),  # browsers do not play MIDI: a link only
        ("tune.abc", "text/plain; charset=utf-8", "X:1\n<b>K:G</b>", "<pre>X:1\n&lt;b&gt;K:G"),
    ],
)
def test_outputs_render_by_content_type(
    inprocess_api: InProcessApi, name: str, content_type: str, text: str | None, shown: str | None
) -> None:
    """Any kind's outputs (a future melody's .abc, .mid, .wav) show by content type alone."""
    output = OutputOut(
        name=name, content_type=content_type, size_bytes=10, url=f"/v1/files/x/{name}", text=text
    )
    with inprocess_api.app.test_request_context("/"):
        html = render_template("output_item.html", o=output)
    assert f'<a href="/v1/files/x/{name}" download>{name}</a>' in html
    if shown is None:
        assert "<img" not in html and "<audio" not in html and "<pre" not in html
    else:
        assert shown in html


def test_cancel_form_cancels_and_is_audited(browser: FlaskClient) -> None:
    token = _csrf(browser)
    body = {"type": "train", "kind": "dcgan", "params": {"steps": 10}}
    job_id = browser.post("/v1/jobs", json=body, headers={"X-CSRF-Token": token}).get_json()["id"]
    answer = browser.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token}, content_type=FORM)
    assert answer.status_code == 302 and answer.headers["Location"] == f"/jobs/{job_id}"
    assert browser.get(f"/v1/jobs/{job_id}").get_json()["status"] == "canceled"
    audit = AuditLog(services_of_client(browser).redis).read("alice")
    cancel = next(e for e in audit if e["action"] == "job.cancel")
    assert cancel["job_id"] == job_id and cancel["actor"] and cancel["actor"] != "cli"
    # Again, now that it is over: nothing to do, back to its page.
    again = browser.post(f"/jobs/{job_id}/cancel", data={"csrf_token": token}, content_type=FORM)
    assert again.status_code == 302


def test_the_dashboard_keeps_to_the_keys_scopes(inprocess_api: InProcessApi) -> None:
    keys = services_of(inprocess_api).api_keys
    client = inprocess_api.app.test_client()
    no_read = _sign_in(client, keys.create("alice", name="up", scopes=["upload"]))
    assert no_read.status_code == 401  # type: ignore[attr-defined]
    assert "needs &#39;read&#39;" in no_read.get_data(as_text=True)  # type: ignore[attr-defined]
    assert client.get_cookie(COOKIE_NAME) is None
    reader = inprocess_api.app.test_client()
    _sign_in(reader, keys.create("alice", name="ro", scopes=["read"]))
    assert reader.get("/").status_code == 200
    refused = reader.post(
        "/jobs/job_x/cancel", data={"csrf_token": _csrf(reader)}, content_type=FORM
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    "target",
    [
        "/%09/evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "//evil.example",
        "/\\evil.example",
        "https://evil.example/",
        "/\x7f/evil.example",
    ],
)
def test_sign_in_never_sends_the_browser_to_another_site(
    inprocess_api: InProcessApi, target: str
) -> None:
    """``next`` after sign-in is a local path: a tab, newline or backslash that a browser
    or Werkzeug would drop or turn into a slash (``/\\t/evil`` → ``//evil``) is refused."""
    client = inprocess_api.app.test_client()
    form = client.get("/sign-in").get_data(as_text=True)
    found = SIGN_IN_TOKEN.search(form)
    assert found is not None
    answer = client.post(
        "/sign-in?next=" + target.replace("\t", "%09").replace("\n", "%0A"),
        data={"api_key": inprocess_api.raw_key(), "csrf_token": found.group(1)},
        content_type=FORM,
    )
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith("/") and not location.startswith("//"), location
    assert "evil" not in location, location


def test_sign_in_takes_a_plain_html_form_and_only_a_small_one(
    inprocess_api: InProcessApi,
) -> None:
    """Before: a form-urlencoded sign-in (what a browser sends by default) was answered 400
    'Send the body as JSON', and a multipart sign-in could be 64 MiB spooled to disk."""
    client = inprocess_api.app.test_client()
    found = SIGN_IN_TOKEN.search(client.get("/sign-in").get_data(as_text=True))
    assert found is not None
    form = {"api_key": inprocess_api.raw_key("alice"), "csrf_token": found.group(1)}
    answer = client.post("/sign-in", data=form, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 302 and COOKIE_NAME in answer.headers["Set-Cookie"]
    padded = {**form, "padding": "x" * (64 << 10)}
    too_big = client.post("/sign-in", data=padded, content_type=FORM)
    assert too_big.status_code == 413
    assert too_big.headers["Content-Type"] == "application/problem+json"
    odd = client.post("/sign-in", data=b"api_key=x", content_type="text/plain")
    assert odd.status_code == 400 and "x-www-form-urlencoded" in odd.get_json()["detail"]
