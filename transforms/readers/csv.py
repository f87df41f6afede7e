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
    # An empty header field (a spreadsheet's trailing commas) names a column nobody can ask for:
    # it is given a name of its own, and kept out of silver like any column the contract lacks.
    return [name.strip().lstrip("\ufeff") or f"(unnamed column {i})" for i, name in enumerate(header, start=1)]


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

    newlines, crlf, line, separators = _line_ends(path, delimiter)
    if separators >= MAX_FIELDS:
        raise BadInput(label, "format", f"{separators + 1:,} fields in one record (more than {MAX_FIELDS:,}): "
                                        f"not a record of this feed", line=line)
    columns = {name: "VARCHAR" for name in header}
    # A scan per table: the relation returned is a view over it, and an archive's members are
    # read one after another, each view staying valid until its records are taken.
    scan = f"raw_scan__{table.name}"
    con.execute("drop table if exists csv_rejects; drop table if exists csv_reject_scans")
    with _as_utf8(path, encoding, mixed=0 < crlf < newlines) as utf8:
        try:
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
        except duckdb.InvalidInputException as error:  # the parser stopped: the file, not the machinery
            raise BadInput(label, "format", f"not readable as CSV: {str(error).splitlines()[0]}") from None
        renames = {c.source: c.name for c in table.columns if c.source and c.source in header}
        _number_lines(con, utf8, scan, result, renames, member, header, delimiter, newlines)
    _cut_or_padded(con, path, header, result, renames, delimiter, member, newlines)
    return result, encoding


def _ends_inside_a_record(path: Path) -> bool:
    """Whether the file stops without a line break after its last record (RFC 4180 allows it:
    such a record is complete unless something else shows the cut, see `_cut_or_padded`)."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"


# The parser's error types (DuckDB's rejects table) that a cut-off last record shows: a quote
# left open, a UTF-8 character cut in half, fewer fields than the header.
_CUT_EVIDENCE = ("UNQUOTED VALUE", "INVALID ENCODING", "INVALID UNICODE", "MISSING COLUMNS")
_SHORT = "MISSING COLUMNS"


def _cut_or_padded(con: duckdb.DuckDBPyConnection, path: Path, header: list[str], result: TableRead,
                   renames: dict[str, str], delimiter: str, member: str | None, newlines: int) -> None:
    """The records the parser refused for having fewer fields than the header, and a cut last record.

    * A bare file that ends without a line break after a record the parser refused for a quote
      left open, a UTF-8 character cut in half or too few fields was cut off in transfer: that
      record goes to quarantine (rule `format`, reason `truncated: …`). A last record that is whole is complete
      (RFC 4180: the last line break is optional), and an archive's member is never cut off
      unnoticed (the zip's CRC says so): a damaged zip fails as a zip.
    * Every other record with fewer fields than the header omits trailing optional fields (the
      GTFS reference and its canonical validator allow it): it is padded with NULLs and published;
      a required value it omits is quarantined by the row checks, like an empty one.
    """
    short = f"reason like '{_SHORT}%'"
    if member is None and _ends_inside_a_record(path):
        (last_record,), = con.execute(f"select max(_source_line) from (select _source_line from {result.relation} "
                                      f"union all select _source_line from {result.rejected})").fetchall()
        evidence = " or ".join(f"reason like '{kind}%'" for kind in _CUT_EVIDENCE)
        cut = con.execute(f"select reason from {result.rejected} where _source_line = ? and ({evidence})",
                          [last_record]).fetchall()
        if last_record is not None and cut:
            last_line = newlines + 1
            con.execute(f"update {result.rejected} set reason = ? where _source_line = ?",
                        [f"truncated: the file ends inside this record (no line break after line {last_line}; "
                         f"{cut[0][0].split(':')[0].lower()}): the export was cut off", last_record])
    padded = con.execute(f"select _source_line, raw_line from {result.rejected} where {short} "
                         f"order by _source_line").fetchall()
    if not padded:
        return
    import pyarrow as pa

    names = [c for c in header if c in renames or c in result.header]
    positions = [header.index(c) for c in names]
    columns: list[list] = [[] for _ in names]
    for _, raw in padded:
        fields = next(csv.reader(io.StringIO(raw.strip("\r\n"), newline=""), delimiter=delimiter), [])
        for values, position in zip(columns, positions, strict=True):
            values.append(fields[position] or None if position < len(fields) else None)
    arrow = pa.table([pa.array(v, pa.string()) for v in columns] + [pa.array([line for line, _ in padded], pa.int64())],
                     names=[renames.get(c, c) for c in names] + ["_source_line"])
    whole = f"{result.relation}__whole"
    con.execute(f"create or replace temp table {whole} as select * from {result.relation}")
    con.register("csv_padded", arrow)
    try:
        con.execute(f"insert into {whole} by name select *, {_literal(member)} as _source_member from csv_padded")
    finally:
        con.unregister("csv_padded")
    con.execute(f"create or replace temp view {result.relation} as select * from {whole} order by _source_line")
    con.execute(f"delete from {result.rejected} where {short}")
    result.padded = len(padded)


@contextlib.contextmanager
def _as_utf8(path: Path, encoding: str, mixed: bool):
    """The file as UTF-8 with one kind of line end: itself, or a scratch copy (same lines, same
    line numbers). Python's codec transcodes at hundreds of MB/s; DuckDB's encodings extension
    takes 1–13 s just to load. Line ends are made alike (CRLF → LF) only when the file mixes
    them (`mixed`): DuckDB's strict parser takes the first kind it sees for every line."""
    if encoding == "utf-8" and not mixed:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="qala-utf8-") as scratch:
        target = Path(scratch) / path.name
        with path.open("r", encoding=encoding, newline="") as source, target.open("w", encoding="utf-8", newline="") as sink:
            if not mixed:
                shutil.copyfileobj(source, sink, _CHUNK)
            else:
                carry = ""
                while chunk := source.read(_CHUNK):
                    chunk = carry + chunk
                    carry = "\r" if chunk.endswith("\r") else ""
                    sink.write((chunk[:-1] if carry else chunk).replace("\r\n", "\n"))
                sink.write(carry)
        yield target


