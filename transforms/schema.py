"""The lake's schema, in one place: what every table Qala writes looks like.

* `LINEAGE`: the columns every silver and quarantine row carries back to its source (batch, landing
  day, file, member, line), with their types and meaning; the silver DDL, the dbt sources and the
  data dictionary (transforms/dbt_sources.py) all read them here.
* `silver.<table>` and `quarantine.<table>` of each contract table (`ensure_feed_tables`): silver has
  the contract's published columns typed (an HMAC'd identifier as VARCHAR, a coarsened birth date as
  its year), quarantine has them as text beside the rule and reason that refused the record.
* `ops`: `load_ledger` is the `LedgerRow` dataclass below, column for column (its DDL is derived
  from the dataclass, so the two cannot drift apart); `file_profiles` (history checks) and
  `gate_results`.
* `Temp`: the temp tables one batch's load passes from step to step on its DuckDB connection
  (read → check and pseudonymise → gate → publish): one name each, used by every step.

Nothing here touches the catalog but through the DuckDB connection it is given; lake.py attaches.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields
from datetime import date, datetime

import duckdb

# --- lineage ---------------------------------------------------------------------------------------
LINEAGE: dict[str, tuple[str, str]] = {
    "_batch_id": ("VARCHAR", "Load batch that published the row (ops.load_ledger.batch_id)."),
    "_landing_date": ("DATE", "Landing day of the source file (landing/<domain>/<feed>/<YYYY-MM-DD>/)."),
    "_source_file": ("VARCHAR", "Landed file the row was read from, relative to the warehouse."),
    "_source_member": ("VARCHAR", "Member of an archive the row was read from (a GTFS or OneRoster zip); "
                                  "empty otherwise."),
    "_source_line": ("BIGINT", "Line of the row in the landed file or member (the header is line 1)."),
}
LINEAGE_TYPES = {name: kind for name, (kind, _) in LINEAGE.items()}
LINEAGE_DOCS = {name: doc for name, (_, doc) in LINEAGE.items()}
# Quarantine's own columns, between the lineage and the record's fields.
QUARANTINE_COLUMNS = {"_rule": "VARCHAR", "_reason": "VARCHAR", "_raw_line": "VARCHAR"}


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value) -> str:
    """A SQL literal for a string or number."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _columns_sql(columns: dict[str, str]) -> str:
    return ", ".join(f"{ident(name)} {kind}" for name, kind in columns.items())


# --- silver and quarantine -----------------------------------------------------------------------
def published_types(table) -> dict[str, str]:
    """A contract table's silver columns and their types: an identifier kept as its HMAC is text,
    a birth date coarsened to its year an integer; a column dropped as PII is not there."""
    treatment = table.pii.get
    return {c.name: ("BIGINT" if treatment(c.name) == "year" else "VARCHAR" if treatment(c.name) == "hash" else c.type)
            for c in table.published_columns}


def ensure_tables(con: duckdb.DuckDBPyConnection, table) -> None:
    """silver.<table> and quarantine.<table> of one contract table, if missing."""
    text = {c.name: "VARCHAR" for c in table.published_columns}
    con.execute(f"create table if not exists silver.{table.silver} "
                f"({_columns_sql(published_types(table))}, {_columns_sql(LINEAGE_TYPES)})")
    con.execute(f"create table if not exists quarantine.{table.silver} "
                f"({_columns_sql(LINEAGE_TYPES)}, {_columns_sql(QUARANTINE_COLUMNS)}, {_columns_sql(text)})")


def ensure_feed_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> None:
    """Every feed's silver and quarantine tables exist from the start, empty until its first
    load: the dbt project and analysts find every table of the contracts, whichever feeds have
    been loaded so far. One look at the catalog when they all exist already."""
    from transforms.contract import all_feeds, load_contract

    tables = [t for feed in all_feeds() for t in load_contract(feed).tables]
    present = {name for (name,) in con.execute(
        "select table_name from duckdb_tables() where database_name = ? and schema_name = 'silver'",
        [catalog]).fetchall()}
    missing = [t for t in tables if t.silver not in present]
    if missing:
        con.execute("begin")
        for table in missing:
            ensure_tables(con, table)
        con.execute("commit")


