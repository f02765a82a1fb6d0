"""Opening an uploaded zip (an image or ABC archive, or an ``.npz``) without trusting it.

Before ``zipfile`` parses the central directory (about 600 bytes of Python objects per
entry: a 64 MiB zip of 745,000 empty entries cost the API 480 MiB, read twice for a
``.zip``), the entry count is read from the end records and held to ``max_upload_files``,
and the directory's records are counted against that declaration. Then the entries are
sized, named and laid out (no two may share bytes or a name) before any is read, and each
is read no further than it declares.
"""

from __future__ import annotations

import io
import itertools
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, Any

import numpy as np

from ..shared.errors import InvalidUpload, PayloadTooLarge
from ..shared.settings import Settings

# The few fixed records read by hand (APPNOTE.TXT 4.3.12-4.3.16): zipfile has no way to
# give the entry count, or the directory's bounds, without building every ZipInfo first.
END = struct.Struct("<4s4H2IH")  # signature, disks, entries here, entries, size, offset, comment
ZIP64_LOCATOR = struct.Struct("<4sIQI")  # signature, disk, zip64 end's offset, disks
ZIP64_END = struct.Struct("<4sQ2H2I4Q")  # signature, size, versions, disks, entries x2, bounds
DIRECTORY_RECORD = struct.Struct("<4s24xHHH12x")  # signature, then name, extra, comment lengths
LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then file name and extra lengths
MAX_COMMENT = 0xFFFF
UNREADABLE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError)
"""What reading a corrupt entry raises (a bad CRC, deflate stream, or compression method)."""


@dataclass(frozen=True)
class Directory:
    """Where the central directory lies and what the end records say it holds."""

    entries: int
    start: int
    size: int


def declared_directory(data: bytes, what: str) -> Directory:
    """The directory as zipfile will read it: from the end record, or from the zip64 end
    record when a zip64 locator precedes it."""
    at = _end_record(data, what)
    _, _, _, _, entries, size, _, _ = END.unpack_from(data, at)
    locator = at - ZIP64_LOCATOR.size
    if locator >= ZIP64_END.size and data[locator : locator + 4] == b"PK\x06\x07":
        end64 = locator - ZIP64_END.size
        if data[end64 : end64 + 4] == b"PK\x06\x06":
            at = end64
            _, _, _, _, _, _, _, entries, size, _ = ZIP64_END.unpack_from(data, at)
    if size > at:
        raise InvalidUpload(f"The {what} is not a readable zip archive: its directory is cut off.")
    return Directory(entries, at - size, size)


def _end_record(data: bytes, what: str) -> int:
    """Where the end record starts: the last 22 bytes, else the last signature within a
    comment's length of the end (zipfile's order)."""
    if data[-END.size : -END.size + 4] == b"PK\x05\x06" and data[-2:] == b"\0\0":
        return len(data) - END.size
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - END.size - MAX_COMMENT))
    if at < 0 or len(data) - at < END.size:
        raise InvalidUpload(f"The {what} is not a readable zip archive: no end record.")
    return at


def check_entry_count(data: bytes, limit: int, what: str) -> None:
    """Refuse more than ``limit`` entries declared, or a directory holding more records
    than its end record declares (zipfile reads records until the directory's bytes end,
    whatever the count says)."""
    directory = declared_directory(data, what)
    if directory.entries > limit:
        raise PayloadTooLarge(
            f"The {what} holds {directory.entries} entries; the limit is {limit}.",
            limit_entries=limit,
        )
    at, end = directory.start, directory.start + directory.size
    for _ in range(directory.entries):
        if at + DIRECTORY_RECORD.size > end:
            break
        signature, name, extra, comment = DIRECTORY_RECORD.unpack_from(data, at)
        if signature != b"PK\x01\x02":
            break
        at += DIRECTORY_RECORD.size + name + extra + comment
    if at != end:
        raise InvalidUpload(
            f"The {what}'s directory does not hold the {directory.entries} entries its end "
            "record declares: it is corrupt or lies."
        )


