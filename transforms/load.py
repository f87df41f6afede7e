"""The one load path: landed file → read → row checks → pseudonymise → GX gate → publish in
one lake transaction → ledger row. Every landed file is its own batch.

    load_files("safety/road_accidents", [path, ...], run_id=...)

A file that cannot be read ends as a ledger row with status `failed`; a batch the gate refuses
ends as `blocked` (its records quarantined with the failed expectation, silver untouched); both
raise after the ledger row is written, but only after every other file given has been loaded.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from transforms import checks, gate, lake, settings
from transforms.contract import Contract, load_contract
from transforms.errors import BadInput, GateBlocked
from transforms.ledger import BLOCKED, FAILED, PUBLISHED, LedgerRow, record
from transforms.pseudonymise import hmac_key
from transforms.readers import csv as csv_reader

READERS = {"csv": csv_reader.read}
LINEAGE_COLUMNS = "_batch_id varchar, _landing_date date, _source_file varchar, _source_line bigint"


@dataclass
class LoadFailure(Exception):
    """Some files of a load did not publish; each has its ledger row saying why."""

    failures: list[LedgerRow]

    def __str__(self) -> str:
        lines = [f"{len(self.failures)} file(s) not published:"]
        lines += [f"  {r.status}: {r.reason}" for r in self.failures]  # the reason names the file
        return "\n".join(lines)


def landing_date_of(path: Path) -> date:
    """Files land in landing/<domain>/<feed>/<YYYY-MM-DD>/."""
    return date.fromisoformat(path.parent.name)


def load_files(feed: str, paths: list[Path], run_id: str | None = None, root: Path | None = None,
               on_batch: Callable[[LedgerRow], None] | None = None) -> list[LedgerRow]:
    """Load each file as its own batch; `on_batch` hears of each one as soon as it is done."""
    root = root or settings.warehouse_root()
    lake.ensure_lake(root)
    contract = load_contract(feed)
    outcomes: list[gate.GateOutcome] = []
    con = lake.connect(root)
    try:
        rows = []
        for path in paths:
            rows.append(load_file(con, contract, Path(path), run_id, root, outcomes))
            if on_batch:
                on_batch(rows[-1])
    finally:
        con.close()
        gate.build_data_docs(outcomes, root)
    failures = [r for r in rows if r.status != PUBLISHED]
    if failures:
        raise LoadFailure(failures)
    return rows


def load_file(con: duckdb.DuckDBPyConnection, contract: Contract, path: Path, run_id: str | None,
              root: Path, outcomes: list) -> LedgerRow:
    started = datetime.now(timezone.utc)
    label = str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path)
    digest = _sha256(path)
    row = LedgerRow(
        batch_id=f"{contract.table}-{landing_date_of(path):%Y%m%d}-{digest[:10]}-{uuid.uuid4().hex[:8]}",
        feed=contract.feed, logical_date=landing_date_of(path), source_file=label,
        started_at=started, sha256=digest, bytes=path.stat().st_size, run_id=run_id)
    try:
        _load(con, contract, path, label, row, root, outcomes)
    except BadInput as error:
        row.status, row.reason = FAILED, str(error)
    except GateBlocked as error:
        row.status, row.reason = BLOCKED, str(error)
    except Exception as error:
        # Not the file's fault (lock, disk, a bug): recorded, then raised so Airflow retries.
        row.rows_in = row.rows_published = row.rows_quarantined = 0
        row.reason = f"unexpected {type(error).__name__} (the task retries): {error}"
        raise
    finally:
        row.finished_at = datetime.now(timezone.utc)
        record(con, row, root)
    return row


def _load(con: duckdb.DuckDBPyConnection, contract: Contract, path: Path, label: str, row: LedgerRow,
          root: Path, outcomes: list) -> None:
    read = READERS[contract.format["type"]](con, path, contract, label)
    row.encoding = read.encoding
    suite = contract.suite()
    checks.split(con, contract, read, suite, hmac_key(root))
    clean, = con.execute("select count(*) from clean").fetchone()
    quarantined, = con.execute("select count(*) from quarantined").fetchone()
    row.rows_in = clean + quarantined

    # Through Arrow: DuckDB's own .df() takes ~10x longer on text columns (pandas 3 strings).
    batch = con.execute("select * exclude (_source_line) from clean").to_arrow_table().to_pandas()
    outcome = gate.validate(contract, batch, row.batch_id, root)
    outcomes.append(outcome)
    row.gate_results, row.data_docs = outcome.results, outcome.data_docs
    notes = []
    if read.extra_columns:
        notes.append(f"schema drift: column(s) not in the contract kept out of silver: {', '.join(read.extra_columns)}")
    if outcome.warnings:
        notes.append("warn: " + outcome.summary(outcome.warnings))
    if not outcome.passed:
        reason = "gate blocked: " + outcome.summary(outcome.blocking_failures)
        # Nothing of a blocked batch reaches silver; its records wait in quarantine for a replay.
        con.execute(f"""create or replace temp table quarantined as
            select * from quarantined union all by name
            select _source_line, 'gate' as _rule, {checks.literal(reason)} as _reason,
                   {', '.join(f'cast({checks.ident(c.name)} as varchar) as {checks.ident(c.name)}' for c in contract.published_columns)}
            from clean""")
        row.snapshot_id = _publish(con, contract, row, root, relations={"quarantine": "quarantined"})
        row.rows_published, row.rows_quarantined = 0, row.rows_in
        raise GateBlocked(f"{label}: {reason}" + (f" (Data Docs: {outcome.data_docs})" if outcome.data_docs else ""))
    row.snapshot_id = _publish(con, contract, row, root)
    row.rows_published, row.rows_quarantined = clean, quarantined
    row.status = PUBLISHED
    if quarantined:
        rules = con.execute("select _rule, count(*) from quarantined group by 1 order by 2 desc").fetchall()
        notes.insert(0, "quarantined: " + ", ".join(f"{n} × {rule}" for rule, n in rules))
    row.reason = "; ".join(notes) or None


def ensure_tables(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    published_types = {c.name: ("BIGINT" if contract.pii.get(c.name) == "year" else
                                "VARCHAR" if contract.pii.get(c.name) == "hash" else c.type)
                       for c in contract.published_columns}
    columns = ", ".join(f"{checks.ident(n)} {t}" for n, t in published_types.items())
    text_columns = ", ".join(f"{checks.ident(c.name)} varchar" for c in contract.published_columns)
    con.execute(f"create table if not exists silver.{contract.table} ({columns}, {LINEAGE_COLUMNS})")
    con.execute(
        f"create table if not exists quarantine.{contract.table} "
        f"({LINEAGE_COLUMNS}, _rule varchar, _reason varchar, _raw_line varchar, {text_columns})")


PUBLISH = {"silver": "clean", "quarantine": "quarantined"}


def _publish(con: duckdb.DuckDBPyConnection, contract: Contract, row: LedgerRow, root: Path,
             relations: dict[str, str] = PUBLISH) -> int:
    """Replace this source file's rows in silver and quarantine, in ONE lake transaction.
    A blocked batch replaces only its quarantine rows: silver stays exactly as it was."""
    ensure_tables(con, contract)
    lineage = (f"{checks.literal(row.batch_id)} as _batch_id, {checks.literal(row.logical_date.isoformat())}::date as _landing_date, "
               f"{checks.literal(row.source_file)} as _source_file")
    extra = json.dumps({"batch_id": row.batch_id, "source_file": row.source_file})

    def statements() -> None:
        for schema, relation in relations.items():
            con.execute(f"delete from {schema}.{contract.table} where _source_file = ?", [row.source_file])
            con.execute(f"insert into {schema}.{contract.table} by name select {lineage}, * from {relation}")
        con.execute(f"call {settings.LAKE_ALIAS}.set_commit_message('qala', ?, extra_info => ?)",
                    [f"publish {row.batch_id}", extra])

    lake.commit(con, statements, root)
    (snapshot,) = con.execute(
        f"select max(snapshot_id) from {settings.LAKE_ALIAS}.snapshots() "
        f"where json_extract_string(commit_extra_info, '$.batch_id') = ?", [row.batch_id]).fetchone()
    return snapshot


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
