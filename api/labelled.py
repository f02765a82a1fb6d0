"""Class labels of an image upload, read and checked before a pixel is decoded.

A ``.zip`` is labelled by its layout: one folder per class (``cats/1.png``, ``dogs/7.png``);
images at the top level are unlabelled. One folder holding everything (``photos/…``, what
zipping a folder makes) is a wrapper, not a class: it is looked through once, so
``photos/cats/1.png`` is a ``cats`` image and ``photos/1.png`` an unlabelled one. A ``.npz``
is labelled by a ``labels`` array beside ``images``: integers (class 0, 1, …) or strings
(class names).

Refused (422, nothing stored): images both loose at the top and in folders, images nested
deeper than one folder, a class folder without images, class names that are empty, carry
control characters, are over ``MAX_CLASS_NAME_CHARS`` or are the same once normalised
(NFC: a macOS zip spells "é" in two code points); labels that are negative, not integers
or strings, or not one per image; fewer than two classes, more than
``max_upload_classes``, or a class with fewer than ``min_class_images`` images.

Classes are numbered in a stable order: by name, or by value when every name is a whole
number (so folders ``0`` … ``10`` are classes 0 … 10, not 0, 1, 10, 2, …).
"""

from __future__ import annotations

import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

import numpy as np

from ..shared.errors import InvalidUpload
from ..shared.settings import Settings
from .archives import UNREADABLE, npy_header

MAX_CLASS_NAME_CHARS = 64
"""Longest class name (a folder's, or a string label's), in characters."""
SHOWN = 5
"""Classes or entries named in one refusal; the rest are counted."""


@dataclass(frozen=True)
class Classes:
    """Each image's class (int32 index into ``names``) and the classes' names in order."""

    labels: np.ndarray
    names: tuple[str, ...]

    @property
    def counts(self) -> list[int]:
        return [int(c) for c in np.bincount(self.labels, minlength=len(self.names))]


# --- zip folders --------------------------------------------------------------------------------
def folder_classes(
    archive: zipfile.ZipFile, images: list[zipfile.ZipInfo], settings: Settings
) -> Classes | None:
    """The classes ``images`` (the archive's visible image entries) carry by their folders;
    None for an unlabelled layout (every image at the top, past any wrapper folder)."""
    chosen = {id(entry) for entry in images}
    paths = [_parts(entry.filename) for entry in images]
    others = [(_parts(e.filename), e.is_dir()) for e in _visible(archive) if id(e) not in chosen]
    if _wrapped(paths, others):
        paths = [path[1:] for path in paths]
        others = [(path[1:], is_dir) for path, is_dir in others if len(path) > 1]
    deep = [path for path in paths if len(path) > 2]
    if deep:
        raise InvalidUpload(
            f"Image {'/'.join(deep[0])!r} is in a folder inside a folder: a labelled archive "
            "holds one folder per class with its images directly inside (cats/1.png)."
        )
    depths = {len(path) for path in paths}
    if depths == {1, 2}:
        loose = next(path for path in paths if len(path) == 1)[0]
        folder = next(path for path in paths if len(path) == 2)[0]
        raise InvalidUpload(
            f"The archive holds images at its top level ({loose!r}) beside class folders "
            f"({folder + '/'!r}): put every image in its class's folder, or none in folders."
        )
    if depths != {2}:
        return None
    folders = {path[0] for path, is_dir in others if path and (len(path) > 1 or is_dir)}
    empty = sorted(folders - {path[0] for path in paths})
    if empty:
        raise InvalidUpload(
            f"Class folder(s) {_listed(empty)} hold no images: every folder of a labelled "
            "archive is a class and needs its images (remove the empty ones)."
        )
    return named_classes([path[0] for path in paths], "folder", settings)


def _parts(name: str) -> tuple[str, ...]:
    return PurePosixPath(name.replace("\\", "/")).parts


