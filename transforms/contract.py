"""Feed contracts: one YAML file per feed under transforms/contracts/<domain>/<feed>.yaml.

A contract declares a feed once: format, expected cadence, and its tables: columns and types,
primary key, event-time column, personal identifiers and their treatment. Everything else
(reader, row checks, GX gate, silver tables, DAG tasks) is derived from it.

Most feeds deliver one table: the contract states `columns`, `primary_key`, `event_time` and
`pii` at its top level, and the silver table is `silver.<domain>__<feed>`. A feed whose landed
file holds several tables (a GTFS zip, a FHIR Bulk export, a OneRoster bulk set) states them
under `tables:`, each with the same keys plus `member` (which part of the file holds it) and
`required` (a landed file without it is refused); its silver tables are
`silver.<domain>__<feed>__<table>`. Each silver table has its GX suite in
expectations/<silver table>.json.
"""

from __future__ import annotations

import copy
import difflib
import json
import sys
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from transforms import settings

DUCKDB_TYPES = {"VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP", "TIMESTAMPTZ"}
PiiTreatment = Literal["hash", "drop", "year"]
PII_TREATMENTS = set(typing.get_args(PiiTreatment))


# The declared format of a contract (YAML) and of a suite (JSON): every file is validated against
# these models before anything reads it, so an unknown key (`requried:`) or a wrong type
# (`min_rows: many`) is refused with the file, the key and the line. docs/contract_format.md is
# written from them (`python -m transforms.contract --docs`).
class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BeforeSpec(_Spec):
    column: StrictStr = Field(description="A DATE column of the same table that this date must not be after")
    max_years: StrictInt = Field(description="How many years before that column's date this one may lie at most")


class ColumnSpec(_Spec):
    type: StrictStr = Field(description=f"DuckDB type, one of {', '.join(sorted(DUCKDB_TYPES))} (any case)")
    required: StrictBool = Field(False, description="A record without a value is quarantined; the gate checks not-null")
    description: StrictStr = Field("", description="What the column holds (the data dictionary's text)")
    source: StrictStr | None = Field(None, description="Where the reader finds the value (CSV header, JSON path, ...); default: the column's name")
    format: StrictStr | None = Field(None, description="An identifier format checked before pseudonymisation: iin, bin or kato")
    before: BeforeSpec | None = Field(None, description="A date that must fall on or before another column's, by at most max_years")


class TableSpec(_Spec):
    columns: dict[str, ColumnSpec] = Field(description="Column name → its declaration, in the silver table's order")
    primary_key: list[StrictStr] = Field([], description="Columns unique within one landed file")
    event_time: StrictStr | None = Field(None, description="The column that dates a record (required for a one-table feed)")
    not_after_landing_day: list[StrictStr] | None = Field(
        None, description="Times that cannot be after the end of the landing day (default: the event_time)")
    pii: dict[str, PiiTreatment] = Field({}, description="Column → treatment of a personal identifier: hash, drop or year")
    member: StrictStr | None = Field(None, description="Several-table feeds: which part of the landed file holds the table")
    required: StrictBool = Field(True, description="Several-table feeds: a landed file without this table is refused")
    description: StrictStr = Field("", description="What the table holds")
    references: dict[str, StrictStr] = Field(
        {}, description="Column → `<table>.<column>` of the same landed file that its value must be found in")


class FormatSpec(_Spec):
    """The reader's settings. The contract's `format` reaches the readers as written (their own
    defaults apply to a key left out); one model for every reader, each key says which read it."""

    type: Literal["csv", "jsonl", "json", "open311", "gtfs_static", "gtfs_rt", "fhir_bulk", "oneroster"] = Field(
        description="The reader (transforms/readers/)")
    files: StrictStr = Field("*", description="Glob of the landed files of one day (under landing/<feed>/<day>/) "
                                              "the feed reads; any other landed file gets a `not_read` ledger row "
                                              "saying so (fhir_bulk: its manifests, and NDJSON files without one)")
    delimiter: StrictStr | None = Field(None, description="csv: the field separator (reader's default: `,`)")
    encodings: list[StrictStr] | None = Field(
        None, description="csv, gtfs_static, oneroster: encodings tried in order (reader's default: utf-8)")
    array_key: StrictStr | None = Field(
        None, description="json, open311: the key of an object that holds the records' array (open311's default: its own)")
    max_bytes: StrictInt | None = Field(None, description="Largest landed file accepted (default 2 GiB)")
    max_uncompressed_bytes: StrictInt | None = Field(None, description="Zip formats: all members together, once expanded (default 8 GiB)")
    max_ratio: StrictInt | None = Field(None, description="Zip formats: expanded / compressed size of any member (default 200)")
    max_members: StrictInt | None = Field(None, description="Zip formats: most members accepted (default 1000)")


