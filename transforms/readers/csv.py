"""CSV exports, UTF-8 or Windows-1251 (detected), parsed by DuckDB's CSV reader.

Fields are read as text and typed later by the row checks, so one bad value quarantines one
record instead of failing the file. Records with the wrong number of fields are kept by
DuckDB's rejects table and quarantined with their physical line number.
"""

from __future__ import annotations

import codecs
import contextlib
import shutil
import tempfile
import csv
import io
from pathlib import Path

import duckdb

from transforms.contract import Contract, Table
from transforms.errors import BadInput
from transforms.readers import ReadResult, TableRead

_CHUNK = 1 << 20
_OTHER_DELIMITERS = (";", "\t", "|", ",")


def detect_encoding(path: Path, allowed: list[str], label: str) -> str:
    """UTF-8 if the whole file decodes as UTF-8, else the first allowed legacy encoding."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        first = handle.read(_CHUNK)
        if b"\x00" in first:
            raise BadInput(label, "format", "binary file (NUL bytes): not a CSV text export")
        chunk = first
        try:
            while chunk:
                decoder.decode(chunk)
                chunk = handle.read(_CHUNK)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError as error:
            legacy = [e for e in allowed if e != "utf-8"]
            if not legacy:
                raise BadInput(label, "encoding", f"not valid UTF-8 ({error.reason}) and the contract allows no other encoding") from None
    encoding = legacy[0]
    try:
        path.read_bytes().decode(encoding)
    except UnicodeDecodeError as error:
        raise BadInput(label, "encoding", f"neither UTF-8 nor {encoding}: byte {error.start}") from None
    return encoding


def _read_header(path: Path, encoding: str, delimiter: str, label: str) -> list[str]:
    with path.open("r", encoding=encoding, newline="") as handle:
        first_line = handle.readline()
    if not first_line.strip():
        raise BadInput(label, "header", "the first line is empty: no header row", line=1)
    header = next(csv.reader(io.StringIO(first_line), delimiter=delimiter))
    return [name.strip().lstrip("\ufeff") for name in header]


def _check_header(header: list[str], table: Table, label: str, delimiter: str) -> TableRead:
    sources = {c.source or c.name: c for c in table.columns}
    missing_required = [name for name, c in sources.items() if c.required and name not in header]
    if missing_required:
        hint = ""
        if len(header) == 1:
            found = [d for d in _OTHER_DELIMITERS if d != delimiter and d in header[0]]
            if found:
                hint = f" The header has one field containing {found[0]!r}: wrong delimiter (the contract says {delimiter!r})."
        raise BadInput(label, "required columns", f"required column(s) missing from the header: {', '.join(missing_required)}.{hint}", line=1)
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise BadInput(label, "header", f"column(s) named twice in the header: {', '.join(duplicated)}", line=1)
    return TableRead(
        table=table.name, relation=f"raw__{table.name}", rejected=f"rejected__{table.name}",
        header=[sources[h].name for h in header if h in sources],
        extra_columns=[h for h in header if h not in sources],
        missing_optional=[c.name for name, c in sources.items() if not c.required and name not in header],
    )


def read(con: duckdb.DuckDBPyConnection, path: Path, contract: Contract, label: str) -> ReadResult:
    """A one-table CSV feed: the landed file is the table."""
    fmt = contract.format
    table_read, encoding = read_table(con, path, contract.single, label, delimiter=fmt.get("delimiter", ","),
                                      encodings=fmt.get("encodings", ["utf-8"]))
    return ReadResult(encoding=encoding, tables={table_read.table: table_read})


def read_table(con: duckdb.DuckDBPyConnection, path: Path, table: Table, label: str, *, delimiter: str = ",",
               encodings: list[str] | tuple[str, ...] = ("utf-8",), member: str | None = None,
               empty_ok: bool = False) -> tuple[TableRead, str]:
    """Read one CSV file (a plain landed file, or a member extracted from an archive, in which
    case `label` names the member and `member` is recorded on every record) as `table`.
    Returns the relations and the detected encoding."""
    if path.stat().st_size == 0:
        raise BadInput(label, "format", "empty file (0 bytes)")
    encoding = detect_encoding(path, list(encodings), label)
    header = _read_header(path, encoding, delimiter, label)
    result = _check_header(header, table, label, delimiter)

    columns = {name: "VARCHAR" for name in header}
    # A scan per table: the relation returned is a view over it, and an archive's members are
    # read one after another, each view staying valid until its records are taken.
    scan = f"raw_scan__{table.name}"
    con.execute("drop table if exists csv_rejects; drop table if exists csv_reject_scans")
    with _as_utf8(path, encoding) as utf8:
        con.execute(
        f"""
        create or replace temp table {scan} as
        select * from read_csv(?, header = true, auto_detect = false, delim = ?, quote = '"',
                               escape = '"', columns = ?, store_rejects = true,
                               rejects_table = 'csv_rejects', rejects_scan = 'csv_reject_scans',
                               strict_mode = true)
        """,
            [str(utf8), delimiter, columns],
        )
    renames = {c.source: c.name for c in table.columns if c.source and c.source in header}
    _number_lines(con, path, scan, result, renames, member, header)
    _quarantine_a_cut_last_record(con, path, encoding, result, member)
    return result, encoding


def _ends_inside_a_record(path: Path) -> bool:
    """Whether the file stops without a line break after its last record: a transfer that died."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"


