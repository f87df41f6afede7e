"""FHIR R4 Bulk Data exports (Bulk Data Access IG v2.0.0, "Response - Complete Status").

The landed batch file is the export's `manifest.json`: the body of the completed status
response (`transactionTime`, `request`, `requiresAccessToken`, `output`, `error`, optional
`deleted`). Each `output` item names one NDJSON file by `url` (an https URL on the server's file
host in real manifests); the downloaded file lies beside the manifest under the last segment of
that URL's path (`https://host/files/job/Patient_2.ndjson` → `Patient_2.ndjson`; a segment with
no extension is also looked for with `.ndjson`). The manifest is read, never the folder: a type
may be split over several files, and a file the manifest does not list is not part of the export.

Each contract table takes the files of one resource type (its `member`, e.g. `Patient`). An
output file of a type no table takes (Observation, ...), the `error` files (OperationOutcome) and
the `deleted` files (transaction Bundles) are counted in `ReadResult.skipped` by type, not loaded.

Lines, not files, are the unit of failure. A file is read as bytes, split at every newline
(numpy over a memory map, so line numbers are exact physical lines, 1-based, whatever their
length or line ending) and handed to DuckDB as an Arrow column; DuckDB decodes, validates and
flattens every line at once. A line that is not UTF-8, not JSON, not a resource, or a resource
of another type than its file is ONE rejected record, with its line and its file as member;
blank lines are not records. The whole export is refused (`BadInput`) only when it cannot be
read as one: the manifest is not JSON or lacks what reading needs of what the IG requires
(`transactionTime`, `output`; `request` and `requiresAccessToken` are not needed to read the
files and are not checked), an output file of a type the contract takes is not there, a file is
binary (NUL bytes, gzip) or empty while the manifest counts resources in it.

The manifest's `count` per file is optional and informative in the IG ("MAY optionally contain
... the number of resources in the file"): a file holding another number of lines is a note,
not a refusal (a transfer cut short also shows as a rejected last line, "truncated").

Column sources (contract `source`), a small path language over the resource's JSON, compiled to
DuckDB JSON functions (no per-line Python):

    source    := path [" | " transform]
    path      := step ("." step)*
    step      := name              the member `name` of an object
               | name "[*]"        every element of the array `name`
               | name "[" path "='" text "']"
                                   the elements of array `name` for which some value of `path`
                                   (relative to the element) equals `text`
    transform := "ref(" Type ")"   of references ("Patient/123", ".../Patient/123/_history/2"),
                                   those to `Type`, as the bare logical id ("123")
               | "datetime"        the value when it holds at least a whole date; a partial date
                                   (YYYY, YYYY-MM) gives NULL, so no instant is ever invented
               | "day"             the calendar date as written (YYYY-MM-DD: the local date of a
                                   dateTime with offset); NULL for a partial date
               | "date"            the date, a partial one completed with -01 (for a birth date
                                   coarsened to its year)

A column takes the FIRST value its path yields, as text (JSON strings unquoted; numbers and
booleans as written). Without `source`, the path is the column's name.

e.g. `identifier[type.coding[*].code='NI'].value`: the value of the first identifier whose type
is v2-0203 NI; `participant[*].actor.reference | ref(Patient)`: the first participant that is a
Patient, as its id.

Unknown elements are the rule in FHIR (every resource may carry elements and extensions beyond
what a consumer reads), so they are not reported as schema drift: `extra_columns` stays empty.
`missing_optional` lists the contract columns no record of the file has a value for.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

import duckdb
import numpy as np
import pyarrow as pa

from transforms.contract import Contract, Table
from transforms.errors import BadInput
from transforms.readers import Landed, ReadResult, TableRead

_CHUNK = 64 << 20
# A resource type name (FHIR: an uppercase letter then letters): only such a value is ever quoted
# back in a reason; anything else in `resourceType` is described, not shown.
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{0,63}$")
_MAX_MANIFEST_BYTES = 64 << 20
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_BINARY_MAGIC = {b"\x1f\x8b": "gzip-compressed (decompress it before landing)",
                 b"PK\x03\x04": "a zip archive", b"\x28\xb5\x2f\xfd": "zstd-compressed"}


# --- the path language -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    name: str
    each: bool = False  # name[*] or name[filter]
    where: tuple[tuple[_Step, ...], str] | None = None  # (path, text) of name[path='text']


@dataclass(frozen=True)
class Source:
    steps: tuple[_Step, ...]
    transform: str | None = None
    argument: str | None = None


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRANSFORM = re.compile(r"^(ref)\(([A-Z][A-Za-z]*)\)$|^(datetime|day|date)$")


def parse_source(text: str) -> Source:
    """A column's `source` (see the module docstring); ValueError naming what is wrong."""
    path, _, transform = text.partition(" | ")
    steps, rest = _parse_path(path.strip(), text)
    if rest:
        raise ValueError(f"source {text!r}: unexpected {rest!r}")
    if steps[-1].where:
        raise ValueError(f"source {text!r}: a path ends in an element's value, not in a filter")
    if not transform:
        return Source(steps)
    match = _TRANSFORM.match(transform.strip())
    if not match:
        raise ValueError(f"source {text!r}: unknown transform {transform!r} (ref(Type), datetime, day, date)")
    if match.group(1):
        return Source(steps, "ref", match.group(2))
    return Source(steps, match.group(3))


