"""Checking and normalising uploaded datasets before anything is stored.

Every check happens on the bytes in memory (uploads are capped by ``max_upload_bytes``):
archive entries are counted (from the zip's end records), sized, named and laid out (no
two may share bytes or a name) before any is read (``api.archives``); each image's size
is read from its header, and an ``.npz`` array's dtype, order and shape from its ``.npy``
header, and charged to the upload's pixel budget before it is decoded; the array is then
read a few MiB at a time. Class labels (a folder per class, or an ``.npz``'s ``labels``)
are read and checked before any pixel is (``api.labelled``). ABC tunes are kept or
dropped by the melody kind's rules (``shared.kinds.melody.ingest``), run by music21 in the
upload pool (``api.upload_gate``).
A failure anywhere rejects the whole upload, so nothing half-checked is stored.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..shared.datasets import Modality
from ..shared.errors import InvalidUpload, PayloadTooLarge
from ..shared.kinds.melody.ingest import ABC_SUFFIXES, check_tunes
from ..shared.settings import Settings
from .archives import UNREADABLE, npy_header, open_zip, read_entry, visible_files
from .labelled import Classes, folder_classes, npz_classes
from .upload_gate import UploadGate

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
IMAGE_FORMATS = ("PNG", "JPEG")
"""What Pillow may decode: only the formats we accept (never its other, riskier readers)."""
TEXT_SUFFIXES = {".txt"}
EXCERPT_CHARS = 400
MAX_FILENAME_CHARS = 255
NPY_CHUNK = 4 << 20  # bytes of an .npz array read at a time (bounds the temporaries)
TEXT_CHUNK = 1 << 22  # bytes scanned at a time for control characters (bounds the temporaries)


@dataclass
class Normalised:
    modality: Modality
    images: np.ndarray | None = None
    """uint8 (n, size, size, channels)"""
    text: str | None = None
    tunes: int | None = None
    """ABC uploads: the readable tunes (``text`` holds them, normalised)."""
    classes: Classes | None = None
    """Labelled images: each one's class (``api.labelled``); None: unlabelled."""

    @property
    def count(self) -> int:
        if self.images is not None:
            return int(self.images.shape[0])
        if self.tunes is not None:
            return self.tunes
        return len(self.text or "")


@dataclass
class Target:
    """What every image becomes, and the pixels left to spend on getting there."""

    size: int
    channels: int
    settings: Settings
    pixels_left: int = 0

    def __post_init__(self) -> None:
        self.pixels_left = self.settings.max_upload_pixels

    def charge(self, what: str, width: int, height: int, count: int = 1) -> None:
        """Refuse an image over the per-image limit, or one that would pass the upload's
        pixel budget (each image costs the larger of its own and the target's size)."""
        limit = self.settings.max_image_pixels
        if width * height > limit:
            raise PayloadTooLarge(
                f"{what} is {width}x{height} pixels; the limit is {limit} pixels "
                "(a decompression bomb?)."
            )
        budget = self.settings.max_upload_pixels
        self.pixels_left -= count * max(width * height, self.size * self.size)
        if budget and self.pixels_left < 0:
            raise PayloadTooLarge(
                f"The upload's images hold more than {budget} pixels in total (counting each "
                f"at least {self.size}x{self.size}); send fewer or smaller images.",
                limit_pixels=budget,
            )


def normalise_upload(
    filename: str, data: bytes, image_size: int, channels: int, gate: UploadGate, settings: Settings
) -> Normalised:
    """The upload checked and normalised; ABC tunes are read in ``gate``'s pool."""
    if len(filename) > MAX_FILENAME_CHARS:
        raise InvalidUpload(f"The file name is longer than {MAX_FILENAME_CHARS} characters.")
    suffix = PurePosixPath(filename.lower()).suffix
    if suffix in TEXT_SUFFIXES:
        return Normalised("text", text=_text(data))
    archive = open_zip(data, settings, "archive") if suffix == ".zip" else None
    if suffix in ABC_SUFFIXES or (archive and visible_files(archive, ABC_SUFFIXES)):
        tunes = gate.run(check_tunes, filename, abc_files(filename, data, archive, settings))
        return Normalised("music", text=tunes.text, tunes=tunes.count)
    target = Target(image_size, channels, settings)
    if archive is not None:
        images, classes = _zip_images(archive, target)
    elif suffix == ".npz":
        images, classes = _npz_images(open_zip(data, settings, ".npz file"), target)
    else:
        raise InvalidUpload(
            f"Unsupported file {filename!r}: send a .zip of PNG/JPEG images, a .npz of "
            "images, a UTF-8 .txt corpus, or ABC tunes (.abc or a .zip of them)."
        )
    if len(images) == 0:
        raise InvalidUpload(f"{filename!r} holds no images: the dataset would be empty.")
    return Normalised("image", images=images, classes=classes)


