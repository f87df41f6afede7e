"""Zip archives (GTFS feeds, OneRoster bulk sets), opened defensively.

A landed archive is refused as a whole, naming the rule, when it is not a zip, is larger than
the contract allows, would expand past the contract's limits (a zip bomb), or holds a member
whose path escapes the archive. Members are extracted one at a time into a scratch folder
while counting bytes, so a member whose header lies about its size is stopped at the limit.

Limits come from the contract's `format` (all optional):

    max_bytes: 2147483648             # the landed file
    max_uncompressed_bytes: 8589934592  # all members together, once expanded
    max_ratio: 200                    # expanded / compressed size of any member
    max_members: 1000
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from transforms.errors import BadInput

DEFAULT_LIMITS = {
    "max_bytes": 2 << 30,
    "max_uncompressed_bytes": 8 << 30,
    "max_ratio": 200,
    "max_members": 1000,
}
_CHUNK = 1 << 20


def limits(fmt: dict) -> dict:
    return {k: int(fmt.get(k, v)) for k, v in DEFAULT_LIMITS.items()}


def check_size(path: Path, label: str, fmt: dict, allow_empty: bool = False) -> None:
    """Refuse a landed file (of any format) larger than the contract allows, before reading a
    byte of it; and an empty one unless the format allows it (JSON Lines: zero records)."""
    size, limit = path.stat().st_size, limits(fmt)["max_bytes"]
    if size == 0 and not allow_empty:
        raise BadInput(label, "format", "empty file (0 bytes)")
    if size > limit:
        raise BadInput(label, "size limit", f"{size:,} bytes is more than the contract's max_bytes {limit:,}")


class Archive:
    """An open, checked zip: `names` are its file members (directories left out)."""

    def __init__(self, path: Path, label: str, fmt: dict, scratch: Path):
        self.path, self.label, self.limits, self.scratch = path, label, limits(fmt), scratch
        check_size(path, label, fmt)
        if not zipfile.is_zipfile(path):
            raise BadInput(label, "format", "not a zip archive (no zip directory found): unreadable or truncated")
        try:
            self.zip = zipfile.ZipFile(path)
            infos = [i for i in self.zip.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            raise BadInput(label, "format", f"unreadable zip: {error}") from None
        if len(infos) > self.limits["max_members"]:
            raise BadInput(label, "zip limits", f"{len(infos):,} members, more than max_members {self.limits['max_members']:,}")
        for info in infos:
            name = PurePosixPath(info.filename)
            if name.is_absolute() or ".." in name.parts:
                raise BadInput(label, "zip limits", f"member {info.filename!r} points outside the archive")
        declared = sum(i.file_size for i in infos)
        if declared > self.limits["max_uncompressed_bytes"]:
            raise BadInput(label, "zip limits", f"members expand to {declared:,} bytes, more than "
                                                f"max_uncompressed_bytes {self.limits['max_uncompressed_bytes']:,} (zip bomb?)")
        for info in infos:
            self._check_ratio(info.filename, info.file_size, info.compress_size)
        self.infos = {i.filename: i for i in infos}
        self.expanded = 0

    @property
    def names(self) -> list[str]:
        return list(self.infos)

    def find(self, name: str) -> str | None:
        """The member called `name`, at the top of the archive or inside one folder (some
        publishers zip the folder rather than its files)."""
        if name in self.infos:
            return name
        nested = [n for n in self.infos if PurePosixPath(n).name == name and len(PurePosixPath(n).parts) == 2]
        return nested[0] if len(nested) == 1 else None

    def _check_ratio(self, member: str, expanded: int, compressed: int) -> None:
        if expanded > 1 << 20 and expanded > self.limits["max_ratio"] * max(compressed, 1):
            raise BadInput(self.label, "zip limits",
                           f"member {member} expands {expanded / max(compressed, 1):,.0f}× ({compressed:,} → {expanded:,} bytes), "
                           f"more than max_ratio {self.limits['max_ratio']} (zip bomb?)")

    def extract(self, member: str) -> Path:
        """Expand one member into the scratch folder, enforcing the limits on the bytes
        actually produced (not on what the zip header claims)."""
        info = self.infos[member]
        target = self.scratch / PurePosixPath(member).name
        written = 0
        try:
            with self.zip.open(info) as source, target.open("wb") as sink:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    self.expanded += len(chunk)
                    if self.expanded > self.limits["max_uncompressed_bytes"]:
                        raise BadInput(self.label, "zip limits", f"members expand past max_uncompressed_bytes "
                                                                 f"{self.limits['max_uncompressed_bytes']:,} (zip bomb?)")
                    self._check_ratio(member, written, info.compress_size)
                    sink.write(chunk)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as error:  # CRC error, damaged or truncated data
            raise BadInput(self.label, "format", f"member {member} cannot be read: {error}") from None
        return target

    def close(self) -> None:
        self.zip.close()


@contextlib.contextmanager
def open_archive(path: Path, label: str, fmt: dict) -> Iterator[Archive]:
    """An Archive with a scratch folder that is removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="qala-zip-"))
    archive = None
    try:
        archive = Archive(path, label, fmt, scratch)
        yield archive
    finally:
        if archive is not None:
            archive.close()
        shutil.rmtree(scratch, ignore_errors=True)
