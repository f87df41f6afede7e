"""One reader per source format: `read(con, path, contract, label) -> ReadResult`.

A reader turns ONE landed file (a CSV, a JSON file, a zip, a FHIR Bulk manifest, ...) into,
for each contract table the file holds, two temp relations on the DuckDB connection:

* `TableRead.relation`: every record, one row each, with each contract column the source has
  as VARCHAR (named as in the contract; typing is the row checks' job, so one bad value
  quarantines one record), plus `_source_line BIGINT` (the record's physical line, 1-based,
  header = line 1 in CSV) and `_source_member VARCHAR` (the member of an archive or export the
  record came from; NULL for a plain file);
* `TableRead.rejected` (or None): records that could not even be split into fields, with
  `_source_line, _source_member, raw_line, reason`.

Relations may be overwritten by the next read: the loader copies them at once. A reader may
give its records as an Arrow table instead (`TableRead.arrow` with `select`), which the loader
gathers over a batch's files and turns into text in one statement (GTFS-Realtime: 72 small
files a day). A format may also have `read_many(con, files, contract, relation)`, which scans
many files at once for the common case and leaves the rest to `read` (CSV: one file per region
a day). A reader
raises `transforms.errors.BadInput` (naming the file, the member or line, and the rule) when
the file as a whole cannot be read; records of kinds the contract does not take (a FHIR
resource type without a table) are counted in `skipped`, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path


@dataclass
class TableRead:
    table: str
    relation: str | None
    rejected: str | None = None
    header: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)
    # Records with fewer fields than the header, read with NULLs for the trailing fields they omit.
    padded: int = 0
    # Instead of `relation`: the records as an Arrow table, and the SQL select list that turns
    # its columns into the contract's text columns (the loader gathers the Arrow tables of a
    # batch's files and runs the select once, not once per file).
    arrow: object | None = None
    select: str | None = None


@dataclass
class ReadResult:
    encoding: str | None
    tables: dict[str, TableRead] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


_MODULES = {
    "csv": "csv",
    "jsonl": "json",
    "json": "json",
    "open311": "json",
    "gtfs_static": "gtfs_static",
    "gtfs_rt": "gtfs_rt",
    "fhir_bulk": "fhir_bulk",
    "oneroster": "oneroster",
}


def module_name(format_type: str) -> str:
    """The module that reads a contract's `format.type`."""
    if format_type not in _MODULES:
        raise ValueError(f"no reader for format {format_type!r} (known: {', '.join(sorted(_MODULES))})")
    return f"transforms.readers.{_MODULES[format_type]}"


def _module(format_type: str):
    import importlib

    return importlib.import_module(module_name(format_type))


def reader(format_type: str) -> Callable:
    """The read function of a contract's `format.type` (imported when first needed)."""
    return _module(format_type).read


def many_reader(format_type: str) -> Callable | None:
    """The format's `read_many` (many files in one scan, for the common case), if it has one."""
    return getattr(_module(format_type), "read_many", None)


@dataclass
class Landed:
    """The files of landing folders, sorted by what the feed does with each: every file is in
    exactly one of the three."""

    batches: list[Path] = field(default_factory=list)  # read, each with its own ledger row
    members: dict[Path, Path] = field(default_factory=dict)  # read as part of a batch file: file → it
    unread: dict[Path, str] = field(default_factory=dict)  # not read by this feed: file → why


def sort_landed(contract, files: list[Path]) -> Landed:
    """What the feed does with each landed file: a symbolic link or a special file is never read;
    then its format's `sort_landed` when it has one (a FHIR export's manifest reads the files it
    lists), else every file the contract's `format.files` glob matches is a batch file, and any
    other file (a stray `desktop.ini`, a `.part` left by a transfer) is not read."""
    landed = Landed()
    regular = []
    for path in files:
        if path.is_symlink():
            landed.unread[path] = "a symbolic link: never followed (land the file itself)"
        elif not path.is_file():
            landed.unread[path] = "not a regular file (a pipe, socket or device): never read"
        else:
            regular.append(path)
    sort = getattr(_module(contract.format["type"]), "sort_landed", None)
    if sort is not None:
        sorted_ = sort(contract, regular)
        sorted_.unread.update(landed.unread)
        return sorted_
    pattern = contract.format.get("files", "*")
    for path in regular:
        if fnmatchcase(path.name, pattern):
            landed.batches.append(path)
        else:
            landed.unread[path] = f"not a file this feed reads (its contract takes {pattern})"
    return landed
