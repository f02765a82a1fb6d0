"""A model taken away: ``GET /v1/models/{id}/export?format=keras|savedmodel``.

The first request for a format records the export as pending and sends one message to a
worker (TensorFlow runs there, never here); it and every request until the export is made
answer 202 with ``Retry-After`` and ``Location`` (this URL). Then the bundle is served as
files are: streamed from local storage, or a 302 to a presigned URL (``shared.exports``
says how concurrent and lost requests are handled). Not a SpecTree view: SpecTree would
read a served file whole into memory; ``api.contract`` documents the route."""

from __future__ import annotations

from flask import Response, jsonify, redirect, request, send_file
from pydantic import BaseModel, ConfigDict, ValidationError
from werkzeug.wrappers import Response as BaseResponse

from ...shared.errors import ExportFailed, NotFound, ValidationFailed
from ...shared.exports import ExportFormat, ExportState, ExportStore
from ...shared.kinds import KINDS
from ...shared.models import ModelRecord
from ...shared.queue import enqueue_export
from ...shared.storage import LocalObjectStore
from ...shared.storage_usage import unmetered
from ..auth import current_owner
from ..services import services
from ..spec import validation_problem
from . import v1

RETRY_AFTER_SECONDS = 2


class ExportQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: ExportFormat = ExportFormat.KERAS


@v1.get("/models/<model_id>/export")
def export_model(model_id: str) -> BaseResponse:
    """The model's export bundle (a zip), once made; 202 until then."""
    fmt = _query().format
    svc = services()
    model = svc.models.resolve(model_id, current_owner())
    if model is None:
        raise NotFound(f"No model {model_id!r}.")
    spec = KINDS.get(model.kind)
    if spec is None or not spec.exportable:
        can = ", ".join(sorted(name for name, kind in KINDS.items() if kind.exportable))
        raise ValidationFailed(
            f"{model.kind!r} models cannot be exported; {can} models can.",
            errors=[{"field": "model_id", "message": f"kind {model.kind} has no export"}],
        )
    exports = ExportStore(svc.redis)
    state, requested = exports.request(model.id, fmt)
    if requested:
        enqueue_export(svc.celery, svc.settings, model.id, fmt.value)
    if state.status == "failed":
        exports.forget(model.id, fmt)
        raise ExportFailed(
            f"The {fmt} export of {model.id} failed ({state.error}); ask again to retry."
        )
    if state.status == "pending" or state.key is None:
        return _pending(model, fmt, state)
    served = _serve(model, fmt, state.key)
    if served is None:  # recorded but gone from storage: made again on the next request
        exports.forget(model.id, fmt)
        raise NotFound(f"The {fmt} export of {model.id} is missing from storage; ask again.")
    return served


def _query() -> ExportQuery:
    """``format`` once, one of the formats (422 naming them otherwise)."""
    given = request.args.to_dict(flat=False)
    try:
        return ExportQuery.model_validate(
            {name: values[0] if len(values) == 1 else values for name, values in given.items()}
        )
    except ValidationError as exc:
        raise validation_problem(exc) from exc


def _pending(model: ModelRecord, fmt: ExportFormat, state: ExportState) -> Response:
    body = {
        "model_id": model.id,
        "format": fmt.value,
        "status": "pending",
        "requested_at": state.requested_at,
        "detail": f"The {fmt} export of {model.id} is being made; ask again shortly.",
    }
    response = jsonify(body)
    response.status_code = 202
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Location"] = request.full_path.rstrip("?")
    return response


def _serve(model: ModelRecord, fmt: ExportFormat, key: str) -> BaseResponse | None:
    store = unmetered(services().objects)
    name = f"{model.name or model.id}-{fmt.value}.zip"
    if isinstance(store, LocalObjectStore):
        path = store.path_for(key)
        if not path.is_file():
            return None
        return send_file(
            path, mimetype="application/zip", as_attachment=True, download_name=name, max_age=0
        )
    url = store.presigned_url(key, download_name=name)
    return None if url is None or not store.exists(key) else redirect(url, code=302)
