"""Checking and normalising uploaded datasets before anything is stored.

Every check happens on the bytes in memory (uploads are capped by ``max_upload_bytes``):
archive entries are counted, sized and named before any is read, each image's pixel
count is read from its header before it is decoded, and a failure anywhere rejects the
whole upload, so nothing half-checked is ever stored.
"""

from __future__ import annotations

import io
import stat
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from atelier.shared.errors import PayloadTooLarge, ValidationFailed
from atelier.shared.settings import Settings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
TEXT_SUFFIXES = {".txt"}
ARCHIVE_SUFFIXES = {".zip", ".npz"}
EXCERPT_CHARS = 400


class InvalidUpload(ValidationFailed):
    slug, title = "invalid-upload", "The uploaded dataset cannot be used"


@dataclass
class Normalised:
    modality: str
    images: np.ndarray | None = None
    """uint8 (n, size, size, channels)"""
    text: str | None = None

    @property
    def count(self) -> int:
        if self.images is not None:
            return int(self.images.shape[0])
        return len(self.text or "")


def normalise_upload(
    filename: str, data: bytes, image_size: int, channels: int, settings: Settings
) -> Normalised:
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix in TEXT_SUFFIXES:
        return Normalised("text", text=_text(data))
    if suffix == ".zip":
        images = _zip_images(data, image_size, channels, settings)
    elif suffix == ".npz":
        images = _npz_images(data, image_size, channels, settings)
    else:
        raise InvalidUpload(
            f"Unsupported file {filename!r}: send a .zip of PNG/JPEG images, a .npz of "
            "images, or a UTF-8 .txt corpus."
        )
    if len(images) == 0:
        raise InvalidUpload(f"{filename!r} holds no images: the dataset would be empty.")
    return Normalised("image", images=np.stack(images))


# --- text ---------------------------------------------------------------------------------------
def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUpload(
            f"The corpus is not UTF-8 text (byte {exc.start} is invalid); save it as UTF-8."
        ) from exc
    if "\x00" in text:
        raise InvalidUpload("The corpus contains NUL bytes: it looks like a binary file.")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\n\t")
    if controls > len(text) * 0.01:
        raise InvalidUpload("The corpus is mostly control characters: it looks binary.")
    if not text.strip():
        raise InvalidUpload("The corpus is empty.")
    return text


# --- archives -----------------------------------------------------------------------------------
def _open_zip(data: bytes, settings: Settings, what: str) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError) as exc:
        raise InvalidUpload(f"The {what} is not a readable zip archive: {exc}.") from exc
    entries = archive.infolist()
    if len(entries) > settings.max_upload_files:
        raise PayloadTooLarge(
            f"The {what} holds {len(entries)} entries; the limit is {settings.max_upload_files}."
        )
    total = sum(entry.file_size for entry in entries)
    if total > settings.max_uncompressed_bytes:
        raise PayloadTooLarge(
            f"The {what} expands to {total} bytes; the limit is "
            f"{settings.max_uncompressed_bytes} (is it a zip bomb?)."
        )
    for entry in entries:
        _check_entry_name(entry)
    return archive


def _check_entry_name(entry: zipfile.ZipInfo) -> None:
    path = PurePosixPath(entry.filename.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or ":" in entry.filename:
        raise InvalidUpload(f"Archive entry {entry.filename!r} points outside the archive.")
    if stat.S_ISLNK(entry.external_attr >> 16):
        raise InvalidUpload(f"Archive entry {entry.filename!r} is a link; send plain files.")


def _read_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
    """Read at most the declared size (+1 byte to catch a header that lies)."""
    try:
        with archive.open(entry) as handle:
            data = handle.read(entry.file_size + 1)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise InvalidUpload(f"Archive entry {entry.filename!r} is corrupt: {exc}.") from exc
    if len(data) > entry.file_size:
        raise InvalidUpload(f"Archive entry {entry.filename!r} is larger than it declares.")
    return data


def _zip_images(data: bytes, size: int, channels: int, settings: Settings) -> list[np.ndarray]:
    archive = _open_zip(data, settings, "archive")
    images = []
    for entry in archive.infolist():
        name = PurePosixPath(entry.filename)
        hidden = any(part.startswith((".", "__MACOSX")) for part in name.parts)
        if entry.is_dir() or hidden or name.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        images.append(_image(_read_entry(archive, entry), entry.filename, size, channels, settings))
    return images


def _image(data: bytes, name: str, size: int, channels: int, settings: Settings) -> np.ndarray:
    try:
        image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width * height > settings.max_image_pixels:
            raise PayloadTooLarge(
                f"Image {name!r} is {width}x{height} pixels; the limit is "
                f"{settings.max_image_pixels} pixels (a decompression bomb?)."
            )
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidUpload(f"Image {name!r} is truncated or corrupt: {exc}.") from exc
    converted = image.convert("L" if channels == 1 else "RGB")
    resized = converted.resize((size, size), Image.Resampling.LANCZOS)
    pixels = np.asarray(resized, dtype=np.uint8)
    return pixels[..., np.newaxis] if channels == 1 else pixels


def _npz_images(data: bytes, size: int, channels: int, settings: Settings) -> list[np.ndarray]:
    _open_zip(data, settings, ".npz file")  # the same entry-count and expansion guards
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            names = list(arrays.files)
            key = "images" if "images" in names else (names[0] if len(names) == 1 else None)
            if key is None:
                raise InvalidUpload(
                    f"The .npz holds arrays {names}; name the image array 'images'."
                )
            array = arrays[key]
    except InvalidUpload:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise InvalidUpload(f"The .npz cannot be read: {exc}.") from exc
    if array.dtype != np.uint8:
        raise InvalidUpload(f"The .npz images are {array.dtype}; send uint8 pixels (0-255).")
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.shape[0] == 0:
        raise InvalidUpload(
            f"The .npz images have shape {array.shape}; send (n, height, width) or "
            "(n, height, width, 1 or 3) with n > 0."
        )
    if array.shape[1] * array.shape[2] > settings.max_image_pixels:
        raise PayloadTooLarge(f"The .npz images are {array.shape[1]}x{array.shape[2]}: too big.")
    mode = "L" if array.shape[-1] == 1 else "RGB"
    images = []
    for pixels in array:
        image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode=mode)
        converted = image.convert("L" if channels == 1 else "RGB")
        resized = np.asarray(converted.resize((size, size), Image.Resampling.LANCZOS))
        images.append(resized[..., np.newaxis] if channels == 1 else resized)
    return images


def excerpt(text: str) -> str:
    return text[:EXCERPT_CHARS]