class ContractSpec(_Spec):
    feed: StrictStr = Field(description="`<domain>/<feed>`, the file's own path under transforms/contracts/")
    title: StrictStr = Field(description="The feed's name for people")
    source_system: StrictStr | None = Field(None, description="Who sends the export (documentation only)")
    timezone: StrictStr | None = Field(None, description="The source's time zone (documentation only)")
    description: StrictStr = Field("", description="What the feed is (documentation only)")
    cadence: StrictStr = Field("daily", description="How often an export is expected")
    format: FormatSpec = Field(description="The reader and its settings")
    min_rows: StrictInt = Field(0, description="A landed file with fewer records (over all its tables) is refused as a whole")
    load_weight: StrictInt = Field(1, description="Relative cost of loading the feed (Airflow priority_weight of its load tasks)")
    tables: dict[str, TableSpec] | None = Field(None, description="Several-table feeds: table name → its keys (as a one-table feed's top level)")
    columns: dict[str, ColumnSpec] | None = Field(None, description="One-table feeds: as a table's `columns`")
    primary_key: list[StrictStr] | None = Field(None, description="One-table feeds: as a table's `primary_key`")
    event_time: StrictStr | None = Field(None, description="One-table feeds: as a table's `event_time` (required)")
    not_after_landing_day: list[StrictStr] | None = Field(None, description="One-table feeds: as a table's")
    pii: dict[str, PiiTreatment] | None = Field(None, description="One-table feeds: as a table's `pii`")


class ExpectationMetaSpec(_Spec):
    severity: Literal["block", "warn", "row"] = Field(
        "block", description="block: the file is refused; row: failing records are quarantined; warn: the file publishes with a warning")
    why: StrictStr | None = Field(None, description="Why the rule holds (for the engineer reading a failure)")
    declared_in: StrictStr | None = Field(None, description="Set by the gate for rules derived from the contract")


class ExpectationSpec(_Spec):
    type: StrictStr = Field(description="A Great Expectations expectation type, e.g. expect_column_values_to_be_between")
    kwargs: dict[str, Any] = Field(description="The expectation's arguments, as GX names them")
    meta: ExpectationMetaSpec = Field(default_factory=ExpectationMetaSpec, description="Severity and reason")


class SuiteMetaSpec(_Spec):
    feed: StrictStr = Field(description="The feed `<domain>/<feed>` the suite belongs to")
    table: StrictStr | None = Field(None, description="Several-table feeds: the table")
    notes: StrictStr | None = Field(None, description="Free text for the reader")


class VolumeSpec(_Spec):
    pass


class MeasureSpec(_Spec):
    name: StrictStr = Field(description="The measure's name in a warning")
    numerator: StrictStr = Field(description="SQL aggregate over the published records")
    denominator: StrictStr = Field(description="SQL aggregate over the published records")


class FreshnessSpec(_Spec):
    column: StrictStr = Field(description="A DATE or timestamp column of the table")
    max_age_hours: StrictInt | StrictFloat = Field(description="How old the newest record of a day may be at the end of that day")


class HistorySpec(_Spec):
    volume: VolumeSpec | None = Field(None, description="`{}`: a day's record count against the trailing days'")
    measure: MeasureSpec | None = Field(None, description="A day's numerator / denominator against the trailing days'")
    freshness: FreshnessSpec | None = Field(None, description="The newest event time of a day against the end of that day")


class SuiteSpec(_Spec):
    name: StrictStr = Field(description="The silver table, `<domain>__<feed>[__<table>]`, the file's name")
    meta: SuiteMetaSpec = Field(description="What the suite belongs to")
    expectations: list[ExpectationSpec] = Field(description="The GX expectations of the table")
    history: HistorySpec = Field(default_factory=HistorySpec, description="The history checks (transforms/history.py)")


_MODELS = {"contract": (ContractSpec, FormatSpec, TableSpec, ColumnSpec, BeforeSpec),
           "suite": (SuiteSpec, SuiteMetaSpec, ExpectationSpec, ExpectationMetaSpec, HistorySpec, VolumeSpec,
                     MeasureSpec, FreshnessSpec)}


