"""JSON exports, parsed by DuckDB's JSON functions: JSON Lines, and JSON documents that hold an
array of records (Open311 GeoReport v2 service requests, or any `json` array export).

Format types (the contract's `format.type`):

* `jsonl` — JSON Lines / NDJSON (https://jsonlines.org): one JSON object per line, UTF-8. The
  file is read as lines of text, so a line that is not JSON, or not an object, is ONE rejected
  record with its line number and the rest of the file loads. Blank lines are not records (the
  NDJSON spec lets parsers skip them); a CR before the LF is JSON whitespace. A file in which no
  line at all is a JSON object is not JSON Lines and is refused.
* `open311` — the response of GeoReport v2 "GET Service Requests"
  (https://wiki.open311.org/GeoReport_v2/#get-service-requests), JSON format: an array of
  request objects. Some servers wrap the array as `{"service_requests": [...]}`: both are read.
  A file that is a GeoReport error response (`[{"code": 403, "description": "..."}]`) is refused
  naming the server's errors.
* `json` — a JSON document that is an array of record objects, or, when the contract's format
  states `array_key: <key>`, an object holding that array under `<key>`.

A document that is not valid JSON is refused as a whole, naming the line and column where the
parser stopped. Every format: the file must be UTF-8 (RFC 8259 §8.1); a byte order mark is
ignored; an element or line that is not an object is a rejected record.

Fields: each contract column's `source` is a DuckDB JSON path into the record object (default
`$.<column name>`, e.g. `$.location.lat` for a nested field). Values are taken as text
(`json_extract_string`: a string without its quotes, a number or boolean as written, null as
NULL, a nested object or array as its JSON text); typing is the row checks' job. Top-level keys
that no column reads are tolerated and listed in `TableRead.extra_columns`.

`_source_line`: JSON Lines — the record's physical line (1-based). Documents — the line on which
the record's object starts, when every record starts on a line of its own (one request per
line, or pretty-printed); when several records share a line (a compact one-line response) it is
the record's 1-based position in the array instead, and the read says so in its notes.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import duckdb

from transforms.contract import Column, Contract, Table
from transforms.errors import BadInput
from transforms.readers import ReadResult, TableRead
from transforms.readers.archive import check_size

_CHUNK = 1 << 20
OPEN311_ARRAY_KEY = "service_requests"
# `$.name` or `$."any name"`: the top-level key a column's JSON path starts with.
_TOP_KEY = re.compile(r'^\$\.(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*))')
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# DuckDB's message for a document it cannot parse (the input it quotes is never passed on: it
# may hold personal data).
_PARSE_ERROR = re.compile(r"Malformed JSON at byte (\d+) of input: (.*?)\.?\s+Input:", re.S)


def read(con: duckdb.DuckDBPyConnection, path: Path, contract: Contract, label: str) -> ReadResult:
    fmt = contract.format
    table = contract.single
    check_size(path, label, fmt, allow_empty=fmt["type"] == "jsonl")
    if fmt["type"] == "jsonl" and path.stat().st_size == 0:
        # JSON Lines with no line: a valid file with zero records (a quiet day of a small city's
        # cameras); the contract's min_rows decides whether that is acceptable.
        columns = ", ".join(f'null::varchar as "{c.name}"' for c in table.columns)
        relation = f"raw__{table.name}"
        # A view, as the non-empty path makes (an earlier file's view must be replaceable, and back).
        con.execute(f"create or replace temp view {relation} as select {columns}, null::bigint as _source_line, "
                    f"null::varchar as _source_member where false")
        return ReadResult(encoding="utf-8", tables={table.name: TableRead(table=table.name, relation=relation)})
    with path.open("rb") as handle:
        if b"\x00" in handle.read(_CHUNK):
            raise BadInput(label, "format", "binary file (NUL bytes): not a JSON text export")
    try:
        con.execute("create or replace temp table json_text as select content from read_text(?)", [str(path)])
    except duckdb.InvalidInputException:
        _refuse_encoding(path, label)
        raise
    _split_lines(con)
    if fmt["type"] == "jsonl":
        return _read_lines(con, table, label)
    array_key = fmt.get("array_key", OPEN311_ARRAY_KEY if fmt["type"] == "open311" else None)
    return _read_document(con, table, label, array_key, open311=fmt["type"] == "open311")


def column_path(column: Column) -> str:
    """The JSON path a column is read from (its `source`, or `$.<name>`)."""
    if column.source:
        return column.source
    return _key_path(column.name)


def _refuse_encoding(path: Path, label: str) -> None:
    """JSON exchanged between systems is UTF-8 (RFC 8259 §8.1): BadInput naming the line of the
    first byte that is not."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, newlines = 0, 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            pending = len(decoder.getstate()[0])  # the start of a character cut by the last chunk
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                at = max(error.start - pending, 0)
                line = newlines + chunk[:at].count(b"\n") + 1
                raise BadInput(label, "encoding", f"not valid UTF-8 at byte {offset + at} ({error.reason}): "
                                                  f"JSON is exchanged in UTF-8 (RFC 8259 §8.1)", line=line) from None
            offset += len(chunk)
            newlines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise BadInput(label, "encoding", "the file ends inside a UTF-8 character: cut off?",
                       line=newlines + 1) from None