def _parse_path(text: str, whole: str) -> tuple[tuple[_Step, ...], str]:
    """Steps from the start of `text`, and what follows them (a filter's `=` or nothing)."""
    steps = []
    while True:
        match = _NAME.match(text)
        if not match:
            raise ValueError(f"source {whole!r}: expected an element name at {text!r}")
        name, text = match.group(), text[match.end():]
        if text.startswith("[*]"):
            steps.append(_Step(name, each=True))
            text = text[3:]
        elif text.startswith("["):
            inner, rest = _parse_path(text[1:], whole)
            literal = re.match(r"^='([^']*)'\]", rest)
            if not literal:
                raise ValueError(f"source {whole!r}: a filter is [path='text'], got {text!r}")
            steps.append(_Step(name, each=True, where=(inner, literal.group(1))))
            text = rest[literal.end():]
        else:
            steps.append(_Step(name))
        if not text.startswith("."):
            return tuple(steps), text
        text = text[1:]


# Every line is parsed ONCE, by from_json into a DuckDB STRUCT holding just the elements the
# table's paths visit (the paths say which are arrays); the columns are then list and struct
# functions over it. An element whose JSON does not have the expected shape becomes NULL.


def structure(sources: list[Source]) -> dict:
    """The from_json structure visiting every element of `sources` (objects as dicts, arrays as
    one-element lists, values VARCHAR), with `resourceType`."""
    root: dict = {"resourceType": "VARCHAR"}
    for source in sources:
        _merge(root, source.steps)
    return root


