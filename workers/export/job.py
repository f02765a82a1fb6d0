"""Making one model's export in one format: what ``Worker.export`` runs for an
``export_model`` message (``shared.exports`` says how requests and messages meet)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ...shared.errors import AtelierError
from ...shared.exports import ExportFormat, ExportState, ExportStore
from ...shared.models import ModelStore
from ...shared.storage import ObjectLayout, ObjectStore
from ..kinds.base import ModelKind
from ..metrics import EXPORTS
from .bundle import export_bundle, float32_policy

log = logging.getLogger(__name__)


def make_export(
    models: ModelStore,
    exports: ExportStore,
    objects: ObjectStore,
    kind: Callable[[str], ModelKind],
    model_id: str,
    fmt: ExportFormat,
) -> ExportState | None:
    """Build, store and record the export, once: a message for an export already made
    (sent twice after a stale pending one), or for a model deleted since, does nothing.
    A failure is recorded with its reason (the next request retries). Returns the state
    recorded, or None when nothing was."""
    state = exports.get(model_id, fmt)
    model = models.get(model_id)
    if state is None or state.status != "pending" or model is None:
        log.info("export %s %s: nothing to do (%s)", model_id, fmt, state and state.status)
        return None
    started = time.perf_counter()
    key = ObjectLayout.model_export(model.owner, model.id, fmt.value)
    try:
        with float32_policy():
            exportable = kind(model.kind).exportable(model, objects.get_bytes(model.weights_key))
            data = export_bundle(model, exportable, fmt, models.version_of(model))
        size = objects.put_bytes(key, data, "application/zip")
    except Exception as exc:
        log.exception("export %s %s failed", model_id, fmt)
        reason = str(exc) if isinstance(exc, AtelierError) else type(exc).__name__
        failed = state.model_copy(update={"status": "failed", "error": reason})
        EXPORTS.labels(model.kind, fmt.value, "failed").inc()
        return failed if exports.finish(model_id, fmt, failed) else None
    seconds = round(time.perf_counter() - started, 3)
    ready = state.model_copy(
        update={"status": "ready", "key": key, "size_bytes": size, "seconds": seconds}
    )
    if not exports.finish(model_id, fmt, ready):
        objects.delete(key)  # the model was deleted while its export was made
        EXPORTS.labels(model.kind, fmt.value, "discarded").inc()
        log.info("export %s %s: the model is gone; export deleted", model_id, fmt)
        return None
    EXPORTS.labels(model.kind, fmt.value, "ready").inc()
    log.info("export %s %s: %d bytes in %.2f s", model_id, fmt, size, seconds)
    return ready