def _quarantine_a_cut_last_record(con: duckdb.DuckDBPyConnection, path: Path, encoding: str, result: TableRead,
                                  member: str | None) -> None:
    """An export that ends inside a record (no line break after it) was cut off: its last record
    may look whole (a name cut between two letters) but cannot be trusted, so it goes to
    quarantine with rule `truncated`, unless the parser already refused it."""
    if not _ends_inside_a_record(path):
        return
    (last_record,), = con.execute(f"select max(_source_line) from {result.relation}").fetchall()
    if last_record is None:
        return
    (refused,), = con.execute(f"select count(*) from {result.rejected} where _source_line >= ?",
                              [last_record]).fetchall()
    if refused:
        return
    last_line = _count_newlines(path) + 1
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        tail = handle.read().rsplit(b"\n", 1)[-1].decode(encoding, errors="replace")
    whole = f"{result.relation}__whole"  # the records as read (a cut file is rare: copied, not renamed)
    con.execute(f"create or replace temp table {whole} as select * from {result.relation}")
    con.execute(f"create or replace temp view {result.relation} as select * from {whole} "
                f"where _source_line <> {int(last_record)}")
    con.execute(f"insert into {result.rejected} values (?, ?, ?, ?)",
                [int(last_record), member, tail,
                 f"truncated: the file ends inside this record (no line break after line {last_line}): "
                 f"the export was cut off"])


@contextlib.contextmanager
def _as_utf8(path: Path, encoding: str):
    """The file as UTF-8: itself, or a transcoded scratch copy (same lines, same line numbers).
    Python's codec does it at hundreds of MB/s; DuckDB's encodings extension takes 1–13 s just
    to load."""
    if encoding == "utf-8":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="qala-utf8-") as scratch:
        target = Path(scratch) / path.name
        with path.open("r", encoding=encoding, newline="") as source, target.open("w", encoding="utf-8", newline="") as sink:
            shutil.copyfileobj(source, sink, _CHUNK)
        yield target


def _number_lines(con: duckdb.DuckDBPyConnection, path: Path, scan: str, result: TableRead,
                  renames: dict[str, str], member: str | None, text_columns: list[str]) -> None:
    """Give every record its physical line in the file (header = line 1).

    The scan keeps the file's record order (insertion order is preserved). Records are one
    line each unless a quoted field holds a newline, and rejected records sit between them.
    """
    con.execute(
        """
        create or replace temp table {rejected} as
        select line as _source_line, {member} as _source_member, any_value(csv_line) as raw_line,
               arg_min(error_type || ': ' || error_message, column_idx) as reason
        from csv_rejects group by line
        """.format(rejected=result.rejected, member=_literal(member))
    )
    records, rejects = con.execute(f"select (select count(*) from {scan}), (select count(*) from {result.rejected})").fetchone()
    newlines = _count_newlines(path)
    # The scan's columns are the header's names (read_csv was given them); asking duckdb_columns()
    # would walk every attached catalog, the lake's included (~20 ms a file).
    # The contract's columns, renamed from their source names; columns not in the contract stay out.
    known = [c for c in text_columns if c in renames or c in result.header]
    select = ", ".join(f'"{c}" as "{renames.get(c, c)}"' for c in known) or "null as _no_column"
    select_accepted = ", ".join(f'accepted."{c}" as "{renames.get(c, c)}"' for c in known) or "null as _no_column"
    if newlines in (records + rejects, records + rejects + 1) and rejects == 0:
        # The common case: one record per line, nothing rejected.
        con.execute(f"create or replace temp view {result.relation} as "
                    f"select {select}, rowid + 2 as _source_line, {_literal(member)} as _source_member from {scan}")
        return
    inner_newlines = " + ".join(
        f"coalesce(length(\"{c}\") - length(replace(\"{c}\", chr(10), '')), 0)" for c in text_columns
    )
    # Start line of each record counting only accepted records, then shifted past every
    # rejected record that physically precedes it (an as-of join on positions).
    con.execute(
        f"""
        create or replace temp view {result.relation} as
        with accepted as (
            select *, rowid as _order, 2 + rowid + coalesce(sum({inner_newlines}) over (
                       order by rowid rows between unbounded preceding and 1 preceding), 0) as _start
            from {scan}
        ),
        gaps as (
            select _source_line
                       - coalesce(sum(1 + length(raw_line) - length(replace(raw_line, chr(10), ''))) over (
                             order by _source_line rows between unbounded preceding and 1 preceding), 0)
                       as accepted_position,
                   sum(1 + length(raw_line) - length(replace(raw_line, chr(10), ''))) over (
                       order by _source_line) as shift
            from {result.rejected}
        )
        select {select_accepted}, accepted._start + coalesce(gaps.shift, 0) as _source_line,
               {_literal(member)} as _source_member
        from accepted asof left join gaps on accepted._start >= gaps.accepted_position
        order by accepted._order
        """
    )