def _merge(node: dict, steps: tuple[_Step, ...]) -> None:
    for k, step in enumerate(steps):
        last = k == len(steps) - 1
        if last:
            shape = ["VARCHAR"] if step.each else "VARCHAR"
            if node.setdefault(step.name, shape) != shape:
                raise ValueError(f"element {step.name} is read both as a value and as {node[step.name]}")
            return
        existing = node.setdefault(step.name, [{}] if step.each else {})
        if step.each != isinstance(existing, list) or not isinstance(existing[0] if step.each else existing, dict):
            raise ValueError(f"element {step.name} is read both as an array and as a single element")
        node = existing[0] if step.each else existing
        if step.where:
            _merge(node, step.where[0])


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Compiler:
    """SQL over the parsed struct `r`; lambda variables numbered so nested ones never clash."""

    def __init__(self) -> None:
        self.variables = 0

    def variable(self) -> str:
        self.variables += 1
        return f"x{self.variables}"

    def walk(self, expression: str, steps: tuple[_Step, ...]) -> tuple[str, bool]:
        """The path's values from one struct: (SQL, whether it is a list)."""
        is_list = False
        for step in steps:
            field = '"' + step.name + '"'
            if is_list:
                x = self.variable()
                expression = f"list_transform({expression}, lambda {x}: {x}.{field})"
                if step.each:
                    expression = f"flatten({expression})"
            else:
                expression = f"({expression}).{field}"
            is_list = is_list or step.each
            if step.where:
                x = self.variable()
                inner, text = step.where
                values, many = self.walk(x, inner)
                condition = f"list_contains({values}, {_literal(text)})" if many else f"{values} = {_literal(text)}"
                expression = f"list_filter({expression}, lambda {x}: {condition})"
        return expression, is_list

    def column(self, source: Source) -> str:
        values, many = self.walk("r", source.steps)
        if source.transform == "ref":
            pattern = _literal(_REFERENCE.format(type=source.argument))
            x = self.variable()
            first = f"list_filter({values}, lambda {x}: regexp_matches({x}, {pattern}))[1]" if many else values
            return f"nullif(regexp_extract({first}, {pattern}, 1), '')"
        if many:
            x = self.variable()
            values = f"list_filter({values}, lambda {x}: {x} is not null)[1]"
        return _transform(values, source.transform)


_REFERENCE = r"(?:^|/){type}/([A-Za-z0-9.\-]{{1,64}})(?:/_history/[A-Za-z0-9.\-]{{1,64}})?$"


def _transform(value: str, transform: str | None) -> str:
    if transform is None:
        return value
    full_date = f"regexp_matches({value}, '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}')"
    if transform == "datetime":
        return f"case when {full_date} then {value} end"
    if transform == "day":
        return f"case when {full_date} then left({value}, 10) end"
    # date: a partial date completed with -01
    return (f"case when {full_date} then left({value}, 10) "
            f"when regexp_full_match({value}, '[0-9]{{4}}-[0-9]{{2}}') then {value} || '-01' "
            f"when regexp_full_match({value}, '[0-9]{{4}}') then {value} || '-01-01' end")


@dataclass(frozen=True)
class Flattening:
    """How a table's resources become its columns: the from_json structure of `r`, and
    (column, SQL over `r`) for every contract column."""

    structure: str
    columns: tuple[tuple[str, str], ...]


def flattening(table: Table) -> Flattening:
    sources = [parse_source(c.source or c.name) for c in table.columns]
    compiler = _Compiler()
    columns = tuple((c.name, compiler.column(s)) for c, s in zip(table.columns, sources, strict=True))
    return Flattening(json.dumps(structure(sources)), columns)


# --- the manifest ------------------------------------------------------------------------------


@dataclass
class _File:
    kind: str  # "output", "error" or "deleted"
    index: int
    type: str
    name: str
    path: Path
    count: int | None


def _manifest(path: Path, label: str) -> dict:
    size = path.stat().st_size
    if size == 0:
        raise BadInput(label, "manifest", "empty file (0 bytes): not a Bulk Data manifest")
    if size > _MAX_MANIFEST_BYTES:
        raise BadInput(label, "manifest", f"{size:,} bytes: not a Bulk Data manifest (a manifest lists files; "
                                          f"at most {_MAX_MANIFEST_BYTES:,} bytes are read)")
    data = path.read_bytes()
    try:
        manifest = json.loads(data.decode("utf-8-sig"))
    except RecursionError:
        raise BadInput(label, "manifest", "JSON nested too deeply to be a Bulk Data manifest") from None
    except UnicodeDecodeError as error:
        raise BadInput(label, "manifest", f"not UTF-8 text (byte {error.start}): not a Bulk Data manifest") from None
    except json.JSONDecodeError as error:
        raise BadInput(label, "manifest", f"not valid JSON ({error.msg}, column {error.colno})",
                       line=error.lineno) from None
    if not isinstance(manifest, dict):
        raise BadInput(label, "manifest", f"a JSON {type(manifest).__name__}, not the object of a Bulk Data "
                                          "complete-status response")
    transaction_time = manifest.get("transactionTime")
    if not isinstance(transaction_time, str) or not _INSTANT.match(transaction_time):
        raise BadInput(label, "manifest", "transactionTime is missing or not a FHIR instant; the Bulk Data IG "
                                          "requires it (Response - Complete Status)")
    if not isinstance(manifest.get("output"), list):
        raise BadInput(label, "manifest", "no `output` array; the Bulk Data IG requires one (empty when nothing "
                                          "was exported)")
    for key in ("error", "outcome", "deleted"):
        if manifest.get(key) is not None and not isinstance(manifest[key], list):
            raise BadInput(label, "manifest", f"`{key}` is not an array")
    return manifest


