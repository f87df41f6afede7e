"""GTFS Schedule (static) zips, read as the GTFS reference defines them
(https://gtfs.org/schedule/reference/).

One landed zip is one batch. The archive is opened with `archive.open_archive` (size limits,
zip bombs, lying headers, path traversal); each GTFS file the contract takes (`member` of a
contract table: agency.txt, stops.txt, routes.txt, trips.txt, stop_times.txt, calendar.txt,
calendar_dates.txt, shapes.txt) is extracted on its own and read by `csv.read_table` (UTF-8,
exact line numbers, records that cannot be split quarantined), its label `<zip>!<member>` so
every message names the member. A member may sit at the top of the zip or inside one folder.

What the reader adds or conforms (documented in the contract):
- `feed_version` on every table: feed_info.txt's feed_version when the zip has one, else
  `sha256:` + the first 16 hex digits of the zip's SHA-256 (the same bytes, the same version);
- stop_times: `arrival_seconds` / `departure_seconds`, the time as seconds after the service
  day's "noon minus 12h" (GTFS times may pass 24:00:00, e.g. 25:35:00 = 92100); NULL when the
  time is empty or not H:MM:SS / HH:MM:SS (the suite's regex then quarantines the record);
- GTFS dates (YYYYMMDD) are given to the row checks as YYYY-MM-DD, so a DATE column types them
  (anything else is passed on as sent and fails the type check: one record quarantined).

Refused as a whole (BadInput): an unreadable, truncated or oversized zip or a zip bomb (from
`archive`), a required GTFS file missing (agency, stops, routes, trips, stop_times), neither
calendar.txt nor calendar_dates.txt present (the reference requires at least one), a required
file that is empty or lacks a required column. Optional files the contract does not take
(feed_info.txt, frequencies.txt, transfers.txt, fares, ...) and files the reference does not
define are tolerated, not loaded, and listed in the notes; unknown columns are tolerated and
listed in `extra_columns`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from pathlib import Path, PurePosixPath

import duckdb

from transforms.contract import Contract, Table
from transforms.errors import BadInput
from transforms.readers import ReadResult, TableRead
from transforms.readers.archive import Archive, open_archive
from transforms.readers.csv import read_table

# Columns the reader derives (not found under their name in the member's header).
FEED_VERSION = "feed_version"
_TIME_COLUMNS = {"arrival_seconds": "arrival_time", "departure_seconds": "departure_time"}
_DATE_COLUMNS = {"calendar": ("start_date", "end_date"), "calendar_dates": ("date",)}
_TIME_REGEX = r"^[0-9]{1,3}:[0-5][0-9]:[0-5][0-9]$"
# The files of the GTFS Schedule reference (so a note can tell "optional, not loaded" from
# "not defined by the reference").
SPEC_FILES = {
    "agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt", "calendar.txt",
    "calendar_dates.txt", "fare_attributes.txt", "fare_rules.txt", "timeframes.txt", "rider_categories.txt",
    "fare_media.txt", "fare_products.txt", "fare_leg_rules.txt", "fare_leg_join_rules.txt",
    "fare_transfer_rules.txt", "areas.txt", "stop_areas.txt", "networks.txt", "route_networks.txt",
    "shapes.txt", "frequencies.txt", "transfers.txt", "pathways.txt", "levels.txt", "location_groups.txt",
    "location_group_stops.txt", "locations.geojson", "booking_rules.txt", "translations.txt",
    "feed_info.txt", "attributions.txt",
}  # fmt: skip
_CALENDARS = ("calendar", "calendar_dates")


def read(con: duckdb.DuckDBPyConnection, path: Path, contract: Contract, label: str) -> ReadResult:
    fmt = contract.format
    with open_archive(path, label, fmt) as archive:
        found = {t.name: archive.find(t.member) for t in contract.tables}
        missing = [t.member for t in contract.tables if t.required and found[t.name] is None]
        if missing:
            raise BadInput(label, "required file",
                           f"the zip has no {', '.join(missing)}: a GTFS feed must contain "
                           f"{', '.join(t.member for t in contract.tables if t.required)}")
        calendars = [t for t in contract.tables if t.name in _CALENDARS]
        if calendars and all(found[t.name] is None for t in calendars):
            raise BadInput(label, "required file",
                           f"the zip has neither {' nor '.join(t.member for t in calendars)}: "
                           "a GTFS feed must contain at least one of them")
        notes: list[str] = []
        version = _feed_version(archive, path, notes)
        result = ReadResult(encoding="utf-8", notes=notes)
        for table in contract.tables:
            member = found[table.name]
            if member is None:
                continue
            read_member = _read_member(con, archive, member, table, label, version, fmt, notes)
            if read_member is not None:
                result.tables[table.name] = read_member
        taken = {m for m in found.values() if m is not None}
        others = sorted(n for n in archive.names if n not in taken and PurePosixPath(n).name != "feed_info.txt")
        optional = [n for n in others if PurePosixPath(n).name in SPEC_FILES]
        unknown = [n for n in others if PurePosixPath(n).name not in SPEC_FILES]
        if optional:
            notes.append(f"optional GTFS files not loaded: {', '.join(optional)}")
        if unknown:
            notes.append(f"files the GTFS reference does not define, not loaded: {', '.join(unknown)}")
    return result


def _feed_version(archive: Archive, path: Path, notes: list[str]) -> str:
    """feed_info.txt's feed_version, else `sha256:` + 16 hex digits of the zip."""
    member = archive.find("feed_info.txt")
    if member is not None:
        data = archive.extract(member)
        try:
            text = data.read_text(encoding="utf-8-sig")
            rows = list(csv.DictReader(io.StringIO(text)))
        except (UnicodeDecodeError, csv.Error) as error:
            notes.append(f"{member} could not be read ({error}); feed_version taken from the zip's SHA-256")
            rows = []
        finally:
            data.unlink(missing_ok=True)
        versions = {(value or "").strip() for r in rows for key, value in r.items()
                    if isinstance(value, str) and (key or "").strip() == "feed_version"} - {""}
        if len(versions) == 1:
            return versions.pop()
        if len(versions) > 1:
            notes.append(f"{member} states {len(versions)} feed versions; feed_version taken from the zip's SHA-256")
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