def _line(root: yaml.Node | None, loc: tuple) -> int:
    """The 1-based line of the node at `loc` (a pydantic error location) in a composed document:
    the deepest key or item found (1 without a document)."""
    if root is None:
        return 1
    node, line = root, root.start_mark.line
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == part]
            if not match:
                break
            line, node = match[0][0].start_mark.line, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def _validate(kind: str, path: Path, text: str, raw: Any):
    """`raw` validated by the model of `kind`, or one ValueError naming the file and, for each
    problem, its line, key path and what is wrong."""
    try:
        return _MODELS[kind][0].model_validate(raw)
    except ValidationError as error:
        # JSON is YAML: one composer gives the line of a key in a contract and in a suite (only
        # when a file is refused, so a valid file costs nothing more). A JSON text PyYAML (YAML
        # 1.1) cannot compose still gets its problems, at line 1.
        try:
            root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            root = None
        known = {f for model in _MODELS[kind] for f in model.model_fields}
        problems = []
        for e in error.errors():
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p in ("int", "float"))))
            message = e["msg"]
            if e["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(loc[-1]), known, n=1)
                message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
            problems.append(f"{kind} {path} line {_line(root, loc)}: {'.'.join(map(str, loc))}: {message}")
        raise ValueError("\n".join(problems)) from None


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool
    description: str
    # Where the reader finds the value, in the format's own terms (a CSV header name, a JSON
    # path, ...); None = the column's name.
    source: str | None = None
    # A value format the row checks verify before any pseudonymisation (see FORMATS).
    format: str | None = None
    # A date that must fall on or before another column's, by at most `max_years` (a child's
    # birth date against the queue event): {"column": ..., "max_years": n}; checked before
    # pseudonymisation too.
    before: dict | None = None


@dataclass(frozen=True)
class Table:
    """One table of a feed: what its silver table, quarantine table and GX suite follow from."""

    feed: str
    name: str
    silver: str  # `<domain>__<feed>` or `<domain>__<feed>__<table>`
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    event_time: str | None
    pii: dict[str, str] = field(default_factory=dict)
    # Times that cannot be after the export was written (the end of the landing day): a record
    # with one later is quarantined (rule `future`). Default: the event_time; a table lists its
    # own where the event time is legitimately ahead (an appointment's start, booked ahead).
    not_after_landing_day: tuple[str, ...] = ()
    member: str | None = None
    required: bool = True
    description: str = ""
    # column → "<table>.<column>": a record whose value is not found in that table OF THE SAME
    # landed file is quarantined (a GTFS stop_time of an unknown trip).
    references: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def published_columns(self) -> list[Column]:
        """The columns that reach silver: every contract column but those dropped as PII."""
        return [c for c in self.columns if self.pii.get(c.name) != "drop"]

    @property
    def suite_path(self) -> Path:
        return settings.EXPECTATIONS_DIR / f"{self.silver}.json"

    def suite(self) -> dict:
        """The table's GX suite (expectations/<silver>.json), validated by SuiteSpec: a copy, the
        caller may change it."""
        return parse_suite(self.suite_path)


class FeedNamed:
    """`domain` and `name` of the `<domain>/<feed>` in `self.feed` (a contract, a simulator's day)."""

    feed: str

    @property
    def domain(self) -> str:
        return self.feed.split("/")[0]

    @property
    def name(self) -> str:
        return self.feed.split("/")[1]


@dataclass(frozen=True)
class Contract(FeedNamed):
    feed: str
    title: str
    format: dict
    tables: tuple[Table, ...]
    cadence: str = "daily"
    # A landed file with fewer records than this (over all its tables) is refused as a whole:
    # e.g. a national register never has a day without a record, so an empty export is broken.
    min_rows: int = 0
    # Relative cost of loading this feed (Airflow priority_weight of its load tasks): in a history
    # run every feed's load is queued at once, and the LocalExecutor's two slots should take the
    # longest loads first, or the run ends with one long load alone on one core.
    load_weight: int = 1
    raw: dict = field(default_factory=dict, repr=False, compare=False)


    @property
    def table(self) -> str:
        """`<domain>__<feed>`: the silver table of a one-table feed, the prefix of the others."""
        return f"{self.domain}__{self.name}"

    @property
    def single(self) -> Table:
        """The one table of a one-table feed."""
        if len(self.tables) != 1:
            raise ValueError(f"{self.feed} has {len(self.tables)} tables")
        return self.tables[0]

    def get_table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"{self.feed} has no table {name!r}")

    @property
    def pii_columns(self) -> dict[str, str]:
        """`<table>.<column>` → treatment, over every table."""
        return {f"{t.name}.{c}": v for t in self.tables for c, v in t.pii.items()}