def _line_ends(path: Path, delimiter: str = ",") -> tuple[int, int, int, int]:
    """(line feeds, of which CR LF, the line with the most delimiters, how many it has)."""
    import numpy as np

    lf = crlf = carry = 0
    widest = (0, 0)
    last = b""
    separator = ord(delimiter)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            data = np.frombuffer(chunk, dtype=np.uint8)
            ends = np.flatnonzero(data == 10)
            seen = np.cumsum(data == separator)
            per_line = np.diff(seen[ends], prepend=0) if ends.size else np.empty(0, dtype=np.int64)
            if per_line.size:
                per_line[0] += carry
                top = int(per_line.argmax())
                if per_line[top] > widest[1]:
                    widest = (lf + top + 1, int(per_line[top]))
                carry = int(seen[-1] - seen[ends[-1]])
            else:
                carry += int(seen[-1]) if seen.size else 0
            lf += int(ends.size)
            crlf += chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
            last = chunk[-1:]
    if carry > widest[1]:
        widest = (lf + 1, carry)
    return lf, crlf, widest[0], widest[1]


# DuckDB's parser files one reject per field beyond the header's, each with the line: a line of
# 100,000 fields takes 80 s, of millions hours. No record of a feed comes near this many fields.
MAX_FIELDS = 4096


