"""One reader per source format. A reader turns one landed file into two temp tables on a
DuckDB connection: `raw` (every record, every column as text, with `_source_line`) and
`rejected` (records that could not be split into fields: `_source_line`, `raw_line`, `reason`).
It raises BadInput when the file as a whole cannot be read."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReadResult:
    encoding: str
    header: list[str]
    extra_columns: list[str] = field(default_factory=list)
    missing_optional: list[str] = field(default_factory=list)