# Identifier formats a column may declare (`format:`): its records are checked against it before
# pseudonymisation, since the gate only ever sees an identifier's HMAC.
FORMATS = {
    "iin": "an IIN: 12 digits whose 12th is the check digit of the first 11",
    "bin": "a BIN: 12 digits whose 12th is the check digit of the first 11 (the IIN's algorithm)",
    "kato": "a 9-digit KATO code whose first two digits are a region or city of reference.regions",
}


def _columns(specs: dict[str, ColumnSpec]) -> tuple[Column, ...]:
    return tuple(
        Column(name, spec.type.upper(), spec.required, spec.description, spec.source, spec.format,
               spec.before.model_dump() if spec.before is not None else None)
        for name, spec in specs.items())


def _table(feed: str, name: str, silver: str, spec: TableSpec, problems: list[tuple[tuple, str]]) -> Table:
    """The Table of `spec`; its cross-key problems appended to `problems` as (key path, message)."""
    nald = spec.not_after_landing_day
    table = Table(
        feed=feed, name=name, silver=silver, columns=_columns(spec.columns),
        primary_key=tuple(spec.primary_key), event_time=spec.event_time,
        not_after_landing_day=tuple(nald if nald is not None else [spec.event_time] if spec.event_time else []),
        pii=dict(spec.pii), member=spec.member, required=spec.required,
        description=spec.description, references=dict(spec.references))
    names = set(table.column_names)
    one = silver == feed.replace("/", "__")
    at = () if one else ("tables", name)  # where the table's keys are in the file
    where = "" if one else f"table {name}: "
    problems += [(at + ("references", k), f"table {name}: reference column {k} is not a column")
                 for k in table.references if k not in names]
    problems += [(at + ("references", k), f"table {name}: reference {k} → {v} is not '<table>.<column>'")
                 for k, v in table.references.items() if v.count(".") != 1]
    if not table.columns:
        problems.append((at + ("columns",), f"{where}no columns"))
    problems += [(at + ("columns", c.name, "type"), f"{where}column {c.name}: unknown type {c.type}")
                 for c in table.columns if c.type not in DUCKDB_TYPES]
    problems += [(at + ("columns", c.name, "format"), f"{where}column {c.name}: unknown format {c.format!r}: one of {sorted(FORMATS)}")
                 for c in table.columns if c.format is not None and c.format not in FORMATS]
    problems += [(at + ("columns", c.name, "before", "column"),
                  f"{where}column {c.name}: `before` needs a `column` of this table and `max_years`")
                 for c in table.columns if c.before is not None and c.before["column"] not in names]
    problems += [(at + ("primary_key",), f"{where}primary key column {k} is not a column")
                 for k in table.primary_key if k not in names]
    problems += [(at + ("pii", k), f"{where}pii column {k} is not a column") for k in table.pii if k not in names]
    problems += [(at + ("pii", k), f"{where}primary key column {k} is dropped as PII")
                 for k in table.primary_key if table.pii.get(k) == "drop"]
    problems += [(at + ("not_after_landing_day",), f"{where}not_after_landing_day column {k} is not a column")
                 for k in table.not_after_landing_day if k not in names]
    problems += [(at + ("not_after_landing_day",), f"{where}not_after_landing_day column {k} is not a DATE or a timestamp")
                 for k in table.not_after_landing_day
                 if k in names and table.column(k).type not in ("DATE", "TIMESTAMP", "TIMESTAMPTZ")]
    if table.event_time is not None and table.event_time not in names:
        problems.append((at + ("event_time",), f"{where}event_time {table.event_time} is not a column"))
    return table