# --- ABC tunes ---------------------------------------------------------------------------------
def abc_files(
    filename: str, data: bytes, archive: zipfile.ZipFile | None, settings: Settings
) -> list[tuple[str, bytes]]:
    """(name, bytes) of each ABC file of the upload: the upload itself, or the archive's
    ``.abc`` files, which may hold no more than an upload may (``max_upload_bytes``)."""
    if archive is None:
        return [(filename, data)]
    entries = visible_files(archive, ABC_SUFFIXES)
    total = sum(entry.file_size for entry in entries)
    if total > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"The archive's ABC files hold {total} bytes; the limit is "
            f"{settings.max_upload_bytes}, as for one .abc file."
        )
    return [(entry.filename, read_entry(archive, entry)) for entry in entries]


# --- text ---------------------------------------------------------------------------------------
def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidUpload(
            f"The corpus is not UTF-8 text (byte {exc.start} is invalid); save it as UTF-8."
        ) from exc
    if b"\x00" in data:
        raise InvalidUpload("The corpus contains NUL bytes: it looks like a binary file.")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if control_characters(data) > len(text) * 0.01:
        raise InvalidUpload("The corpus is mostly control characters: it looks binary.")
    if not text.strip():
        raise InvalidUpload("The corpus is empty.")
    return text


def control_characters(data: bytes) -> int:
    """Characters of Unicode category Cc other than tab, CR and LF in valid UTF-8 ``data``,
    counted on the bytes with numpy: C0 and DEL are single bytes, C1 (U+0080-U+009F) is
    0xC2 then 0x80-0x9F.

    It was one ``unicodedata.category`` call per character: 3.9 s for a 66 MB corpus on
    this project's machine (8.2 s under cProfile; the issue measured ~40 s on a busy one);
    this takes 0.11 s for the same bytes (the whole text check 0.24 s)."""
    wanted = np.zeros(256, dtype=bool)
    wanted[[*range(32), 127]] = True
    wanted[[9, 10, 13]] = False
    count = 0
    for start in range(0, len(data), TEXT_CHUNK):
        # One byte of overlap, so a 0xC2 at a chunk's end meets its continuation byte.
        chunk = np.frombuffer(data[start : start + TEXT_CHUNK + 1], dtype=np.uint8)
        own = chunk[:TEXT_CHUNK]
        count += int(np.count_nonzero(wanted[own]))
        count += int(np.count_nonzero((chunk[:-1] == 0xC2) & (chunk[1:] < 0xA0)))
    return count


# --- images -------------------------------------------------------------------------------------
def _zip_images(archive: zipfile.ZipFile, target: Target) -> tuple[np.ndarray, Classes | None]:
    """The images, and their classes when the archive has a folder per class (its layout
    is judged before an image is decoded)."""
    entries = visible_files(archive, IMAGE_SUFFIXES)
    classes = folder_classes(archive, entries, target.settings) if entries else None
    images = np.empty((len(entries), target.size, target.size, target.channels), np.uint8)
    for index, entry in enumerate(entries):
        images[index] = _image(read_entry(archive, entry), entry.filename, target)
    return images, classes


