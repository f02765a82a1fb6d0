"""Prometheus metrics of the API. Labels take only values we own (route templates,
methods, status codes, job types and kinds, queue names)."""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Callable

import redis
from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

from ..shared.errors import NotFound, Unauthorized
from ..shared.queue_metrics import QueueDepthCollector
from ..shared.settings import Settings
from .request_local import this_request

HTTP_REQUESTS = Counter(
    "atelier_http_requests_total", "HTTP requests answered.", ["route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "atelier_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOBS_SUBMITTED = Counter(
    "atelier_jobs_submitted_total", "Jobs accepted by the API.", ["type", "kind"]
)
LONG_REQUESTS = Gauge(
    "atelier_api_long_requests",
    "Event streams and Prefer: wait requests open now.",
    multiprocess_mode="livesum",
)
EVENTS_SENT = Counter(
    "atelier_events_sent_total", "Server-sent events written to clients.", ["event"]
)


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route() -> str:
    rule = this_request().url_rule
    return rule.rule if rule is not None else "unmatched"


def _method() -> str:
    """The request's method, or ``other``: a client may send any token as its method, and
    each would be a new label set of every request series, for good."""
    method = this_request().method
    return method if method in KNOWN_METHODS else "other"


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("request_started", None)
    route, method = _route(), _method()
    _requests(route, method, response.status_code).inc()
    if started is not None:
        _latency(route, method).observe(time.perf_counter() - started)
    return response


# The label sets are bounded (routes, known methods, statuses): ``labels`` checked and
# looked each one up under a lock on every request (~5 µs of a status poll).
@functools.lru_cache(maxsize=1024)
def _requests(route: str, method: str, status: int) -> Counter:
    return HTTP_REQUESTS.labels(route, method, str(status))


@functools.lru_cache(maxsize=256)
def _latency(route: str, method: str) -> Histogram:
    return HTTP_LATENCY.labels(route, method)


def _listeners_apart(metrics_port: str) -> Callable[[], None]:
    """With a metrics listener of its own: ``/metrics`` is answered there only, and that
    listener answers nothing else. gunicorn sets ``SERVER_PORT`` from the socket the
    request came in on, not from anything the client sends."""

    def check() -> None:
        on_metrics_listener = request.environ.get("SERVER_PORT") == metrics_port
        if on_metrics_listener != (request.endpoint == "metrics"):
            raise NotFound("No such route on this listener.")

    return check


def _check_token(token: str) -> None:
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.encode(), token.encode()):
        raise Unauthorized("/metrics needs 'Authorization: Bearer <ATELIER_METRICS_TOKEN>'.")


def install_metrics(app: Flask, settings: Settings, client: redis.Redis) -> None:
    """Hooks that time every request, and the ``/metrics`` route."""
    if settings.api_metrics_bind:
        app.before_request(_listeners_apart(settings.api_metrics_bind.rpartition(":")[2]))
    app.before_request(_start_timer)
    app.after_request(_observe)
    queue_collector = QueueDepthCollector(client, settings)

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus exposition; aggregates every gunicorn worker in multiprocess mode."""
        if settings.metrics_token:
            _check_token(settings.metrics_token)
        registry: CollectorRegistry
        if settings.metrics_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                registry, path=str(settings.metrics_dir)
            )
        else:
            registry = REGISTRY
        output = generate_latest(registry) + generate_latest(_single(queue_collector))
        return Response(output, mimetype=CONTENT_TYPE_LATEST)


def _single(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
