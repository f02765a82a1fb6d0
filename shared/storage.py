"""Object storage: one interface, two backends, one key layout.

Key layout (every key starts with its owner, which is how the local download route
checks ownership; what an attempt of a job writes is under that attempt's own prefix, named
by its fencing token ``{attempt}-{random}``, so a stale attempt can never overwrite the
current one's objects, even one whose claim a failover lost and made again)::

    owners/{owner}/jobs/{job_id}/a{fence}/samples/step-{step:07d}.png   samples (.txt for text)
    owners/{owner}/jobs/{job_id}/a{fence}/checkpoints/step-{step:07d}.npz
    owners/{owner}/jobs/{job_id}/a{fence}/outputs/{name}      generation outputs
    owners/{owner}/models/{model_id}/weights.npz                a trained model's weights
    owners/{owner}/models/{model_id}/export-{format}.zip        its export (shared.exports)
    owners/{owner}/datasets/{dataset_id}/images.npz             an uploaded image dataset
    owners/{owner}/datasets/{dataset_id}/corpus.txt             an uploaded text corpus
    owners/{owner}/datasets/{dataset_id}/preview.png            its preview grid
"""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import boto3
import redis
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from .errors import NotFound, ServiceUnavailable
from .settings import Settings


class ObjectLayout:
    """Where each kind of object lives; the only place that spells a key."""

    @staticmethod
    def owner_prefix(owner: str) -> str:
        return f"owners/{owner}/"

    @staticmethod
    def owner_of(key: str) -> str | None:
        """The owner an object key belongs to; None for a key outside ``owners/``."""
        top, owner, *rest = [*key.split("/", 2), "", ""]
        return owner if top == "owners" and owner and rest[0] else None

    @staticmethod
    def job_prefix(owner: str, job_id: str) -> str:
        return f"owners/{owner}/jobs/{job_id}/"

    @classmethod
    def attempt_prefix(cls, owner: str, job_id: str, fence: str) -> str:
        return f"{cls.job_prefix(owner, job_id)}a{fence}/"

    @staticmethod
    def attempt_of(job_prefix: str, key: str) -> tuple[int, str] | None:
        """``(attempt number, fence)`` of a key under ``job_prefix``; keys stored before
        fencing tokens have a bare attempt number for their fence."""
        folder = key[len(job_prefix) :].split("/", 1)[0] if key.startswith(job_prefix) else ""
        number = folder[1:].split("-", 1)[0]
        if not folder.startswith("a") or not number.isdigit():
            return None
        return int(number), folder[1:]

    @classmethod
    def sample(cls, owner: str, job_id: str, fence: str, step: int, extension: str = "png") -> str:
        return f"{cls.attempt_prefix(owner, job_id, fence)}samples/step-{step:07d}.{extension}"

    @classmethod
    def checkpoint(cls, owner: str, job_id: str, fence: str, step: int) -> str:
        return f"{cls.attempt_prefix(owner, job_id, fence)}checkpoints/step-{step:07d}.npz"

    @classmethod
    def output(cls, owner: str, job_id: str, fence: str, name: str) -> str:
        return f"{cls.attempt_prefix(owner, job_id, fence)}outputs/{name}"

    @staticmethod
    def dataset_object(owner: str, dataset_id: str, name: str) -> str:
        """``images.npz`` (uint8 pixels), ``corpus.txt`` or ``preview.png``."""
        return f"owners/{owner}/datasets/{dataset_id}/{name}"

    @staticmethod
    def model_weights(owner: str, model_id: str) -> str:
        return f"owners/{owner}/models/{model_id}/weights.npz"

    @staticmethod
    def model_prefix(owner: str, model_id: str) -> str:
        """Everything of a model: its weights and exports."""
        return f"owners/{owner}/models/{model_id}/"

    @classmethod
    def model_export(cls, owner: str, model_id: str, export_format: str) -> str:
        return f"{cls.model_prefix(owner, model_id)}export-{export_format}.zip"

    @staticmethod
    def prepared(name: str, recipe: str) -> str:
        """A built-in corpus as prepared for every worker (``workers.prepared``): no
        owner's, so no quota counts it; ``recipe`` is the hash of how it was made."""
        return f"prepared/{name}/{recipe}"


class ObjectStore(Protocol):
    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        """Store ``data`` under ``key``; returns its size in bytes."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""
        ...

    def list_keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix`` (a folder-like prefix ending in /)."""
        ...

    def presigned_url(self, key: str, download_name: str | None = None) -> str | None:
        """A URL anyone holding it can GET, or None when downloads go through the API;
        with ``download_name``, a browser saves what it gets under that name."""
        ...

    def check(self) -> None:
        """Raise ServiceUnavailable unless the store can be read and written."""
        ...