def _literal(value: str | None) -> str:
    return "null::varchar" if value is None else "'" + value.replace("'", "''") + "'"


def _count_newlines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            count += chunk.count(b"\n")
    return count


def read_many(con: duckdb.DuckDBPyConnection, files: list[tuple[Path, str, str]], contract: Contract,
              relation: str = "many_csv") -> dict[str, tuple[ReadResult, int]]:
    """Many landed files of a one-table CSV feed in ONE DuckDB scan, for the common case.

    `files` are (path, label, landing day). A file is taken here when it is UTF-8, its header
    passes the contract, it shares that header with other files, and it parsed as one record per
    line with nothing rejected; its records land in `relation` with their lineage
    (`_source_file` = label, `_landing_date`, `_source_line`, `_source_member` NULL). Returns
    {label: (ReadResult, records)} for those files. Every other file (a legacy encoding, a header
    of its own, a bad header, a rejected record, a quoted newline) is left out, for `read` to
    read alone and report exactly: same records, same lines, same errors as reading it alone.
    Reading files one by one costs ~10 small statements each; a day of the per-region feeds
    is 20 files.
    """
    fmt, table = contract.format, contract.single
    delimiter = fmt.get("delimiter", ",")
    groups: dict[tuple[str, ...], list[tuple[Path, str, str, TableRead]]] = {}
    for path, label, day in files:
        try:
            if path.stat().st_size == 0 or detect_encoding(path, ["utf-8"], label) != "utf-8":
                continue
            header = _read_header(path, "utf-8", delimiter, label)
            result = _check_header(header, table, label, delimiter)
        except (BadInput, OSError):
            continue  # read alone, which says why
        groups.setdefault(tuple(header), []).append((path, label, day, result))
    renames = {c.source: c.name for c in table.columns if c.source}
    taken: dict[str, tuple[ReadResult, int]] = {}
    columns = ", ".join(f'"{c.name}" varchar' for c in table.columns)
    con.execute(f"create or replace temp table {relation} ({columns}, _source_line bigint, _source_member varchar, "
                f"_source_file varchar, _landing_date date)")
    for header, group in groups.items():
        known = [c for c in header if c in renames or c in group[0][3].header]
        if len(group) < 2 or not known:
            continue  # read alone
        by_path = {str(path): (label, day, result) for path, label, day, result in group}
        con.execute("drop table if exists csv_rejects; drop table if exists csv_reject_scans")
        con.execute(
            """
            create or replace temp table raw_scan as
            select * from read_csv(?, header = true, auto_detect = false, delim = ?, quote = '"',
                                   escape = '"', columns = ?, store_rejects = true, rejects_table = 'csv_rejects',
                                   rejects_scan = 'csv_reject_scans', strict_mode = true, filename = '_qala_file')
            """,
            [list(by_path), delimiter, {name: "VARCHAR" for name in header}],
        )
        records = dict(con.execute("select _qala_file, count(*) from raw_scan group by 1").fetchall())
        rejected = {f for (f,) in con.execute(
            "select distinct s.file_path from csv_rejects r join csv_reject_scans s using (scan_id, file_id)").fetchall()}
        good = []
        for name, (label, day, result) in by_path.items():
            count = records.get(name, 0)
            if name in rejected or _count_newlines(Path(name)) != count + 1 or _ends_inside_a_record(Path(name)):
                # rejected records, quoted newlines, or a file cut off inside its last record:
                # exact lines and the cut come from reading it alone
                continue
            good.append((name, label, day))
            taken[label] = (ReadResult(encoding="utf-8", tables={table.name: result}), count)
        if not good:
            continue
        select = ", ".join(f'"{c}" as "{renames.get(c, c)}"' for c in known)
        lineage = ", ".join(f"({_literal(n)}, {_literal(label)}, date '{day}')" for n, label, day in good)
        con.execute(
            f"""
            insert into {relation} by name
            select {select}, rowid - min(rowid) over (partition by _qala_file) + 2 as _source_line,
                   null::varchar as _source_member, f.label as _source_file, f.day as _landing_date
            from raw_scan join (values {lineage}) f(path, label, day) on raw_scan._qala_file = f.path
            """
        )
    return taken