def _image(data: bytes, name: str, target: Target) -> np.ndarray:
    try:
        # Pillow's own bomb check (at ~179 M pixels) fires inside open(): it is one more
        # way of being too large, not a corrupt file.
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        target.charge(f"Image {name!r}", *image.size)
        image.load()
    except Image.DecompressionBombError as exc:
        raise PayloadTooLarge(f"Image {name!r} is a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidUpload(f"Image {name!r} is truncated or corrupt: {exc}.") from exc
    return _resized(image, target)


def _resized(image: Image.Image, target: Target) -> np.ndarray:
    converted = image.convert("L" if target.channels == 1 else "RGB")
    resized = converted.resize((target.size, target.size), Image.Resampling.LANCZOS)
    pixels = np.asarray(resized, dtype=np.uint8)
    return pixels[..., np.newaxis] if target.channels == 1 else pixels


# --- npz ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NpyLayout:
    """An ``.npy`` image array as its header declares it: (n, height, width, channels)."""

    shape: tuple[int, int, int, int]
    header_bytes: int

    @property
    def image_bytes(self) -> int:
        return math.prod(self.shape[1:])


def _npz_images(archive: zipfile.ZipFile, target: Target) -> tuple[np.ndarray, Classes | None]:
    """The image array read from its member's stream: its header checked first, then the
    ``labels`` array if there is one, then its pixels a few MiB of images at a time (the
    array is never whole in memory)."""
    entry = _npz_entry(archive)
    try:
        with archive.open(entry) as handle:
            layout = _npy_layout(handle, entry, target)
            classes = npz_classes(archive, layout.shape[0], target.settings)
            return _npy_images(handle, layout, target), classes
    except UNREADABLE as exc:
        raise InvalidUpload(f"The .npz cannot be read: {exc}.") from exc


def _npz_entry(archive: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The image array: ``images.npy``, or the only array. Every member must be an
    ``.npy`` array (what ``np.savez`` writes); anything else has no business here."""
    members = [entry for entry in archive.infolist() if not entry.is_dir()]
    for entry in members:
        if not entry.filename.endswith(".npy"):
            raise InvalidUpload(
                f"The .npz holds {entry.filename!r}, which is not an .npy array; save the "
                "images with numpy.savez."
            )
    arrays = {entry.filename.removesuffix(".npy"): entry for entry in members}
    if "images" in arrays:
        return arrays["images"]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    raise InvalidUpload(f"The .npz holds arrays {sorted(arrays)}; name the image array 'images'.")


def _npy_layout(handle: IO[bytes], entry: zipfile.ZipInfo, target: Target) -> NpyLayout:
    """The image array's layout from its ``.npy`` header (numpy's own reader, which never
    evaluates more than a literal dict), checked (dtype, order, shape, images, bytes,
    pixels, and that the data is really there) before a byte of pixels is read."""
    shape, fortran_order, dtype = npy_header(handle, "array is")
    if dtype != np.uint8:
        raise InvalidUpload(f"The .npz images are {dtype}; send uint8 pixels (0-255).")
    if fortran_order:
        raise InvalidUpload(
            "The .npz images are stored in Fortran order; save a C-ordered array "
            "(numpy.ascontiguousarray)."
        )
    layout = NpyLayout(_image_shape(shape), handle.tell())
    _check_npy_size(layout, entry, target)
    return layout


def _image_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    if len(shape) == 3:
        shape = (*shape, 1)
    if len(shape) != 4 or shape[-1] not in (1, 3) or min(shape) < 1:
        raise InvalidUpload(
            f"The .npz images have shape {shape}; send (n, height, width) or "
            "(n, height, width, 1 or 3) with n > 0."
        )
    count, height, width, channels = shape
    return count, height, width, channels


def _check_npy_size(layout: NpyLayout, entry: zipfile.ZipInfo, target: Target) -> None:
    count, height, width, _ = layout.shape
    settings = target.settings
    if count > settings.max_upload_files:
        raise PayloadTooLarge(
            f"The .npz holds {count} images; the limit is {settings.max_upload_files}."
        )
    decoded = count * layout.image_bytes  # uint8: one byte an element
    if decoded > settings.max_uncompressed_bytes:
        raise PayloadTooLarge(
            f"The .npz images {layout.shape} decode to {decoded} bytes; the limit is "
            f"{settings.max_uncompressed_bytes}."
        )
    target.charge("Each .npz image", width, height, count)
    if layout.header_bytes + decoded != entry.file_size:
        raise InvalidUpload(f"The .npz array {layout.shape} does not match the bytes it holds.")


def _npy_images(handle: IO[bytes], layout: NpyLayout, target: Target) -> np.ndarray:
    count, height, width, channels = layout.shape
    images = np.empty((count, target.size, target.size, target.channels), np.uint8)
    per_read = max(1, NPY_CHUNK // layout.image_bytes)
    for first in range(0, count, per_read):
        rows = min(per_read, count - first)
        data = handle.read(rows * layout.image_bytes)
        if len(data) != rows * layout.image_bytes:
            raise InvalidUpload(f"The .npz array {layout.shape} is cut short.")
        pixels = np.frombuffer(data, np.uint8).reshape(rows, height, width, channels)
        for offset, image in enumerate(pixels):
            grey = image[..., 0] if channels == 1 else image
            images[first + offset] = _resized(Image.fromarray(grey), target)
    return images


def excerpt(text: str) -> str:
    return text[:EXCERPT_CHARS]