class LocalObjectStore:
    """A directory tree; writes are atomic (temp file + rename), so readers never see half."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, key: str) -> Path:
        # A lexical check: keys are ours or come from URLs, and only `..` can climb out
        # (nothing lets a user place a symlink here). `Path.resolve` did the same with a
        # syscall per path component, ~5% of a minimal generate job's CPU (py-spy).
        path = Path(os.path.normpath(self.root / key))
        if not path.is_relative_to(self.root):
            raise NotFound(f"No object {key!r}.")
        return path

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
        return len(data)

    def get_bytes(self, key: str) -> bytes:
        path = self.path_for(key)
        if not path.is_file():
            raise NotFound(f"No object {key!r}.")
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str) -> list[str]:
        folder = self.path_for(prefix)
        if not folder.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and not path.name.startswith(".part-")
        )

    def presigned_url(self, key: str, download_name: str | None = None) -> str | None:
        return None

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise ServiceUnavailable(f"Local storage {self.root} is not writable.")


class S3ObjectStore:
    """Any S3-compatible service through boto3; downloads use presigned URLs."""

    # Multipart above 16 MiB with 8 parts in flight: checkpoints of large GANs upload in
    # parallel instead of one long PUT.
    _TRANSFER = TransferConfig(multipart_threshold=16 << 20, max_concurrency=8)

    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket
        self.expires = settings.s3_presign_expires_seconds
        self._region = settings.s3_region
        self._client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id or None,
            aws_secret_access_key=settings.s3_secret_access_key or None,
            config=BotoConfig(
                retries={"max_attempts": 5, "mode": "standard"},
                signature_version="s3v4",
                max_pool_connections=settings.upload_threads + 4,
            ),
        )

    def ensure_bucket(self) -> None:
        """Make the bucket if S3 says it is missing. Any other answer (a refused key) is
        raised as it is, and another process making it first is no error."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if not _is_missing(exc):
                raise
        # AWS makes a bucket outside us-east-1 only when told where, and refuses being told
        # us-east-1 (the stubs' type lists AWS's regions; other S3 servers name their own).
        where: dict[str, Any] = (
            {}
            if self._region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": self._region}}
        )
        try:
            self._client.create_bucket(Bucket=self.bucket, **where)
        except ClientError as exc:
            if _error_code(exc) != "BucketAlreadyOwnedByYou":
                raise

    def put_bytes(self, key: str, data: bytes, content_type: str) -> int:
        self._client.upload_fileobj(
            io.BytesIO(data),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type},
            Config=self._TRANSFER,
        )
        return len(data)

    def get_bytes(self, key: str) -> bytes:
        buffer = io.BytesIO()
        try:
            self._client.download_fileobj(self.bucket, key, buffer)
        except ClientError as exc:
            if _is_missing(exc):
                raise NotFound(f"No object {key!r}.") from exc
            raise
        return buffer.getvalue()

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise  # refused or failing is not "missing": callers would act on a lie
        return True

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=key)  # S3 ignores missing keys

    def list_keys(self, prefix: str) -> list[str]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def presigned_url(self, key: str, download_name: str | None = None) -> str | None:
        params = {"Bucket": self.bucket, "Key": key}
        if download_name is not None:
            # Signed into the URL: the S3 server answers it as the Content-Disposition.
            params["ResponseContentDisposition"] = content_disposition(download_name)
        url: str = self._client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=self.expires
        )
        return url

    def check(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable(f"S3 bucket {self.bucket!r} unreachable: {exc}") from exc


def content_disposition(name: str) -> str:
    """RFC 6266's attachment header for ``name``: an ASCII fallback and the UTF-8 name."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _is_missing(exc: ClientError) -> bool:
    """S3's "no such key or bucket"; a HEAD's answer has no body, so only its status."""
    return _error_code(exc) in {"404", "NoSuchKey", "NotFound"}


def make_object_store(settings: Settings, meter_with: redis.Redis | None = None) -> ObjectStore:
    """The configured store; given a Redis client, one that counts each owner's stored
    bytes as it writes and deletes (``shared.storage_usage``, for the stored-bytes quota)."""
    store: ObjectStore
    if settings.storage == "s3":
        s3 = S3ObjectStore(settings)
        s3.ensure_bucket()
        store = s3
    else:
        store = LocalObjectStore(settings.local_storage_dir)
    if meter_with is None:
        return store
    # Imported here: storage_usage builds on this module.
    from .storage_usage import MeteredObjectStore, StorageMeter

    return MeteredObjectStore(store, StorageMeter(meter_with))