def _number_lines(con: duckdb.DuckDBPyConnection, path: Path, scan: str, result: TableRead,
                  renames: dict[str, str], member: str | None, text_columns: list[str], delimiter: str,
                  newlines: int) -> None:
    """Give every record its physical line in the file (header = line 1).

    The scan keeps the file's record order (insertion order is preserved). Records are one
    line each unless a quoted field holds a newline; rejected records and blank lines sit
    between them. DuckDB numbers a rejected record by lines that do not count the newlines
    inside quoted fields but do count blank lines: when a file is not one record per line,
    `_physical_lines` maps those numbers to the file's own lines with one pass of Python's csv
    reader; otherwise they are the file's lines, and the accepted records fill the gaps.
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
    # The scan's columns are the header's names (read_csv was given them); asking duckdb_columns()
    # would walk every attached catalog, the lake's included (~20 ms a file).
    # The contract's columns, renamed from their source names; columns not in the contract stay out.
    known = [c for c in text_columns if c in renames or c in result.header]
    select = ", ".join(f'"{c}" as "{renames.get(c, c)}"' for c in known) or "null as _no_column"
    select_accepted = ", ".join(f'accepted."{c}" as "{renames.get(c, c)}"' for c in known) or "null as _no_column"
    # One line per record and no blank line: the header's and every record's line feed, but the
    # last record's when the file ends without one.
    one_per_line = newlines == records + rejects + (0 if _ends_inside_a_record(path) else 1)
    if one_per_line and rejects == 0:
        # The common case: one record per line, nothing rejected.
        con.execute(f"create or replace temp view {result.relation} as "
                    f"select {select}, rowid + 2 as _source_line, {_literal(member)} as _source_member from {scan}")
        return
    if one_per_line:
        # Rejected records are on their own lines; the accepted ones, in order, on the others.
        lines = f"{scan}__lines"
        con.execute(f"create or replace temp table {lines} as "
                    f"select row_number() over (order by l) - 1 as _order, l as _source_line "
                    f"from range(2, {records + rejects + 2}) t(l) "
                    f"where l not in (select _source_line from {result.rejected})")
        _with_lines(con, result, scan, select, member, lines)
        return
    if _map_lines(con, path, scan, result, select, member, delimiter, records):
        return  # quoted newlines or blank lines: the estimate below would be off
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


def _map_lines(con: duckdb.DuckDBPyConnection, path: Path, scan: str, result: TableRead, select: str,
               member: str | None, delimiter: str, records: int) -> bool:
    """Number the records from `_physical_lines`: the accepted ones are, in order, the records
    that are neither blank nor rejected. False (nothing changed) when Python's reader does not
    see the records DuckDB saw (a malformed file: the SQL estimate then numbers them)."""
    import pyarrow as pa

    try:
        starts, blank = _physical_lines(path, delimiter)
    except (csv.Error, UnicodeDecodeError):
        return False
    refused = {line for (line,) in con.execute(f"select _source_line from {result.rejected}").fetchall()}
    accepted = [starts[n - 1] for n in range(2, len(starts) + 1) if n not in blank and n not in refused]
    if len(accepted) != records or any(n > len(starts) for n in refused):
        return False
    con.execute(f"update {result.rejected} set _source_line = lines.physical from "
                f"(select unnest(?::bigint[]) as logical, unnest(?::bigint[]) as physical) lines "
                f"where {result.rejected}._source_line = lines.logical",
                [sorted(refused), [starts[n - 1] for n in sorted(refused)]])
    lines = f"{scan}__lines"
    con.register("csv_lines", pa.table({"_order": pa.array(range(len(accepted)), pa.int64()),
                                        "_source_line": pa.array(accepted, pa.int64())}))
    try:
        con.execute(f"create or replace temp table {lines} as select * from csv_lines")
    finally:
        con.unregister("csv_lines")
    _with_lines(con, result, scan, select, member, lines)
    return True


def _with_lines(con: duckdb.DuckDBPyConnection, result: TableRead, scan: str, select: str, member: str | None,
                lines: str) -> None:
    """The records of `scan` in order, each with its line from `lines` (_order, _source_line)."""
    con.execute(f"create or replace temp view {result.relation} as "
                f"select {select}, l._source_line, {_literal(member)} as _source_member "
                f"from (select *, rowid as _order from {scan}) s join {lines} l using (_order) order by _order")


def _physical_lines(path: Path, delimiter: str) -> tuple[list[int], set[int]]:
    """For every line as DuckDB counts them (header = 1; a blank line counts, a newline inside a
    quoted field does not), the physical line it starts on; and which of them are blank."""
    csv.field_size_limit(1 << 30)
    starts, blank, previous = [], set(), 0
    with path.open("r", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
        for number, fields in enumerate(reader, start=1):
            starts.append(previous + 1)
            if not fields:
                blank.add(number)
            previous = reader.line_num
    return starts, blank


def _literal(value: str | None) -> str:
    return "null::varchar" if value is None else "'" + value.replace("'", "''") + "'"


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
    newlines: dict[str, int] = {}
    for path, label, day in files:
        try:
            if path.stat().st_size == 0 or detect_encoding(path, ["utf-8"], label) != "utf-8":
                continue
            header = _read_header(path, "utf-8", delimiter, label)
            result = _check_header(header, table, label, delimiter)
        except (BadInput, OSError):
            continue  # read alone, which says why
        lf, crlf, _, separators = _line_ends(path, delimiter)
        if separators >= MAX_FIELDS or 0 < crlf < lf:
            continue  # read alone: refused, or its line ends made alike
        newlines[str(path)] = lf
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
        try:
            con.execute(
                """
                create or replace temp table raw_scan as
                select * from read_csv(?, header = true, auto_detect = false, delim = ?, quote = '"',
                                       escape = '"', columns = ?, store_rejects = true, rejects_table = 'csv_rejects',
                                       rejects_scan = 'csv_reject_scans', strict_mode = true, filename = '_qala_file')
                """,
                [list(by_path), delimiter, {name: "VARCHAR" for name in header}],
            )
        except duckdb.InvalidInputException:
            continue  # a file the parser cannot take as it is (mixed line ends): each is read alone
        records = dict(con.execute("select _qala_file, count(*) from raw_scan group by 1").fetchall())
        rejected = {f for (f,) in con.execute(
            "select distinct s.file_path from csv_rejects r join csv_reject_scans s using (scan_id, file_id)").fetchall()}
        good = []
        for name, (label, day, result) in by_path.items():
            count = records.get(name, 0)
            if name in rejected or newlines[name] != count + 1 or _ends_inside_a_record(Path(name)):
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