def _parse(path: Path) -> Contract:
    # libyaml's loader when present: DAG files parse every contract, and the pure-Python loader
    # takes ~20-50 ms a file.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = path.read_text(encoding="utf-8")
    raw = yaml.load(text, Loader=loader)
    spec = _validate("contract", path, text, raw)
    feed = spec.feed
    prefix = feed.replace("/", "__")
    problems: list[tuple[tuple, str]] = []
    top_keys = ("columns", "primary_key", "event_time", "not_after_landing_day", "pii")
    if spec.tables is not None:
        problems += [((k,), "a contract states either `tables:` or one table's keys at its top level, not both")
                     for k in top_keys if getattr(spec, k) is not None]
        tables = tuple(_table(feed, name, f"{prefix}__{name}", table, problems)
                       for name, table in spec.tables.items())
    else:
        if "event_time" not in spec.model_fields_set:  # `event_time: null` states a feed without one
            problems.append(((), "event_time is missing"))
        if spec.columns is None:
            problems.append(((), "columns is missing"))
        top = TableSpec(**{k: getattr(spec, k) for k in top_keys if getattr(spec, k) is not None}
                        | {"columns": spec.columns or {}})
        tables = (_table(feed, feed.split("/")[1], prefix, top, problems),)
    contract = Contract(feed=feed, title=spec.title, format=raw["format"], tables=tables,
                        cadence=spec.cadence, min_rows=spec.min_rows, load_weight=spec.load_weight, raw=raw)
    for table in tables:
        for column, target in table.references.items():
            other, _, other_column = target.partition(".")
            match = [t for t in tables if t.name == other]
            if not match or other_column not in match[0].column_names:
                problems.append((("tables", table.name, "references", column),
                                 f"table {table.name}: reference {column} → {target}: no such table column"))
    if f"{path.parent.name}/{path.stem}" != contract.feed:
        problems.append((("feed",), f"feed {contract.feed} does not match its file name"))
    if problems:
        root = yaml.compose(text, Loader=loader)
        raise ValueError("\n".join(f"contract {path} line {_line(root, loc)}: {message}" for loc, message in problems))
    return contract


@cache
def load_contract(feed: str) -> Contract:
    """The contract of `<domain>/<feed>`."""
    path = settings.CONTRACTS_DIR / f"{feed}.yaml"
    if not path.exists():
        raise KeyError(f"no contract for feed {feed!r} (looked for {path})")
    return _parse(path)


def parse_contract(path: Path) -> Contract:
    """The contract in the YAML file at `path` (its name must match its `feed`)."""
    return _parse(Path(path))


def parse_suite(path: Path) -> dict:
    """The suite in the JSON file at `path`, validated by SuiteSpec (ValueError naming the file,
    key and line of every problem): a copy, the caller may change it. Validated once per version
    of the file (a suite changed on disk is read again, as before the models)."""
    path = Path(path)
    stat = path.stat()
    return copy.deepcopy(_suite(path, stat.st_mtime_ns, stat.st_size))


@cache
def _suite(path: Path, mtime_ns: int, size: int) -> dict:
    text = path.read_text(encoding="utf-8")
    raw = json.loads(text)
    _validate("suite", path, text, raw)
    return raw


def all_feeds() -> list[str]:
    return sorted(f"{p.parent.name}/{p.stem}" for p in settings.CONTRACTS_DIR.glob("*/*.yaml"))


def feeds_of_domain(domain: str) -> list[str]:
    return [f for f in all_feeds() if f.startswith(f"{domain}/")]


DOMAINS = ("transport", "safety", "housing", "education", "health", "programme")


def _type_name(annotation: Any) -> str:
    """A model field's type as the doc shows it: `str`, `list[str]`, `dict[str, Column] | None`, ..."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "any"
    return annotation.__name__.removesuffix("Spec") if isinstance(annotation, type) else str(annotation)


def render_format_docs() -> str:
    """docs/contract_format.md: every key of a contract and of a suite, from the models above."""
    lines = ["# The contract and suite format", "",
             "Generated from the pydantic models in `transforms/contract.py` by",
             "`python -m transforms.contract --docs > docs/contract_format.md`; do not edit by hand.",
             "A key not listed is refused, with the file, the key and the line.", ""]
    for kind, title in (("contract", "Contract: `transforms/contracts/<domain>/<feed>.yaml`"),
                        ("suite", "Suite: `expectations/<silver table>.json`")):
        lines += [f"## {title}", ""]
        for model in _MODELS[kind]:
            lines += [f"### `{model.__name__.removesuffix('Spec')}`", "", "| key | type | required | default | description |",
                      "|---|---|---|---|---|"]
            for name, info in model.model_fields.items():
                required = info.is_required()
                default = "" if required else ("(empty)" if info.default_factory else repr(info.default))
                lines.append(f"| `{name}` | `{_type_name(info.annotation).replace('|', chr(92) + '|')}` | {'yes' if required else 'no'} | "
                             f"{default} | {info.description or ''} |")
            if not model.model_fields:
                lines.append("| (no keys) | | | | |")
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["--docs"]:
        sys.exit("usage: python -m transforms.contract --docs > docs/contract_format.md")
    from transforms.contract import render_format_docs as render  # the module's own classes, not __main__'s copies
    print(render(), end="")