def open_zip(data: bytes, settings: Settings, what: str) -> zipfile.ZipFile:
    check_entry_count(data, settings.max_upload_files, what)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise InvalidUpload(f"The {what} is not a readable zip archive: {exc}.") from exc
    entries = archive.infolist()
    total = sum(entry.file_size for entry in entries)
    if total > settings.max_uncompressed_bytes:
        raise PayloadTooLarge(
            f"The {what} expands to {total} bytes; the limit is "
            f"{settings.max_uncompressed_bytes} (is it a zip bomb?)."
        )
    for entry in entries:
        _check_entry_name(entry)
    _check_layout(data, entries, what)
    return archive


def _check_entry_name(entry: zipfile.ZipInfo) -> None:
    path = PurePosixPath(entry.filename.replace("\\", "/"))
    # "C:evil.png" and "C:/evil.png" name another drive where Windows tools unpack.
    drive = bool(path.parts) and path.parts[0][1:2] == ":"
    if path.is_absolute() or ".." in path.parts or drive:
        raise InvalidUpload(f"Archive entry {entry.filename!r} points outside the archive.")
    if ":" in entry.filename:
        raise InvalidUpload(
            f"Archive entry {entry.filename!r} has a ':' in its name, which many systems "
            "refuse in file and folder names; rename it without one."
        )
    if stat.S_ISLNK(entry.external_attr >> 16):
        raise InvalidUpload(f"Archive entry {entry.filename!r} is a link; send plain files.")


def _check_layout(data: bytes, entries: list[zipfile.ZipInfo], what: str) -> None:
    """Each entry's bytes are its own: no repeated name, and no two entries whose stored
    bytes overlap (many directory entries pointing at one compressed blob multiply the
    work of reading the archive without adding a byte to it)."""
    names: set[str] = set()
    spans = []
    for entry in entries:
        if entry.filename in names:
            raise InvalidUpload(f"The {what} holds {entry.filename!r} more than once.")
        names.add(entry.filename)
        start = entry.header_offset
        header = data[start : start + LOCAL_HEADER.size]
        if len(header) < LOCAL_HEADER.size or not header.startswith(b"PK\x03\x04"):
            raise InvalidUpload(f"Archive entry {entry.filename!r} is corrupt: no local header.")
        _, name_length, extra_length = LOCAL_HEADER.unpack(header)
        end = start + LOCAL_HEADER.size + name_length + extra_length + entry.compress_size
        spans.append((start, end, entry.filename))
    spans.sort()
    for (_, end, name), (start, _, other) in itertools.pairwise(spans):
        if start < end:
            raise InvalidUpload(
                f"Archive entries {name!r} and {other!r} overlap: each entry must hold its "
                "own bytes."
            )


def read_entry(archive: zipfile.ZipFile, entry: zipfile.ZipInfo) -> bytes:
    """Read at most the declared size (+1 byte to catch a header that lies)."""
    try:
        with archive.open(entry) as handle:
            data = handle.read(entry.file_size + 1)
    except UNREADABLE as exc:
        raise InvalidUpload(f"Archive entry {entry.filename!r} is corrupt: {exc}.") from exc
    if len(data) > entry.file_size:
        raise InvalidUpload(f"Archive entry {entry.filename!r} is larger than it declares.")
    return data


def visible_files(archive: zipfile.ZipFile, suffixes: set[str]) -> list[zipfile.ZipInfo]:
    """The archive's files with one of ``suffixes``, leaving out directories and hidden
    files (``.name``, macOS's ``__MACOSX`` resource forks)."""
    return [entry for entry in archive.infolist() if _visible(entry, suffixes)]


def _visible(entry: zipfile.ZipInfo, suffixes: set[str]) -> bool:
    name = PurePosixPath(entry.filename)
    hidden = any(part.startswith((".", "__MACOSX")) for part in name.parts)
    return not entry.is_dir() and not hidden and name.suffix.lower() in suffixes


def npy_header(handle: IO[bytes], what: str) -> tuple[tuple[int, ...], bool, Any]:
    """An ``.npz`` member's shape, Fortran order and dtype from its ``.npy`` header, read
    with numpy's own reader (it never evaluates more than a literal dict), before any of
    its data; ``what`` names the array in the refusal of another format version."""
    version = np.lib.format.read_magic(handle)
    if version not in ((1, 0), (2, 0)):
        raise InvalidUpload(f"The .npz {what} .npy version {version}; save with numpy.savez.")
    read_header = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran_order, dtype = read_header(handle)
    return shape, fortran_order, dtype