# --- ops -------------------------------------------------------------------------------------------
PUBLISHED, BLOCKED, FAILED = "published", "blocked", "failed"
# A landed file the feed does not read (a stray desktop.ini, an NDJSON file its export's manifest
# does not list): accounted for, with the reason, and nothing of it loaded.
NOT_READ = "not_read"


@dataclass(kw_only=True)
class LedgerRow:
    """One row of ops.load_ledger: one landed file and attempt, whatever its fate. The table's DDL
    is derived from these fields (`ledger_ddl`); a field with `metadata={"lake": False}` is not a
    column, one with `metadata={"not_null": True}` is NOT NULL though unset while the load runs."""

    batch_id: str
    feed: str
    logical_date: date
    source_file: str
    sha256: str | None = None
    bytes: int | None = None
    encoding: str | None = None
    rows_in: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    # Records of kinds the contract does not take (FHIR resource types without a table): counted,
    # not loaded, and not part of rows_in.
    rows_skipped: int = 0
    status: str = FAILED
    reason: str | None = None
    snapshot_id: int | None = None
    run_id: str | None = None
    data_docs: str | None = None
    # Per table of the contract: {"in": n, "published": n, "quarantined": n}; and skipped kinds
    # (stored as JSON text).
    tables: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    started_at: datetime
    finished_at: datetime | None = field(default=None, metadata={"not_null": True})
    gate_results: list[dict] = field(default_factory=list, repr=False, metadata={"lake": False})


_SQL_TYPES = {str: "varchar", int: "bigint", date: "date", datetime: "timestamptz", dict: "varchar"}


def ledger_columns() -> list[str]:
    return [f.name for f in fields(LedgerRow) if f.metadata.get("lake", True)]


def _ledger_column(f) -> str:
    kind = typing.get_type_hints(LedgerRow)[f.name]
    optional = isinstance(kind, types.UnionType) and type(None) in typing.get_args(kind)
    base = next(a for a in typing.get_args(kind) if a is not type(None)) if optional else kind
    # a dict is kept as JSON text, NULL when empty
    null = "" if (optional or base is dict) and not f.metadata.get("not_null") else " not null"
    return f"    {f.name} {_SQL_TYPES[base]}{null}"


def ledger_ddl() -> str:
    columns = ",\n".join(_ledger_column(f) for f in fields(LedgerRow) if f.metadata.get("lake", True))
    return f"create table if not exists ops.load_ledger (\n{columns}\n);"


OPS_DDL = ledger_ddl() + """
create table if not exists ops.file_profiles (
    feed varchar not null,
    table_name varchar not null,
    source_file varchar not null,
    landing_date date not null,
    batch_id varchar not null,
    rows_in bigint not null,
    measure_numerator double,
    measure_denominator double,
    newest_event timestamptz
);
create table if not exists ops.gate_results (
    batch_id varchar not null,
    feed varchar not null,
    table_name varchar,
    expectation varchar not null,
    column_name varchar,
    severity varchar not null,
    success boolean not null,
    observed varchar,
    checked_at timestamptz not null
);
"""


# --- the temp tables of one batch's load ------------------------------------------------------------
def _per_table(prefix: str):
    """`<prefix>__<contract table name>`."""
    return staticmethod(lambda table: f"{prefix}__{table}")


class Temp:
    """The temp tables a batch passes between the load's steps, per contract table name:

    read    → `accepted(t)`: every record of the batch's files as text, with lineage;
              `rejected(t)`: records that could not be split into fields (raw line, reason);
              `MANY_READ`: what a format's one-scan `read_many` gives, before it joins `accepted`
    check   → `clean(t)`: typed and pseudonymised records that passed every row rule (silver's rows);
              `quarantined(t)`: records that broke a rule, with `_rule` and `_reason`
    history → `profiles(t)`: per landed file, the records it brought and its key measure
    publish → `BATCH_FILES`: the batch's files, each blocked or not, with the reason
    """

    MANY_READ = "many__read"
    BATCH_FILES = "batch_files"
    accepted = _per_table("acc")
    rejected = _per_table("rej")
    clean = _per_table("clean")
    quarantined = _per_table("quarantined")
    profiles = _per_table("profiles")
