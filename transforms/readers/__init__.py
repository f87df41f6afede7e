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

Relations may be overwritten by the next read: the loader copies them at once. A reader
raises `transforms.errors.BadInput` (naming the file, the member or line, and the rule) when
the file as a whole cannot be read; records of kinds the contract does not take (a FHIR
resource type without a table) are counted in `skipped`, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TableRead:
    table: str
    relation: str
    rejected: str | None = None
    header: list[str] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)


@dataclass
class ReadResult:
    encoding: str | None
    tables: dict[str, TableRead] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def reader(format_type: str) -> Callable:
    """The read function of a contract's `format.type` (imported when first needed)."""
    import importlib

    modules = {
        "csv": "csv",
        "jsonl": "json",
        "json": "json",
        "open311": "json",
        "gtfs_static": "gtfs_static",
        "gtfs_rt": "gtfs_rt",
        "fhir_bulk": "fhir_bulk",
        "oneroster": "oneroster",
    }
    if format_type not in modules:
        raise ValueError(f"no reader for format {format_type!r} (known: {', '.join(sorted(modules))})")
    return importlib.import_module(f"transforms.readers.{modules[format_type]}").read