def _visible(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """Entries that are not hidden (``.name``, macOS's ``__MACOSX``), as ``visible_files``."""
    return [
        entry
        for entry in archive.infolist()
        if not any(part.startswith((".", "__MACOSX")) for part in _parts(entry.filename))
    ]


def _wrapped(paths: list[tuple[str, ...]], others: list[tuple[tuple[str, ...], bool]]) -> bool:
    """Whether every image and folder lies in one top folder (files beside it, a README,
    are no class and no wrapper)."""
    folders = [path for path, is_dir in others if len(path) > 1 or is_dir]
    tops = {path[0] for path in paths + folders}
    return len(tops) == 1 and all(len(path) > 1 for path in paths)


# --- npz labels ---------------------------------------------------------------------------------
def npz_classes(archive: zipfile.ZipFile, count: int, settings: Settings) -> Classes | None:
    """The ``labels`` array of an ``.npz`` of ``count`` images, checked from its header
    before it is read; None when the ``.npz`` has none."""
    entry = next((e for e in archive.infolist() if e.filename == "labels.npy"), None)
    if entry is None:
        return None
    try:
        with archive.open(entry) as handle:
            labels = _read_labels(handle, entry, count)
    except UNREADABLE as exc:
        raise InvalidUpload(f"The .npz labels cannot be read: {exc}.") from exc
    if labels.dtype.kind == "U":
        return named_classes([str(label) for label in labels], "label", settings)
    return _numbered_classes(labels, settings)


def _read_labels(handle: IO[bytes], entry: zipfile.ZipInfo, count: int) -> np.ndarray:
    shape, _, dtype = npy_header(handle, "labels are")
    _check_label_dtype(dtype)
    if shape != (count,):
        raise InvalidUpload(
            f"The .npz labels have shape {shape}; send one label per image: ({count},)."
        )
    size = count * dtype.itemsize
    if handle.tell() + size != entry.file_size:
        raise InvalidUpload(f"The .npz labels {shape} do not match the bytes they hold.")
    labels: np.ndarray = np.frombuffer(handle.read(size), dtype)
    if len(labels) != count:
        raise InvalidUpload("The .npz labels are cut short.")
    return labels


def _check_label_dtype(dtype: np.dtype) -> None:
    """Integers (class numbers) or strings (class names); anything else says how to fix it."""
    if dtype.kind in "iu":
        return
    if dtype.kind == "U":
        if dtype.itemsize // 4 > MAX_CLASS_NAME_CHARS:
            raise InvalidUpload(
                f"The .npz labels are strings of up to {dtype.itemsize // 4} characters; a "
                f"class name may have at most {MAX_CLASS_NAME_CHARS}."
            )
        return
    hints = {
        "f": "save whole numbers as integers (labels.astype(int))",
        "b": "save class numbers (0, 1, …) or names, not booleans",
        "O": "objects need pickle, which is refused: save names as numpy.array(names, dtype=str)",
        "S": "save names as text: numpy.array(names, dtype=str)",
    }
    hint = hints.get(dtype.kind, "send integers (0, 1, …) or class names")
    raise InvalidUpload(f"The .npz labels are {dtype}; {hint}.")


def _numbered_classes(labels: np.ndarray, settings: Settings) -> Classes:
    """Integer labels: classes 0 … max, named by their numbers."""
    negative = labels[labels < 0]
    if len(negative):
        raise InvalidUpload(
            f"The .npz labels include {int(negative[0])}: classes are numbered from 0."
        )
    top = int(labels.max()) if len(labels) else 0
    if top >= settings.max_upload_classes:
        raise InvalidUpload(
            f"The .npz labels go up to {top}: at most {settings.max_upload_classes} classes "
            f"(0 to {settings.max_upload_classes - 1}; ATELIER_MAX_UPLOAD_CLASSES)."
        )
    classes = Classes(labels.astype(np.int32), tuple(str(i) for i in range(top + 1)))
    check_balance(classes, settings)
    return classes


# --- names, order and balance -------------------------------------------------------------------
def named_classes(names: list[str], what: str, settings: Settings) -> Classes:
    """Each image's class from its class name (a folder's or a label's)."""
    normal = [unicodedata.normalize("NFC", name) for name in names]
    raw_of = {n: r for n, r in zip(normal, names, strict=True)}
    distinct = set(normal)
    if len(distinct) < len(set(names)):
        raise InvalidUpload(
            f"Two {what}s have the same name once normalised (Unicode NFC): rename one of "
            f"{_listed(sorted(r for r in set(names) if r != unicodedata.normalize('NFC', r)))}."
        )
    _check_class_count(len(distinct), settings)
    for name in distinct:
        check_class_name(raw_of[name], what)
    ordered = tuple(sorted(distinct, key=class_order(distinct)))
    index = {name: i for i, name in enumerate(ordered)}
    classes = Classes(np.array([index[n] for n in normal], np.int32), ordered)
    check_balance(classes, settings)
    return classes


def class_order(names: set[str]) -> Callable[[str], tuple[int, str]]:
    """The sort key: by number when every name is a whole number, else by name."""
    if all(name.isascii() and name.isdigit() for name in names):
        return lambda name: (int(name), name)
    return lambda name: (0, name)


def check_class_name(name: str, what: str) -> None:
    if not name.strip() or name != name.strip():
        raise InvalidUpload(f"A {what} name {name!r} is empty or starts or ends with spaces.")
    if len(name) > MAX_CLASS_NAME_CHARS:
        raise InvalidUpload(
            f"A {what} name is {len(name)} characters ({name[:20]!r}…); a class name may "
            f"have at most {MAX_CLASS_NAME_CHARS}."
        )
    odd = [c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")]
    if odd:
        raise InvalidUpload(
            f"A {what} name {name!r} holds control or invisible characters "
            f"({', '.join(f'U+{ord(c):04X}' for c in odd[:SHOWN])}); rename it."
        )


def _check_class_count(classes: int, settings: Settings) -> None:
    if classes < 2:
        raise InvalidUpload(
            "The upload has one class: a labelled dataset needs two or more. To train on it "
            "unlabelled, leave out the class folders (a .zip) or the labels array (a .npz)."
        )
    if classes > settings.max_upload_classes:
        raise InvalidUpload(
            f"The upload has {classes} classes; the limit is {settings.max_upload_classes} "
            "(ATELIER_MAX_UPLOAD_CLASSES)."
        )


def check_balance(classes: Classes, settings: Settings) -> None:
    """Two or more classes, each with at least ``min_class_images`` images."""
    _check_class_count(len(classes.names), settings)
    least = settings.min_class_images
    short = [(n, c) for n, c in zip(classes.names, classes.counts, strict=True) if c < least]
    if short:
        named = ", ".join(f"{name!r}: {count}" for name, count in short[:SHOWN])
        more = f" and {len(short) - SHOWN} more" if len(short) > SHOWN else ""
        raise InvalidUpload(
            f"Class(es) with fewer than {least} images (ATELIER_MIN_CLASS_IMAGES): "
            f"{named}{more}. Add images, or leave those classes out."
        )


def _listed(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")
