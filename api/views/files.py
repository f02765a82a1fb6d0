"""Downloads from the local object store, for the caller's own objects only."""

from __future__ import annotations

import mimetypes
from pathlib import PurePosixPath

from flask import redirect, send_file
from werkzeug.wrappers import Response as BaseResponse

from ...shared.errors import NotFound
from ...shared.storage import LocalObjectStore, ObjectLayout
from ...shared.storage_usage import unmetered
from ..auth import current_owner
from ..services import services
from . import v1


@v1.get("/files/<path:key>")
def download_file(key: str) -> BaseResponse:
    """An object the caller owns (local storage; S3 deployments hand out presigned URLs)."""
    store = unmetered(services().objects)
    parts = PurePosixPath(key).parts
    # "owners/me/../you/…" starts with my prefix but is not mine: refuse any dot segment.
    # A folder ("…/jobs/") is no object, though some S3 servers (SeaweedFS) answer it 200.
    if (
        not key.startswith(ObjectLayout.owner_prefix(current_owner()))
        or key.endswith("/")
        or any(part in {"..", "."} for part in parts)
    ):
        raise NotFound(f"No object {key!r}.")
    if isinstance(store, LocalObjectStore):
        path = store.path_for(key)
        if not path.is_file():
            raise NotFound(f"No object {key!r}.")
        return send_file(path, mimetype=mimetypes.guess_type(key)[0], max_age=0)
    # Object storage: a short-lived presigned URL, never the object through API memory.
    url = store.presigned_url(key)
    if url is None or not store.exists(key):
        raise NotFound(f"No object {key!r}.")
    return redirect(url, code=302)
