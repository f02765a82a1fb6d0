"""The Flask app factory."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from flask import Flask, Response

from ..shared.kinds import load_kind_plugins
from ..shared.logs import JOB_ID, OWNER, configure_logging
from ..shared.settings import Settings
from .address_limits import install_address_limits
from .auth import record_audit
from .contract import document_contract
from .durability import install_durability
from .limits_doc import document_limits
from .metrics import install_metrics
from .paging import bound_page_limits
from .present import forget_changed_job
from .problems import guard_json_body, register_problem_handlers
from .services import EXTENSION_NAME, Services
from .spec import spec


def _forget_log_context(_error: BaseException | None) -> None:
    """gthread workers reuse threads: a request must not log under the last one's job."""
    JOB_ID.set(None)
    OWNER.set(None)


def _security_headers(response: Response) -> Response:
    """Every answer, errors included: browsers must not guess a download's type (a user's
    uploaded text served as HTML would run as our origin)."""
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _flask_app(settings: Settings) -> Flask:
    app = Flask("atelier")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Flask asks ``inspect.iscoroutinefunction`` of every hook and the view on every
    # request (17 of them on a status poll, ~15 µs); the answer never changes.
    app.ensure_sync = functools.lru_cache(maxsize=512)(app.ensure_sync)  # type: ignore[method-assign]
    # Werkzeug's own bound for bodies without a Content-Length (chunked uploads).
    app.config["MAX_CONTENT_LENGTH"] = max(
        settings.max_request_bytes, settings.max_upload_bytes
    ) + (64 << 10)
    return app


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(settings)
    load_kind_plugins(settings.kind_plugins)
    app = _flask_app(settings)
    svc = Services.build(settings)
    app.extensions[EXTENSION_NAME] = svc

    # Importing the view modules attaches their routes to the blueprints.
    from .dashboard.install import install_dashboard
    from .views import (  # noqa: F401
        catalog,
        compare,
        datasets,
        events,
        exports,
        files,
        jobs,
        keys,
        removal,
        samples,
        sweeps,
        usage,
        v1,
        webhooks,
    )
    from .views.health import health

    install_address_limits(app, settings.trusted_proxy_hops)  # before the body is read
    app.before_request(guard_json_body)
    app.teardown_request(_forget_log_context)
    app.after_request(_security_headers)
    app.after_request(forget_changed_job)  # this process's own writes show on its next poll
    install_durability(app)  # before record_audit: its after_request runs after the audit's
    app.after_request(record_audit)
    install_dashboard(app)  # before v1: it adds GET /v1/system
    app.register_blueprint(v1)
    app.register_blueprint(health)
    install_metrics(app, settings, svc.redis)
    register_problem_handlers(app)
    spec.register(app)
    app.add_url_rule("/v1/openapi.json", "openapi", _built_once(settings))
    return app


def _built_once(settings: Settings) -> Callable[[], Response]:
    """The served document, built and serialised at its first request and kept for the
    process: building it takes three deep copies, too much work to do for anyone who asks."""

    @functools.cache
    def body() -> bytes:
        document = document_limits(
            document_contract(bound_page_limits(spec.spec, settings.list_page_max))
        )
        return json.dumps(document).encode()

    def openapi() -> Response:
        return Response(body(), mimetype="application/json")

    return openapi