def _split_lines(con: duckdb.DuckDBPyConnection) -> None:
    """`json_lines(n, line)`: the file's lines, 1-based, without CR and byte order mark."""
    con.execute(
        r"""
        create or replace temp table json_lines as
        with split as (select string_split(content, chr(10)) as parts from json_text)
        select n, case when n = 1 then ltrim(rtrim(line, chr(13)), chr(65279)) else rtrim(line, chr(13)) end as line
        from (select unnest(parts) as line, generate_subscripts(parts, 1) as n from split)
        """
    )


def _top_key(column: Column) -> str | None:
    """The top-level key of the record object a column's path starts with (None for a path
    such as `$[0]`)."""
    match = _TOP_KEY.match(column_path(column))
    if not match:
        return None
    return match.group(1).replace('\\"', '"') if match.group(1) is not None else match.group(2)


def _kind(expression: str) -> str:
    """SQL naming the JSON kind of a valid JSON text as RFC 8259 does (object, array, string, ...)."""
    return (f"case json_type({expression}) when 'OBJECT' then 'object' when 'ARRAY' then 'array' "
            f"when 'VARCHAR' then 'string' when 'BOOLEAN' then 'boolean' when 'NULL' then 'null' else 'number' end")


def _table_read(con: duckdb.DuckDBPyConnection, table: Table, label: str, records: str, source: str,
                first_line: int | None) -> TableRead:
    """The relation of the records in `records` (a temp table with `_source_line` and the record
    object in column `source`): every contract column as text, taken with one parse per record
    (the list form of json_extract_string). `first_line` is None when there is no record."""
    keys = {c.name: _top_key(c) for c in table.columns}
    found = {k for (k,) in con.execute(f"select distinct unnest(json_keys({source})) from {records}").fetchall()}
    if first_line is not None:
        # A required field that no record has was renamed or dropped by the exporter: refused
        # as a whole, as a CSV without that header is (a record missing it alone is quarantined
        # by the row checks).
        absent = [c for c in table.columns if c.required and keys[c.name] is not None and keys[c.name] not in found]
        if absent:
            raise BadInput(label, "required columns", "required field(s) absent from every record: "
                           + ", ".join(f"{c.name} ({column_path(c)})" for c in absent), line=first_line)
    paths = ", ".join(_literal(column_path(c)) for c in table.columns)
    columns = ", ".join(f'_values[{i}] as "{c.name}"' for i, c in enumerate(table.columns, start=1))
    relation = f"raw__{table.name}"
    con.execute(
        f"""
        create or replace temp view {relation} as
        select {columns}, _source_line, null::varchar as _source_member
        from (select _source_line, json_extract_string({source}, [{paths}]) as _values from {records})
        order by _source_line
        """
    )
    seen = [c.name for c in table.columns if keys[c.name] is None or keys[c.name] in found]
    return TableRead(
        table=table.name, relation=relation, rejected=f"rejected__{table.name}", header=seen,
        extra_columns=sorted(found - {k for k in keys.values() if k is not None}),
        missing_optional=[c.name for c in table.columns if c.name not in seen and not c.required])


# --- JSON Lines -----------------------------------------------------------------------------