def _files(manifest: dict, folder: Path, label: str, notes: list[str]) -> list[_File]:
    """Every file item of the manifest, resolved to its file in the folder (path may not exist)."""
    files, seen = [], {}
    for key, kind in (("output", "output"), ("error", "error"), ("outcome", "error"), ("deleted", "deleted")):
        for index, item in enumerate(manifest.get(key) or []):
            where = f"{key}[{index}]"
            if not (isinstance(item, dict) and isinstance(item.get("type"), str) and isinstance(item.get("url"), str)):
                raise BadInput(label, "manifest", f"{where} is not a file item with a `type` and a `url` string")
            name = PurePosixPath(unquote(urlsplit(item["url"]).path)).name
            if not name or name in (".", "..") or "\\" in name:
                raise BadInput(label, "manifest", f"{where}: cannot take a file name from its url")
            if name in seen:
                raise BadInput(label, "manifest", f"{where} and {seen[name]} both resolve to the file {name}")
            seen[name] = where
            target = folder / name
            if not target.exists() and "." not in name and (folder / f"{name}.ndjson").exists():
                target = folder / f"{name}.ndjson"
            count = item.get("count")
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
                notes.append(f"{where} ({target.name}): count {count!r} is not a number of resources; ignored")
                count = None
            files.append(_File(kind, index, item["type"], target.name, target, count))
    return files


# --- what a landing folder holds ------------------------------------------------------------------


def sort_landed(contract: Contract, files: list[Path]) -> Landed:
    """The landed files of a Bulk Data feed, folder by folder:

    * every manifest (`format.files`, `*.json`: an `$export` complete-status body or a
      `$bulk-publish` manifest) is a batch file, and the files it lists in its folder are read
      with it (members); a manifest that cannot be read is still a batch file, which fails
      saying why; a file it lists that is not among `files` is read with it all the same;
    * an NDJSON file (`*.ndjson`) in a folder without a manifest is an export delivered without
      one: a batch file of its own, when its first non-blank line is a FHIR resource (has a
      `resourceType`), else not read (a client's log);
    * an NDJSON file a folder's manifest does not list is not part of that export: not read;
    * anything else is not read."""
    landed = Landed()
    pattern = contract.format.get("files", "*.json")
    given = set(files)
    folders: dict[Path, list[Path]] = {}
    for path in files:
        folders.setdefault(path.parent, []).append(path)
    for folder, paths in folders.items():
        manifests = sorted(p for p in folder.iterdir()
                           if p.is_file() and not p.is_symlink() and PurePosixPath(p.name).match(pattern))
        for manifest in manifests:
            try:
                listed = [f.path for f in _files(_manifest(manifest, manifest.name), folder, manifest.name, [])]
            except BadInput:
                listed = []
            if manifest in given or any(f in given for f in listed):
                landed.batches.append(manifest)
            for member in listed:
                if member in given and member not in landed.members:
                    landed.members[member] = manifest
        named = ", ".join(m.name for m in manifests)
        for path in sorted(paths):
            if path in landed.members or path in manifests:
                continue
            if path.suffix.lower() != ".ndjson":
                landed.unread[path] = (f"not a file of a Bulk Data export (this feed reads its manifests, {pattern}, "
                                       f"and NDJSON files)")
            elif manifests:
                landed.unread[path] = f"an NDJSON file that {named} does not list: not part of that export"
            elif _holds_resources(path):
                landed.batches.append(path)
            else:
                landed.unread[path] = "NDJSON whose first record is no FHIR resource (no resourceType): not an export file"
    return landed