def _read_member(con: duckdb.DuckDBPyConnection, archive: Archive, member: str, table: Table, label: str,
                 version: str, fmt: dict, notes: list[str]) -> TableRead | None:
    """Extract one member and read it as `table`: a view over the CSV reader's scan of it, with
    GTFS dates as ISO dates, the times' seconds and the feed version added."""
    member_label = f"{label}!{member}"
    extracted = archive.extract(member)
    try:
        if extracted.stat().st_size == 0:
            if table.required:
                raise BadInput(member_label, "format",
                               "empty file (0 bytes): a required GTFS file has at least a header line")
            notes.append(f"{member} is empty (0 bytes): read as a file without records")
            return None
        derived = {FEED_VERSION, *(_TIME_COLUMNS if table.name == "stop_times" else ())}
        source_table = dataclasses.replace(table, columns=tuple(c for c in table.columns if c.name not in derived))
        read, _ = read_table(con, extracted, source_table, member_label, delimiter=",",
                             encodings=fmt.get("encodings", ["utf-8"]), member=member)
        select = [_conform(table, name) for name in read.header]
        header, missing_optional = list(read.header), list(read.missing_optional)
        if table.name == "stop_times":
            for column, time in _TIME_COLUMNS.items():
                if column not in table.column_names:
                    continue
                if time in read.header:
                    select.append(f"{_seconds(time)} as {column}")
                    header.append(column)
                else:
                    missing_optional.append(column)
        select.append(f"{_literal(version)} as {FEED_VERSION}")
        header.append(FEED_VERSION)
        relation = f"gtfs__{table.name}"
        con.execute(f"create or replace temp view {relation} as "
                    f"select {', '.join(select)}, _source_line, _source_member from {read.relation}")
        return TableRead(table=table.name, relation=relation, rejected=read.rejected, header=header,
                         extra_columns=read.extra_columns, missing_optional=missing_optional, padded=read.padded)
    finally:
        extracted.unlink(missing_ok=True)


def _conform(table: Table, name: str) -> str:
    """A GTFS date YYYYMMDD as YYYY-MM-DD (anything else as sent)."""
    column = f'"{name}"'
    if name in _DATE_COLUMNS.get(table.name, ()):
        return (f"case when regexp_matches(trim({column}), '^[0-9]{{8}}$') then substr(trim({column}), 1, 4) || '-' || "
                f"substr(trim({column}), 5, 2) || '-' || substr(trim({column}), 7, 2) else {column} end as {column}")
    return column


def _seconds(time: str) -> str:
    """H:MM:SS (hours may pass 24) as seconds, as text; NULL when not a GTFS time."""
    t = f'trim("{time}")'
    return (f"case when regexp_matches({t}, '{_TIME_REGEX}') then "
            f"(cast(split_part({t}, ':', 1) as integer) * 3600 + cast(split_part({t}, ':', 2) as integer) * 60 "
            f"+ cast(split_part({t}, ':', 3) as integer))::varchar end")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
