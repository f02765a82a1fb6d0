"""Datasets: the built-ins and the caller's uploads."""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import numpy as np
from flask import request
from spectree import Response

from ...shared.datasets import DatasetInfo
from ...shared.errors import Conflict, InvalidUpload, NotFound, PayloadTooLarge
from ...shared.images import encode_png, grid
from ...shared.jobs import new_id
from ...shared.limits import limits_for
from ...shared.storage import ObjectLayout
from ..auth import current_owner
from ..ingest import Normalised, excerpt, normalise_upload
from ..present import download_url
from ..schemas import DatasetForm, DatasetList, DatasetOut, optional_timestamp, problems
from ..services import Services, services
from ..spec import spec
from . import v1

PREVIEW_IMAGES = 64
log = logging.getLogger(__name__)


def present_dataset(dataset: DatasetInfo) -> DatasetOut:
    return DatasetOut(
        **dataset.model_dump(include=set(DatasetOut.model_fields) - {"preview_url", "created_at"}),
        preview_url=download_url(dataset.preview_key) if dataset.preview_key else None,
        created_at=optional_timestamp(dataset.created_at),
    )


def owned_dataset(name: str) -> DatasetInfo:
    dataset = services().datasets.get_for_owner(name, current_owner())
    if dataset is None:
        raise NotFound(f"No dataset {name!r}.")
    return dataset


@v1.get("/datasets")
@spec.validate(resp=Response(HTTP_200=DatasetList), tags=["datasets"])
def list_datasets() -> DatasetList:
    """Datasets a training job can name: the built-ins, then the caller's uploads."""
    datasets = services().datasets.list_for_owner(current_owner())
    return DatasetList(data=[present_dataset(d) for d in datasets])


@v1.get("/datasets/<name>")
@spec.validate(resp=Response(HTTP_200=DatasetOut), tags=["datasets"])
def get_dataset(name: str) -> DatasetOut:
    """One dataset: modality, counts, size, preview grid or text excerpt."""
    return present_dataset(owned_dataset(name))


@v1.post("/datasets")
@spec.validate(
    form=DatasetForm, resp=Response(HTTP_201=DatasetOut, **problems(422, 503)), tags=["datasets"]
)
def upload_dataset(form: DatasetForm) -> tuple[DatasetOut, int]:
    """Upload images (.zip or .npz; labelled by a folder per class or a `labels` array), a
    text corpus (.txt) or ABC tunes (.abc or .zip of them); checked before it is stored."""
    svc = services()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise InvalidUpload("Send the dataset as a multipart part named 'file'.")
    with svc.uploads.slot():  # a 503 before the file is read (``api.upload_gate``)
        data = upload.stream.read(svc.settings.max_upload_bytes + 1)
        if len(data) > svc.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"The upload is larger than the {svc.settings.max_upload_bytes}-byte limit."
            )
        normalised = normalise_upload(
            upload.filename, data, form.image_size, form.channels, svc.uploads, svc.settings
        )
        del data  # the normalised copy is what is stored; the upload's bytes can go
        dataset = _store(svc, current_owner(), form, upload.filename, normalised)
    return present_dataset(dataset), 201


def _store(
    svc: Services, owner: str, form: DatasetForm, filename: str, normalised: Normalised
) -> DatasetInfo:
    """Objects first, record last: a failure part-way leaves no dataset, no object and no
    bytes counted behind. The quotas (datasets, stored bytes) are checked and the space
    reserved before anything is stored (403 ``quota-exceeded``)."""
    dataset_id = new_id("ds")
    objects = _encoded(owner, dataset_id, normalised)
    sizes = {key: len(data) for key, (data, _) in objects.items()}
    with svc.quotas.admitting_dataset(owner, dataset_id, sizes, limits_for(svc.settings, owner)):
        try:
            for key, (data, content_type) in objects.items():
                svc.objects.put_bytes(key, data, content_type)
            record = _record(owner, dataset_id, form, filename, normalised, objects)
            return svc.datasets.save(record)
        except Exception:
            _delete_objects(svc, list(objects))
            raise


def _encoded(owner: str, dataset_id: str, normalised: Normalised) -> dict[str, tuple[bytes, str]]:
    """Object key -> (bytes, content type): the data first, then any preview."""
    if normalised.modality == "music":
        key = ObjectLayout.dataset_object(owner, dataset_id, "tunes.abc")
        return {key: ((normalised.text or "").encode(), "text/vnd.abc; charset=utf-8")}
    if normalised.images is None:
        key = ObjectLayout.dataset_object(owner, dataset_id, "corpus.txt")
        return {key: ((normalised.text or "").encode(), "text/plain; charset=utf-8")}
    return {
        ObjectLayout.dataset_object(owner, dataset_id, "images.npz"): (
            _npz(normalised),
            "application/zip",
        ),
        ObjectLayout.dataset_object(owner, dataset_id, "preview.png"): (
            _preview(normalised.images),
            "image/png",
        ),
    }


def _record(
    owner: str,
    dataset_id: str,
    form: DatasetForm,
    filename: str,
    normalised: Normalised,
    objects: dict[str, tuple[bytes, str]],
) -> DatasetInfo:
    data_key, *preview = objects
    images, classes = normalised.images, normalised.classes
    return DatasetInfo(
        name=dataset_id,
        title=form.title or filename,
        owner=owner,
        builtin=False,
        description=f"Uploaded as {filename}",
        modality=normalised.modality,
        image_size=int(images.shape[1]) if images is not None else None,
        channels=int(images.shape[3]) if images is not None else None,
        count=normalised.count,
        classes=len(classes.names) if classes else 0,
        class_names=list(classes.names) if classes else [],
        class_counts=classes.counts if classes else [],
        size_bytes=len(objects[data_key][0]),
        data_key=data_key,
        preview_key=preview[0] if preview else None,
        excerpt=excerpt(normalised.text) if normalised.text is not None else None,
        created_at=time.time(),
    )


def _delete_objects(svc: Services, keys: list[str]) -> None:
    """Best effort: what is left behind stays counted, and is logged."""
    for key in keys:
        try:
            svc.objects.delete(key)
        except Exception:
            log.warning("could not delete %s", key, exc_info=True)


@v1.delete("/datasets/<name>")
@spec.validate(resp=Response(HTTP_204=None, **problems(409)), tags=["datasets"])
def delete_dataset(name: str) -> tuple[str, int]:
    """Delete an upload and its objects; 409 while a queued or running job still reads it."""
    svc = services()
    dataset = owned_dataset(name)
    if dataset.builtin:
        raise Conflict(f"{name!r} is built in and cannot be deleted.")
    busy = [
        job.id
        for job in svc.jobs.get_many(svc.datasets.users(name))
        if not job.status.is_terminal()
    ]
    if busy:
        raise Conflict(
            f"Dataset {name!r} is used by unfinished jobs {busy}; cancel them "
            "or wait for them to finish.",
            jobs=busy,
        )
    svc.datasets.delete(dataset)
    _delete_objects(svc, [key for key in (dataset.data_key, dataset.preview_key) if key])
    return "", 204


def _npz(normalised: Normalised) -> bytes:
    """``images``, and for a labelled upload each one's class (``labels``, int32) and the
    classes' names (``class_names``): all a training job reads."""
    arrays: dict[str, Any] = {"images": normalised.images}
    if normalised.classes is not None:
        arrays["labels"] = normalised.classes.labels
        arrays["class_names"] = np.array(normalised.classes.names, dtype=str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def _preview(images: np.ndarray) -> bytes:
    return encode_png(grid(images[:PREVIEW_IMAGES], padding=0))