def _holds_resources(path: Path) -> bool:
    """Whether the file's first non-blank line is a JSON object with a `resourceType`."""
    with path.open("rb") as handle:
        for _ in range(100):
            line = handle.readline(1 << 20)
            if not line:
                return False
            if line.strip():
                try:
                    first = json.loads(line.decode("utf-8-sig"))
                except (UnicodeDecodeError, ValueError, RecursionError):  # a broken first record still names its kind
                    return b'"resourceType"' in line
                return isinstance(first, dict) and isinstance(first.get("resourceType"), str)
    return False


# --- lines -------------------------------------------------------------------------------------


def _newlines(buffer: pa.Buffer) -> np.ndarray:
    """Positions of every '\\n' byte, in chunks (no file-sized temporary)."""
    data = np.frombuffer(buffer, dtype=np.uint8)
    parts = [np.flatnonzero(data[start: start + _CHUNK] == 10) + start for start in range(0, data.size, _CHUNK)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _count_lines(path: Path) -> int:
    if path.stat().st_size == 0:
        return 0
    with pa.memory_map(str(path), "r") as source:
        buffer = source.read_buffer()
        ends = _newlines(buffer)
        return int(ends.size + (buffer.size > 0 and buffer[buffer.size - 1: buffer.size].to_pybytes() != b"\n"))


def _register_lines(con: duckdb.DuckDBPyConnection, path: Path, member_label: str) -> None:
    """Register the file's lines as the Arrow table `fhir_bytes` (line BIGINT, raw BLOB): the
    bytes stay in the memory map, the lines are offsets into it. The variable `fhir_last_line`
    is the last line when it lacks its newline (a file cut short, or one written without a
    final newline), else 0."""
    with pa.memory_map(str(path), "r") as source:
        buffer = source.read_buffer()
    head = buffer[: min(buffer.size, 1 << 20)].to_pybytes()
    for magic, what in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise BadInput(member_label, "format", f"{what}, not NDJSON text")
    nul = head.find(b"\x00")
    if nul >= 0:
        raise BadInput(member_label, "format", f"binary data (a NUL byte at offset {nul}), not NDJSON text")
    ends = _newlines(buffer) + 1
    unterminated = buffer.size > 0 and (ends.size == 0 or ends[-1] != buffer.size)
    if unterminated:
        ends = np.append(ends, buffer.size)
    n = int(ends.size)
    offsets = pa.py_buffer(np.concatenate([[0], ends]).astype(np.int64))
    numbers = pa.py_buffer(np.arange(1, n + 1, dtype=np.int64))
    table = pa.Table.from_arrays(
        [pa.Array.from_buffers(pa.int64(), n, [None, numbers]),
         pa.Array.from_buffers(pa.large_binary(), n, [None, offsets, buffer])], names=["line", "raw"])
    con.register("fhir_bytes", table)
    con.execute(f"set variable fhir_last_line = {n if unterminated else 0}")


# DuckDB's JSON parser accepts what RFC 8259 does not: trailing commas, NaN and Infinity. A line
# holding either outside its strings is not JSON. The cheap test runs on every line, the exact one
# (strings blanked first) only on the few it catches.
_LOOSE = r",\s*[\]}]|NaN|Infinity"
_LOOSE_OUTSIDE_STRINGS = r",\s*[\]}]|[:,\[]\s*[-+]?(?:NaN|Infinity)"
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'


def _lenient(text: str) -> str:
    """SQL: whether the JSON `text` uses what only DuckDB's parser accepts."""
    blanked = f"regexp_replace({text}, {_literal(_JSON_STRING)}, '\"\"', 'g')"
    return (f"case when regexp_matches({text}, {_literal(_LOOSE)}) "
            f"then regexp_matches({blanked}, {_literal(_LOOSE_OUTSIDE_STRINGS)}) else false end")


def _parse_lines(con: duckdb.DuckDBPyConnection, resource_type: str, shape: str, lines: str = "fhir_bytes") -> None:
    """`fhir_lines`: every line of `fhir_bytes` with `r`, the resource parsed into the struct
    `shape`; for a line that is no resource of `resource_type`, the problem and its text;
    blank lines marked. JSON allows the whitespace around a value, so lines are not trimmed."""
    expected = _literal(resource_type)
    con.execute(
        f"""
        create or replace temp table fhir_lines as
        with decoded as (
            select line, try(decode(raw)) as text from {lines}
        ),
        parsed as (
            select line, text,
                   case when line = 1 and starts_with(text, chr(65279)) then substr(text, 2) else text end as body
            from decoded
        ),
        validated as (
            select line, text, body, json_valid(body) and not {_lenient("body")} as valid from parsed
        ),
        checked as (
            select line, text, valid, case when valid then from_json(body, {_literal(shape)}) end as r
            from validated
        ),
        classified as (
            select line, r,
                   case when valid then false else coalesce(regexp_full_match(text, '\\s*'), false) end as blank,
                   case when text is null then 'encoding: the line is not valid UTF-8 (NDJSON is UTF-8)'
                        when not valid then 'json: the line is not valid JSON'
                             || case when line = getvariable('fhir_last_line')
                                     then ' (the file ends inside this record: a transfer cut short)' else '' end
                        when r.resourceType is null then 'json: not a FHIR resource (no resourceType)'
                        when r.resourceType <> {expected} then 'resourceType: '
                             || case when regexp_full_match(r.resourceType, '{_TYPE_NAME.pattern[1:-1]}')
                                     then r.resourceType else 'a value that is not a resource type name' end
                             || ' in a file the manifest lists as ' || {expected}
                   end as problem,
                   text
            from checked
        )
        select line as _source_line, blank, case when blank then null else problem end as problem,
               case when problem is null then r end as r,
               case when problem is not null and not blank then rtrim(text, chr(10) || chr(13)) end as txt
        from classified
        """
    )


# --- reading -----------------------------------------------------------------------------------


def read(con: duckdb.DuckDBPyConnection, path: Path, contract: Contract, label: str) -> ReadResult:
    """A Bulk Data export: the manifest `path` and the files it lists beside it; or one NDJSON
    file of an export that came without a manifest."""
    if path.suffix.lower() != ".json":
        return _read_bare(con, path, contract, label)
    manifest = _manifest(path, label)
    result = ReadResult(encoding="utf-8")
    files = _files(manifest, path.parent, label, result.notes)
    sibling = label.rsplit("/", 1)[0] + "/" if "/" in label else ""
    tables = {t.member or t.name: t for t in contract.tables}

    for file in files:
        if not file.path.is_file():
            raise BadInput(label, "manifest", f"{file.kind}[{file.index}] ({file.type}) lists {file.name}, which is not "
                                              f"in the folder beside the manifest: the export was not fully downloaded")
    for table in contract.tables:
        member = table.member or table.name
        if table.required and not any(f.kind == "output" and f.type == member for f in files):
            raise BadInput(label, "required tables", f"no output file of type {member}, which the contract requires")
        _create_relations(con, table)

    for file in files:
        member_label = sibling + file.name
        table = tables.get(file.type) if file.kind == "output" else None
        if table is None:
            lines = _count_lines(file.path)
            _skip(result, file, lines)
            if file.kind == "error":
                result.notes.append(_error_note(con, file, member_label))
            elif file.kind == "deleted":
                result.notes.append(f"deleted[{file.index}] {file.name}: {lines} Bundle(s) of resources deleted "
                                    f"since the previous export; not applied to silver")
            _check_count(result, file, lines)
            continue
        _read_file(con, table, file, member_label, result)

    return _tables_read(con, contract, result)


def _read_bare(con: duckdb.DuckDBPyConnection, path: Path, contract: Contract, label: str) -> ReadResult:
    """One NDJSON file of an export delivered without its manifest (how bulk clients and public
    sample exports save it). Each line's type is its own `resourceType`, never the file's name:
    the lines of a type a table takes are read as in a manifest's file of that type, the lines of
    other types are counted per type in `skipped`. A line that is no resource at all (not JSON, no
    resourceType) is quarantined in the table of the file's main type (the type most of its lines
    have), or counted with that type when no table takes it."""
    result = ReadResult(encoding="utf-8")
    tables = {t.member or t.name: t for t in contract.tables}
    for table in contract.tables:
        _create_relations(con, table)
    if path.stat().st_size == 0:
        result.notes.append(f"{path.name}: empty file (0 bytes), no resources")
        return _tables_read(con, contract, result)
    _register_lines(con, path, label)
    try:
        con.execute(
            f"""
            create or replace temp table fhir_types as
            select line, raw, case when json_valid(text) then json_extract_string(text, '$.resourceType') end as type,
                   coalesce(regexp_full_match(text, '\\s*'), false) as blank
            from (select line, raw, try(decode(raw)) as text from fhir_bytes)
            """)
    finally:
        con.unregister("fhir_bytes")
    counts = dict(con.execute("select type, count(*) from fhir_types where not blank group by 1").fetchall())
    typed = {t: n for t, n in counts.items() if t is not None}
    main = max(typed, key=lambda t: (typed[t], t in tables, t)) if typed else None
    if main is not None and not _TYPE_NAME.match(main):
        main = None
    for type_, n in sorted(typed.items()):
        if type_ not in tables:
            kind = type_ if _TYPE_NAME.match(type_) else "(not a resource type name)"
            result.skipped[kind] = result.skipped.get(kind, 0) + n + (counts.get(None, 0) if type_ == main else 0)
    for type_, table in tables.items():
        if type_ not in typed and not (type_ == main):
            continue
        untyped = "or (type is null and not blank)" if type_ == main else ""
        con.execute(f"create or replace temp view fhir_of_type as select line, raw from fhir_types "
                    f"where type = {_literal(type_)} {untyped} order by line")
        file = _File("output", 0, type_, path.name, path, None)
        _read_lines(con, table, file, "fhir_of_type", result)
    if main is None and counts.get(None):
        # No line says what it is: nothing to read, every line refused in the first table.
        table = contract.tables[0]
        con.execute("create or replace temp view fhir_of_type as select line, raw from fhir_types "
                    "where not blank order by line")
        _read_lines(con, table, _File("output", 0, table.member or table.name, path.name, path, None),
                    "fhir_of_type", result)
    con.execute("drop table fhir_types")
    return _tables_read(con, contract, result)


def _tables_read(con: duckdb.DuckDBPyConnection, contract: Contract, result: ReadResult) -> ReadResult:
    for table in contract.tables:
        result.tables[table.name] = _table_read(con, table)
    return result


def _skip(result: ReadResult, file: _File, lines: int) -> None:
    kind = file.type if file.kind != "deleted" else f"{file.type} (deleted)"
    result.skipped[kind] = result.skipped.get(kind, 0) + lines


def _check_count(result: ReadResult, file: _File, lines: int) -> None:
    if file.count is not None and file.count != lines:
        result.notes.append(f"{file.name}: the manifest counts {file.count} resource(s), the file holds {lines} "
                            f"line(s)")


def _relation(table: Table) -> str:
    return f"raw__{table.name}"


def _rejected(table: Table) -> str:
    return f"rejected__{table.name}"


def _create_relations(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    columns = ", ".join(f'"{c.name}" varchar' for c in table.columns)
    con.execute(f"create or replace temp table {_relation(table)} "
                f"({columns}, _source_line bigint, _source_member varchar)")
    con.execute(f"create or replace temp table {_rejected(table)} "
                f"(_source_line bigint, _source_member varchar, raw_line varchar, reason varchar)")


def _read_file(con: duckdb.DuckDBPyConnection, table: Table, file: _File, member_label: str,
               result: ReadResult) -> None:
    if file.path.stat().st_size == 0:
        if file.count:
            raise BadInput(member_label, "format", f"empty file (0 bytes), but the manifest counts {file.count} "
                                                   f"{file.type} resource(s) in it: the download failed")
        result.notes.append(f"{file.name}: empty file (0 bytes), no {file.type} resources")
        return
    _register_lines(con, file.path, member_label)
    try:
        _read_lines(con, table, file, "fhir_bytes", result)
    finally:
        con.unregister("fhir_bytes")


def _read_lines(con: duckdb.DuckDBPyConnection, table: Table, file: _File, lines: str, result: ReadResult) -> None:
    """The lines of `lines` (line, raw) as resources of `file.type` into the table's relations."""
    flat = flattening(table)
    _parse_lines(con, file.type, flat.structure, lines)
    member = _literal(file.name)
    con.execute(
        f"""
        insert into {_relation(table)}
        select {', '.join(f'{sql} as "{name}"' for name, sql in flat.columns)}, _source_line, {member}
        from fhir_lines where problem is null and not blank order by _source_line
        """
    )
    con.execute(f"insert into {_rejected(table)} select _source_line, {member}, txt, problem "
                f"from fhir_lines where problem is not null order by _source_line")
    lines, blank = con.execute("select count(*) filter (not blank), count(*) filter (blank) from fhir_lines").fetchone()
    if blank:
        result.notes.append(f"{file.name}: {blank} blank line(s) ignored")
    _check_count(result, file, lines)
    con.execute("drop table fhir_lines")


def _error_note(con: duckdb.DuckDBPyConnection, file: _File, member_label: str) -> str:
    """What the server's OperationOutcome file says, by severity and issue code only: its
    diagnostics are free text that may name anything, so they stay in the landing zone."""
    if file.path.stat().st_size == 0:
        return f"error[{file.index}] {file.name}: empty"
    try:
        _register_lines(con, file.path, member_label)
    except BadInput as error:
        return f"error[{file.index}] {file.name}: unreadable ({error.problem})"
    shape = {"resourceType": "VARCHAR", "issue": [{"severity": "VARCHAR", "code": "VARCHAR"}]}
    try:
        _parse_lines(con, "OperationOutcome", json.dumps(shape))
    finally:
        con.unregister("fhir_bytes")
    issues = con.execute(
        """
        select issue.severity || '/' || issue.code as issue, count(*) as n
        from (select unnest(r.issue) as issue from fhir_lines where problem is null and not blank)
        group by all order by n desc, issue
        """).fetchall()
    outcomes, = con.execute("select count(*) from fhir_lines where problem is null and not blank").fetchone()
    con.execute("drop table fhir_lines")
    summary = ", ".join(f"{n} × {issue}" for issue, n in issues if issue and _safe_code(issue)) or "no issues"
    return (f"error[{file.index}] {file.name}: the server reported {outcomes} OperationOutcome(s) ({summary}); "
            f"resources it could not export are missing from this export")


def _safe_code(issue: str) -> bool:
    return re.fullmatch(r"[a-z\-]{1,32}/[a-z\-]{1,32}", issue) is not None


def _table_read(con: duckdb.DuckDBPyConnection, table: Table) -> TableRead:
    names = [c.name for c in table.columns]
    counted = ", ".join(f'count("{n}")' for n in names)
    counts = con.execute(f"select count(*), {counted} from {_relation(table)}").fetchone()
    missing = [n for n, k in zip(names, counts[1:], strict=True)
               if counts[0] and k == 0 and not table.column(n).required]
    return TableRead(table=table.name, relation=_relation(table), rejected=_rejected(table), header=names,
                     extra_columns=[], missing_optional=missing)
