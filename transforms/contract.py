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

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from transforms import settings

DUCKDB_TYPES = {"VARCHAR", "INTEGER", "BIGINT", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP", "TIMESTAMPTZ"}
PII_TREATMENTS = {"hash", "drop", "year"}
_TABLE_KEYS = {"columns", "primary_key", "event_time", "not_after_landing_day", "pii", "member", "required",
               "description", "references"}


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
        return json.loads(self.suite_path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Contract:
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
    def domain(self) -> str:
        return self.feed.split("/")[0]

    @property
    def name(self) -> str:
        return self.feed.split("/")[1]

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


def _columns(raw: dict) -> tuple[Column, ...]:
    return tuple(
        Column(name, str(spec["type"]).upper(), bool(spec.get("required", False)),
               spec.get("description", ""), spec.get("source"), spec.get("format"), spec.get("before"))
        for name, spec in raw.items())


def _table(feed: str, name: str, silver: str, raw: dict, problems: list[str]) -> Table:
    unknown = sorted(set(raw) - _TABLE_KEYS)
    if unknown:
        problems.append(f"table {name}: unknown key(s) {', '.join(unknown)}")
    table = Table(
        feed=feed, name=name, silver=silver, columns=_columns(raw.get("columns") or {}),
        primary_key=tuple(raw.get("primary_key") or []), event_time=raw.get("event_time"),
        not_after_landing_day=tuple(raw["not_after_landing_day"] if "not_after_landing_day" in raw
                                    else [raw["event_time"]] if raw.get("event_time") else []),
        pii=dict(raw.get("pii") or {}), member=raw.get("member"), required=bool(raw.get("required", True)),
        description=raw.get("description", ""), references=dict(raw.get("references") or {}))
    names = set(table.column_names)
    problems += [f"table {name}: reference column {k} is not a column" for k in table.references if k not in names]
    problems += [f"table {name}: reference {k} → {v} is not '<table>.<column>'" for k, v in table.references.items()
                 if v.count(".") != 1]
    where = f"table {name}: " if silver != feed.replace("/", "__") else ""
    if not table.columns:
        problems.append(f"{where}no columns")
    problems += [f"{where}column {c.name}: unknown type {c.type}" for c in table.columns if c.type not in DUCKDB_TYPES]
    problems += [f"{where}column {c.name}: unknown format {c.format!r}: one of {sorted(FORMATS)}"
                 for c in table.columns if c.format is not None and c.format not in FORMATS]
    problems += [f"{where}column {c.name}: `before` needs a `column` of this table and `max_years`"
                 for c in table.columns if c.before is not None
                 and (c.before.get("column") not in names or not isinstance(c.before.get("max_years"), int))]
    problems += [f"{where}primary key column {k} is not a column" for k in table.primary_key if k not in names]
    problems += [f"{where}pii column {k} is not a column" for k in table.pii if k not in names]
    problems += [f"{where}pii column {k}: treatment must be one of {sorted(PII_TREATMENTS)}"
                 for k, t in table.pii.items() if t not in PII_TREATMENTS]
    problems += [f"{where}primary key column {k} is dropped as PII" for k in table.primary_key if table.pii.get(k) == "drop"]
    problems += [f"{where}not_after_landing_day column {k} is not a column" for k in table.not_after_landing_day
                 if k not in names]
    problems += [f"{where}not_after_landing_day column {k} is not a DATE or a timestamp" for k in table.not_after_landing_day
                 if k in names and table.column(k).type not in ("DATE", "TIMESTAMP", "TIMESTAMPTZ")]
    if table.event_time is not None and table.event_time not in names:
        problems.append(f"{where}event_time {table.event_time} is not a column")
    return table


def _parse(path: Path) -> Contract:
    # libyaml's loader when present: DAG files parse every contract, and the pure-Python loader
    # takes ~20-50 ms a file.
    raw = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    feed = raw["feed"]
    prefix = feed.replace("/", "__")
    problems: list[str] = []
    if "tables" in raw:
        if any(k in raw for k in ("columns", "primary_key", "event_time", "pii")):
            problems.append("a contract states either `tables:` or one table's keys at its top level, not both")
        tables = tuple(_table(feed, name, f"{prefix}__{name}", spec or {}, problems)
                       for name, spec in raw["tables"].items())
    else:
        if "event_time" not in raw:
            problems.append("event_time is missing")
        top = {k: raw[k] for k in ("columns", "primary_key", "event_time", "not_after_landing_day", "pii") if k in raw}
        tables = (_table(feed, feed.split("/")[1], prefix, top, problems),)
    contract = Contract(feed=feed, title=raw["title"], format=raw["format"], tables=tables,
                        cadence=raw.get("cadence", "daily"), min_rows=int(raw.get("min_rows", 0)),
                        load_weight=int(raw.get("load_weight", 1)), raw=raw)
    for table in tables:
        for column, target in table.references.items():
            other, _, other_column = target.partition(".")
            match = [t for t in tables if t.name == other]
            if not match or other_column not in match[0].column_names:
                problems.append(f"table {table.name}: reference {column} → {target}: no such table column")
    if f"{path.parent.name}/{path.stem}" != contract.feed:
        problems.append(f"feed {contract.feed} does not match its file name")
    if problems:
        raise ValueError(f"contract {path}: " + "; ".join(problems))
    return contract


@cache
def load_contract(feed: str) -> Contract:
    """The contract of `<domain>/<feed>`."""
    path = settings.CONTRACTS_DIR / f"{feed}.yaml"
    if not path.exists():
        raise KeyError(f"no contract for feed {feed!r} (looked for {path})")
    return _parse(path)


def all_feeds() -> list[str]:
    return sorted(f"{p.parent.name}/{p.stem}" for p in settings.CONTRACTS_DIR.glob("*/*.yaml"))


def feeds_of_domain(domain: str) -> list[str]:
    return [f for f in all_feeds() if f.startswith(f"{domain}/")]


DOMAINS = ("transport", "safety", "housing", "education", "health", "programme")