def _read_lines(con: duckdb.DuckDBPyConnection, table: Table, label: str) -> ReadResult:
    con.execute(
        rf"""
        create or replace temp table jsonl_parsed as
        select n as _source_line, line, case when json_valid(line) then {_kind('line')} end as kind
        from json_lines where not regexp_matches(line, '^\s*$')
        """
    )
    lines, objects, first_line, first_kind = con.execute(
        "select count(*), count(*) filter (where kind = 'object'), min(_source_line), arg_min(kind, _source_line) "
        "from jsonl_parsed").fetchone()
    if lines and not objects:
        what = f"a JSON {first_kind}" if first_kind else "not valid JSON"
        raise BadInput(label, "format", f"not JSON Lines: none of its {lines} line(s) is a JSON object "
                                        f"(line {first_line} is {what})", line=first_line)
    con.execute("create or replace temp table jsonl_records as "
                "select _source_line, line from jsonl_parsed where kind = 'object'")
    result = _table_read(con, table, label, "jsonl_records", "line", first_line if lines else None)
    con.execute(
        f"""
        create or replace temp table {result.rejected} as
        select _source_line, null::varchar as _source_member, line as raw_line,
               case when kind is null then 'not valid JSON (RFC 8259): the line cannot be parsed'
                    else 'a JSON ' || kind || ', not an object: a JSON Lines record is an object' end as reason
        from jsonl_parsed where kind is distinct from 'object'
        order by _source_line
        """
    )
    return ReadResult(encoding="utf-8", tables={table.name: result})


# --- JSON documents (Open311 GeoReport v2) ---------------------------------------------------


def _read_document(con: duckdb.DuckDBPyConnection, table: Table, label: str, array_key: str | None,
                   open311: bool) -> ReadResult:
    con.execute("create or replace temp table json_doc as select ltrim(content, chr(65279)) as content from json_text")
    wrapped_kind = f"json_type(content, {_literal(_key_path(array_key))})" if array_key else "null"
    valid, root, wrapped = con.execute(
        f"""select json_valid(content),
                   case when json_valid(content) then {_kind('content')} end,
                   case when json_valid(content) and json_type(content) = 'OBJECT' then {wrapped_kind} end
            from json_doc""").fetchone()
    if not valid:
        _refuse_invalid(con, label)
    if root == "array":
        path = "$"
    elif root == "object" and wrapped == "ARRAY":
        path = _key_path(array_key)
    else:
        what = f"an object without a {array_key!r} array" if root == "object" and array_key else f"a JSON {root}"
        expected = "an array of records" + (f" (or an object holding them in a {array_key!r} array)" if array_key else "")
        raise BadInput(label, "format", f"the document is {what}; expected {expected}", line=1)
    # json_extract with a wildcard keeps the array's order (json_each would repeat the whole
    # document on every row).
    con.execute(
        f"""
        create or replace temp table json_elements as
        select _position, value, {_kind('value')} as kind
        from (select unnest(elements) as value, generate_subscripts(elements, 1) as _position
              from (select json_extract(content, {_literal(path + '[*]')}) as elements from json_doc))
        """
    )
    count, objects = con.execute(
        "select count(*), count(*) filter (where kind = 'object') from json_elements").fetchone()
    if open311 and objects:
        _refuse_error_response(con, label)
    notes = []
    if _start_lines(con, array_key if path != "$" else None, count):
        con.execute("create or replace temp table json_records as select s.line as _source_line, e.* "
                    "from json_elements e join json_starts s on s.position = e._position")
    else:
        con.execute("create or replace temp table json_records as select _position as _source_line, * from json_elements")
        if count:
            notes.append("_source_line is each record's 1-based position in the JSON array, not a line: "
                         "several records share a line of the file")
    con.execute("create or replace temp table json_objects as "
                "select _source_line, value from json_records where kind = 'object'")
    first_line, = con.execute("select min(_source_line) from json_records").fetchone()
    result = _table_read(con, table, label, "json_objects", "value", first_line)
    con.execute(
        f"""
        create or replace temp table {result.rejected} as
        select _source_line, null::varchar as _source_member, value as raw_line,
               'record ' || _position || ' of the array is a JSON ' || kind || ', not an object' as reason
        from json_records where kind <> 'object'
        order by _source_line
        """
    )
    return ReadResult(encoding="utf-8", tables={table.name: result}, notes=notes)


