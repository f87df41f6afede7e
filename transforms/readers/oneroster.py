"""1EdTech OneRoster CSV sets (the 1.2 CSV binding; 1.1 CSV tables), one zip per landed file.

A OneRoster CSV set is a zip of CSV files described by its `manifest.csv` (`propertyName,value`:
`manifest.version` 1.0, `oneroster.version`, `file.<name>` = bulk | delta | absent for each
file of the binding, `source.systemName`, `source.systemCode`). The manifest drives the read:

* a contract table (`member` users.csv, ...) is read exactly when the manifest marks its file
  `bulk` or `delta`; the file must then be in the zip, else the zip is refused (the set is
  inconsistent). The same holds for files the contract does not take: those are counted per
  file in `skipped` (data lines), not loaded;
* a file marked `absent`, left blank (the mode of a file the set does not carry), or not listed,
  is not part of the delivery: it is not read even if the zip holds it (noted); files the
  manifest does not describe are noted too;
* a member without records (empty, or a header alone) is noted, never refused, whatever its
  header: it holds nothing to read, and the other members load;
* every record carries its file's mode in `delivery_mode` (bulk: the file replaces what the
  receiver holds; delta: records changed since the last delivery, with `status` active |
  tobedeleted and `dateLastModified`). Delta records that lack either are counted in a note;
* vendor extension columns (`ext_*` in 1.1, `metadata.*` in 1.2) are kept out of silver and
  named in a note; other columns the contract lacks are noted as schema drift.

Versions: `oneroster.version` 1.2 or 1.1. The two differ, for the files taken here, only in
users.csv and roles.csv: 1.1 users.csv carries `role` and `orgSourcedIds` (required: a 1.1
users.csv without them is refused), 1.2 moves them to roles.csv and adds columns to users.csv.
The contract declares both versions' columns; a column the file lacks is NULL.

Members are read by `csv.read_table` (UTF-8, exact line numbers, records that cannot be split
quarantined, a record omitting trailing fields padded with NULLs, a last record without its
line break complete: a member cannot be cut off unnoticed, the zip's CRC says so), labelled
`<zip>!<member>` so every message names the member; the zip itself is opened by
`archive.open_archive` (size limits, zip bombs, lying headers, path traversal). A record's bad
date or enum is quarantined with its rule, never the zip (a column whose every value fails its
type is noted, not blocking: load/check.py). Refused as a whole (BadInput): an unreadable or
oversized zip, no manifest.csv, a manifest that is not `propertyName,value`, names a property
twice, states no or another OneRoster version, or a mode other than bulk/delta/absent, a file
marked bulk/delta that the zip lacks, and a taken member with records that lacks a required
column.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path, PurePosixPath

import duckdb

from transforms.contract import Contract, Table
from transforms.errors import BadInput
from transforms.readers import ReadResult, TableRead
from transforms.readers.archive import Archive, open_archive
from transforms.readers.csv import read_table

MANIFEST = "manifest.csv"
MODES = ("bulk", "delta", "absent")
DELIVERY_MODE = "delivery_mode"  # derived from the manifest, not found in the member
# The data files each version's manifest lists (1.1 CSV tables §2; 1.2 CSV binding §2).
VERSION_FILES = {
    "1.1": ("academicSessions", "categories", "classes", "classResources", "courses", "courseResources",
            "demographics", "enrollments", "lineItems", "orgs", "resources", "results", "users"),
    "1.2": ("academicSessions", "categories", "classes", "classResources", "courses", "courseResources",
            "demographics", "enrollments", "lineItemLearningObjectiveIds", "lineItems", "lineItemScoreScales",
            "orgs", "resources", "resultLearningObjectiveIds", "results", "resultScoreScales", "roles",
            "scoreScales", "userProfiles", "userResources", "users"),
}  # fmt: skip
# Header columns a version requires beyond what the contract requires of every version.
VERSION_REQUIRED = {"1.1": {"users.csv": ("orgSourcedIds", "role")}, "1.2": {}}
_MAX_MANIFEST_BYTES = 1 << 16
# Columns a vendor adds (1.1 §3.4 "ext_", 1.2 CSV binding §2.1 "metadata."): not the binding's, kept
# out of silver and named in the notes (not schema drift).
EXTENSIONS = ("ext_", "metadata.")


def read(con: duckdb.DuckDBPyConnection, path: Path, contract: Contract, label: str) -> ReadResult:
    fmt = contract.format
    with open_archive(path, label, fmt) as archive:
        version, modes, notes = _manifest(archive, label)
        result = ReadResult(encoding="utf-8", notes=notes)
        delivered = {f"{name}.csv": mode for name, mode in modes.items() if mode != "absent"}
        members = {}
        for name, mode in delivered.items():
            member = archive.find(name)
            if member is None:
                raise BadInput(label, "manifest", f"manifest.csv marks {name} as {mode}, but the zip has no {name}")
            members[name] = member
        taken = {t.member: t for t in contract.tables}
        for name, member in members.items():
            if name in taken:
                read_member = _read_member(con, archive, member, taken[name], label, delivered[name], version, fmt,
                                           notes)
                if read_member is not None:
                    result.tables[taken[name].name] = read_member
                    _check_delivery(con, read_member, name, delivered[name], notes)
            else:
                result.skipped[member] = _data_lines(archive, member)
        listed = {f"{name}.csv" for name in modes}
        for member in archive.names:
            name = PurePosixPath(member).name
            if name == MANIFEST or member in members.values():
                continue
            if name in listed:
                notes.append(f"{member} is in the zip but manifest.csv marks it absent: not read")
            else:
                notes.append(f"{member} is not described by manifest.csv: not read")
    return result


def _manifest(archive: Archive, label: str) -> tuple[str, dict[str, str], list[str]]:
    """The set's OneRoster version and each listed file's mode (name without .csv → mode)."""
    member = archive.find(MANIFEST)
    if member is None:
        raise BadInput(label, "manifest", "the zip has no manifest.csv: a OneRoster CSV set is described by its "
                                          "manifest (propertyName,value: oneroster.version, file.<name> bulk|delta|absent)")
    where = f"{label}!{member}"
    if archive.infos[member].file_size > _MAX_MANIFEST_BYTES:
        raise BadInput(where, "manifest", f"{archive.infos[member].file_size:,} bytes: not a manifest "
                                          f"(a OneRoster manifest is a few dozen lines)")
    extracted = archive.extract(member)
    try:
        text = extracted.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadInput(where, "encoding", f"not valid UTF-8 ({error.reason}), the binding's encoding") from None
    finally:
        extracted.unlink(missing_ok=True)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise BadInput(where, "manifest", f"not a CSV file: {error}") from None
    if not rows or [h.strip() for h in rows[0]] != ["propertyName", "value"]:
        raise BadInput(where, "manifest", "the header must be 'propertyName,value'", line=1)
    properties: dict[str, tuple[str, int]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(v.strip() for v in row):
            continue
        if len(row) != 2:
            raise BadInput(where, "manifest", f"{len(row)} fields; a manifest line is propertyName,value", line=line)
        name, value = row[0].strip(), row[1].strip()
        if name in properties:
            raise BadInput(where, "manifest", f"{name} is stated twice (first on line {properties[name][1]})", line=line)
        properties[name] = (value, line)

    version, version_line = properties.get("oneroster.version", (None, None))
    if version is None:
        raise BadInput(where, "manifest", "no oneroster.version: the set's OneRoster version must be stated")
    if version not in VERSION_FILES:
        raise BadInput(where, "manifest", f"oneroster.version {version!r}: this reader takes OneRoster "
                                          f"{' and '.join(sorted(VERSION_FILES))} CSV sets", line=version_line)
    notes = []
    manifest_version = properties.get("manifest.version", ("", None))[0]
    if manifest_version != "1.0":
        notes.append(f"manifest.csv states manifest.version {manifest_version or '(none)'!r}, the binding's is '1.0'")
    modes = {}
    for name, (value, line) in properties.items():
        if not name.startswith("file."):
            continue
        mode = value.lower()
        if not mode:
            notes.append(f"manifest.csv leaves {name} blank (line {line}): taken as absent")
            mode = "absent"
        if mode not in MODES:
            raise BadInput(where, "manifest", f"{name} is {value!r}; a file's mode is bulk, delta or absent", line=line)
        modes[name.removeprefix("file.")] = mode
    unlisted = [f for f in VERSION_FILES[version] if f not in modes]
    if unlisted:
        notes.append(f"manifest.csv does not list {', '.join(unlisted)} (OneRoster {version} lists every file): "
                     f"taken as absent")
    return version, modes, notes


def _read_member(con: duckdb.DuckDBPyConnection, archive: Archive, member: str, table: Table, label: str,
                 mode: str, version: str, fmt: dict, notes: list[str]) -> TableRead | None:
    """Extract one member and read it as `table`: a view over the CSV reader's scan of it. A
    member without records (empty, or a header alone) holds nothing to read or refuse, whatever
    its header: it is noted, and never stops the other members."""
    member_label = f"{label}!{member}"
    extracted = archive.extract(member)
    try:
        if _records(extracted) == 0:
            notes.append(f"{table.member} is marked bulk but holds no records: as a bulk it would empty the table"
                         if mode == "bulk" else f"{table.member} is a delta without records: nothing changed")
            return None
        source_table = dataclasses.replace(table, columns=tuple(c for c in table.columns if c.name != DELIVERY_MODE))
        read, _ = read_table(con, extracted, source_table, member_label, delimiter=",",
                             encodings=fmt.get("encodings", ["utf-8"]), member=member)
        needed = VERSION_REQUIRED[version].get(table.member, ())
        sources = {c.source or c.name: c.name for c in table.columns}
        missing = [h for h in needed if sources[h] not in read.header]
        if missing:
            raise BadInput(member_label, "required columns", f"OneRoster {version} requires column(s) "
                                                             f"{', '.join(missing)} in {table.member}", line=1)
        extensions = [c for c in read.extra_columns if c.startswith(EXTENSIONS)]
        if extensions:
            notes.append(f"{member}: vendor extension column(s) kept out of silver: {', '.join(extensions)}")
        relation = f"oneroster__{table.name}"
        columns = ", ".join(f'"{name}"' for name in read.header)
        con.execute(f"create or replace temp view {relation} as "
                    f"select {columns + ', ' if columns else ''}'{mode}' as {DELIVERY_MODE}, _source_line, _source_member "
                    f"from {read.relation}")
        return TableRead(table=table.name, relation=relation, rejected=read.rejected,
                         header=[*read.header, DELIVERY_MODE],
                         extra_columns=[c for c in read.extra_columns if c not in extensions],
                         missing_optional=read.missing_optional, padded=read.padded)
    finally:
        extracted.unlink(missing_ok=True)


def _records(path: Path) -> int:
    """Whether a member holds any record: 0 when it is empty or a header alone (blank lines do not
    count), else 1 (it is read, and counted, by the CSV reader)."""
    with path.open("rb") as handle:
        handle.readline()  # the header
        return int(any(line.strip() for line in handle))


def _check_delivery(con: duckdb.DuckDBPyConnection, read: TableRead, name: str, mode: str, notes: list[str]) -> None:
    """What the binding asks of a delta that is not a rule on one column: a delta record states
    status and dateLastModified. (A bulk or delta without records is noted by `_read_member`.)"""
    if mode == "delta":
        present = [c for c in ("status", "date_last_modified") if c in read.header]
        if len(present) < 2:
            notes.append(f"{name} is a delta without a status or dateLastModified column")
            return
        unstated, = con.execute(
            f"select count(*) from {read.relation} "
            f"where nullif(trim(status), '') is null or nullif(trim(date_last_modified), '') is null").fetchone()
        if unstated:
            notes.append(f"{name}: {unstated} delta record(s) without status or dateLastModified, "
                         f"which a delta must state")


def _data_lines(archive: Archive, member: str) -> int:
    """Data lines of a file the contract does not take (lines after the header), for `skipped`."""
    extracted = archive.extract(member)
    try:
        lines, last = 0, b"\n"
        with extracted.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                lines += chunk.count(b"\n")
                last = chunk[-1:]
        lines += last != b"\n"  # a last line without its line end
        return max(lines - 1, 0)
    finally:
        extracted.unlink(missing_ok=True)
