"""The SpecTree instance: one set of pydantic models validates requests *and* builds the
OpenAPI document (``/v1/openapi.json``) and the docs pages (``/v1/docs/redoc/``,
``/v1/docs/swagger/``)."""

from __future__ import annotations

from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError
from spectree import SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.plugins.werkzeug_utils import flask_response_unpack

from ..shared.errors import ValidationFailed

LISTED_ERRORS = 20


class FlaskRoutes(FlaskPlugin):  # type: ignore[misc]
    """SpecTree's Flask plugin, without its request parsing on a route that declares no
    request model: it copied every header, cookie and query argument into dicts nobody
    read (~50 µs of a ~1 ms status poll)."""

    def request_validation(
        self, request: Any, query: Any, json: Any, form: Any, headers: Any, cookies: Any
    ) -> None:
        if query is None and json is None and form is None and headers is None and cookies is None:
            request.context = Context(None, None, None, None, None)
            return
        super().request_validation(request, query, json, form, headers, cookies)

    def validate_response(
        self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool
    ) -> tuple[Any, Any]:
        """A ``ValidatedJson`` body is served as it is: validating it again meant parsing
        the JSON back into the model (a kept status poll's body, ``api.job_cache``)."""
        payload, status, headers = flask_response_unpack(resp)
        if isinstance(payload, ValidatedJson):
            made = self.get_current_app().response_class(
                payload, status=status, headers=headers, mimetype="application/json"
            )
            return made, None
        found: tuple[Any, Any] = super().validate_response(
            resp, resp_model, skip_validation, force_resp_serialize
        )
        return found


class ValidatedJson(bytes):
    """A response body already serialised from an instance of the route's declared model."""


def _raise_problem(req: Any, resp: Any, req_validation_error: Any, instance: Any, *_: Any) -> None:
    """SpecTree calls this before every view; turn its validation errors into our problem."""
    if isinstance(req_validation_error, ValidationError):
        raise validation_problem(req_validation_error)


def validation_problem(
    error: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> ValidationFailed:
    """One 422 naming each bad field (the first ``LISTED_ERRORS``: a 1 MiB body of unknown
    keys was answered with 9.6 MB), its problem and, where it has one, its allowed range."""
    found = error.errors(include_url=False)
    errors = [
        {
            "field": prefix + ".".join(str(part) for part in e["loc"]),
            "message": e["msg"] + _allowed_range(model, e["loc"]),
        }
        for e in found[:LISTED_ERRORS]
    ]
    detail = "; ".join(f"{e['field'] or '(body)'}: {e['message']}" for e in errors)
    if len(found) > LISTED_ERRORS:
        detail += f"; and {len(found) - LISTED_ERRORS} more errors"
    return ValidationFailed(detail, errors=errors)


# The docs pages load Redoc and Swagger UI from the API itself (``api/dashboard/static/
# vendor``, pinned there with their licences), never from a CDN: spectree's own pages fetch
# them from unpkg.com and are blank wherever the internet is out of reach. Both read the
# served document (``/v1/openapi.json``: the per-kind params and limits included).
# ``str.format`` templates (spectree fills them): literal braces are doubled.
DOC_PAGES = {
    "redoc": """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Atelier API · Redoc</title>
</head>
<body>
  <redoc spec-url="/v1/openapi.json"></redoc>
  <script src="/assets/vendor/redoc/redoc.standalone.js"></script>
</body>
</html>""",
    "swagger": """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Atelier API · Swagger UI</title>
  <link rel="stylesheet" href="/assets/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-spec-url="/v1/openapi.json"></div>
  <script src="/assets/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="/assets/swagger-init.js"></script>
</body>
</html>""",
}

spec = SpecTree(
    "flask",
    backend=FlaskRoutes,
    title="Atelier API",
    version="v1",
    description=(
        "Durable generative-AI jobs: train a model, generate from it, watch progress, "
        "download outputs. Every error is `application/problem+json`."
    ),
    # SpecTree leaves routes under its own path out of the document, so the pages live
    # below /v1/docs and /v1/openapi.json is served by the app factory.
    path="v1/docs",
    validation_error_status=422,
    before=_raise_problem,
    annotations=True,
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")
        )
    ],
    security={"bearer": []},
    page_templates=DOC_PAGES,
    # Only the routes SpecTree validates; ``api.contract`` describes the few others (probes,
    # files, documents). The dashboard's HTML pages are not part of the JSON API.
    mode="strict",
)


def _allowed_range(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> str:
    """`` (allowed: 1 <= steps <= 1000000)`` for a constrained number field, else ``""``."""
    if model is None or len(loc) != 1 or loc[0] not in model.model_fields:
        return ""
    name = str(loc[0])
    lower = upper = ""
    for bound in model.model_fields[name].metadata:
        if isinstance(bound, annotated_types.Ge):
            lower = f"{bound.ge} <= "
        elif isinstance(bound, annotated_types.Gt):
            lower = f"{bound.gt} < "
        elif isinstance(bound, annotated_types.Le):
            upper = f" <= {bound.le}"
        elif isinstance(bound, annotated_types.Lt):
            upper = f" < {bound.lt}"
    return f" (allowed: {lower}{name}{upper})" if lower or upper else ""