def _key_path(key: str) -> str:
    return "$." + key if _PLAIN_KEY.match(key) else '$."' + key.replace('"', '\\"') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _refuse_invalid(con: duckdb.DuckDBPyConnection, label: str) -> None:
    """BadInput naming the line and column where DuckDB's JSON parser stopped."""
    content, = con.execute("select content from json_doc").fetchone()
    if not content.strip():
        raise BadInput(label, "format", "not valid JSON (RFC 8259): the file holds only whitespace")
    if content.lstrip().startswith("<"):
        raise BadInput(label, "format", "the file is XML, not JSON: the contract takes the JSON format "
                                        "(a GeoReport v2 server answers requests.json in JSON)", line=1)
    try:
        con.execute("select json(content) from json_doc").fetchone()
    except duckdb.Error as error:
        match = _PARSE_ERROR.search(str(error))
        if not match:
            raise BadInput(label, "format", "not valid JSON (RFC 8259)") from None
        # DuckDB counts bytes from 0; the line and column are counted in characters from 1.
        before = content.encode("utf-8")[:int(match.group(1))].decode("utf-8", errors="ignore")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        raise BadInput(label, "format", f"not valid JSON (RFC 8259): {match.group(2)} at line {line}, "
                                        f"column {column}", line=line) from None
    raise BadInput(label, "format", "not valid JSON (RFC 8259)")


def _refuse_error_response(con: duckdb.DuckDBPyConnection, label: str) -> None:
    """GeoReport v2 servers answer an error with an array of {code, description} objects."""
    is_error = "kind = 'object' and json_exists(value, '$.code') and list_has_all(['code', 'description'], json_keys(value))"
    first, = con.execute(f"select count(*) from json_elements where _position = 1 and {is_error}").fetchone()
    if not first:
        return
    errors, all_errors = con.execute(
        f"""select list(coalesce(json_extract_string(value, '$.code'), '') || ' '
                        || coalesce(json_extract_string(value, '$.description'), '') order by _position),
                   bool_and({is_error})
            from json_elements""").fetchone()
    if all_errors:
        shown = "; ".join(e[:200] for e in errors[:5])
        raise BadInput(label, "open311 error",
                       f"the file is a GeoReport v2 error response, not service requests: {shown}", line=1)


def _start_lines(con: duckdb.DuckDBPyConnection, array_key: str | None, count: int) -> bool:
    """Create `json_starts(position, line)`: the line on which each element of the record array
    starts. True when every element is an object (or array) starting on a line of its own (one
    record per line, or pretty-printed); False when records cannot be told apart by line (a
    compact response).

    A JSON string never spans lines (a raw line break inside a string is invalid JSON), so each
    line can be read on its own, and only lines with a bracket matter. Each is reduced to its
    brackets: escapes removed (no quote is left inside a string), the wrapper's key
    `"<array_key>":` marked `K`, then strings removed (a bracket inside a string does not count).
    The depth before each bracket is a running sum; the record array opens at the `[` right after
    `K` (or is the document), and the records are the `{` (or `[`) one level inside it.
    """
    lines, = con.execute("select count(*) from json_lines").fetchone()
    if count == 0 or lines < count:
        return False
    key = f'"{re.escape(array_key)}"' + r"\s*:" if array_key else "^$"
    con.execute(
        r"""
        create or replace temp table json_tokens as
        with reduced as (
            select n, regexp_replace(regexp_replace(regexp_replace(regexp_replace(line, '\\.', '', 'g'), ?, 'K', 'g'),
                                                    '"[^"]*"', '', 'g'), '[^\[\]{}K]+', '', 'g') as t
            from json_lines where regexp_matches(line, '[\[\]{}]')
        ),
        brackets as (select n, string_split(t, '') as tokens from reduced where t <> '')
        select n, tok, row_number() over (order by n, pos) as ord
        from (select n, unnest(tokens) as tok, generate_subscripts(tokens, 1) as pos from brackets)
        """,
        [key],
    )
    opening = "tok = '[' and depth = 1 and prev = 'K'" if array_key else "tok = '[' and ord = 1"
    con.execute(
        f"""
        create or replace temp table json_starts as
        with depth as (
            select *, coalesce(sum(case tok when 'K' then 0 when '[' then 1 when '{{' then 1 else -1 end)
                          over (order by ord rows between unbounded preceding and 1 preceding), 0) as depth,
                   lag(tok) over (order by ord) as prev
            from json_tokens
        ),
        opening as (select ord, depth + 1 as inside from depth where {opening} order by ord limit 1),
        closing as (select min(d.ord) as ord from depth d, opening o where d.ord > o.ord and d.tok = ']' and d.depth = o.inside)
        select row_number() over (order by d.ord) as position, d.n as line
        from depth d, opening o, closing c
        where d.ord > o.ord and d.ord < c.ord and d.depth = o.inside and d.tok in ('{{', '[')
        """
    )
    starts, distinct_lines = con.execute("select count(*), count(distinct line) from json_starts").fetchone()
    objects, = con.execute("select count(*) from json_elements where kind in ('object', 'array')").fetchone()
    return starts == count == objects and distinct_lines == count
