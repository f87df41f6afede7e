"""ops.load_ledger: one row per landed file and attempt, whatever its fate.

A batch is the set of landed files of one feed that one load step checks, gates and publishes
together (a day's files in a daily run; up to a month of them in a history run); its files share
the batch_id. Invariant, for every row: rows_in = rows_published + rows_quarantined. A re-run
appends new rows; the latest row per source_file says what silver holds of that file.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, fields
from datetime import date, datetime
from pathlib import Path

import duckdb

from transforms import lake, settings
from transforms.errors import DiskFull
# The row's fields and statuses are the lake schema's (transforms/schema.py); named here too for the
# load path and the commands, which speak of the ledger.
from transforms.schema import BLOCKED, FAILED, NOT_READ, PUBLISHED, LedgerRow, ledger_columns  # noqa: F401

_COLUMNS = ledger_columns()


def record(con: duckdb.DuckDBPyConnection, rows: list[LedgerRow], gate_results: list[dict], root=None) -> None:
    """Append the ledger rows of a batch's files and its gate results, in one lake transaction."""
    values = [_values(row) for row in rows]
    checked_at = max((r.finished_at for r in rows if r.finished_at), default=None)
    gate_rows = [(rows[0].batch_id, rows[0].feed, r.get("table"), r["expectation"], r["column"], r["severity"],
                  r["success"], r["observed"], checked_at) for r in gate_results] if rows else []

    def write() -> None:
        # One INSERT of all the rows: executemany would be one statement per row.
        insert_rows(con, "ops.load_ledger", _COLUMNS, values)
        insert_rows(con, "ops.gate_results", ["batch_id", "feed", "table_name", "expectation", "column_name",
                                              "severity", "success", "observed", "checked_at"], gate_rows)

    try:
        lake.commit(con, write, root)
    except DiskFull:
        keep_pending(rows, root)
        raise


# Ledger rows that could not be written because the disk was full: one JSON line each, written
# into ops.load_ledger by the next load (flush_pending) once there is space.
PENDING = "ledger_pending.jsonl"


def pending_path(root=None) -> Path:
    return settings.state_dir(root) / PENDING


def keep_pending(rows: list[LedgerRow], root=None) -> Path | None:
    """Append the rows to state/ledger_pending.jsonl (fsynced); None if even that cannot be written
    (state/ on the same full disk): then the run's `check` names the files as without a ledger row,
    and the load task's error names them and the full disk."""
    path = pending_path(root)
    lines = "".join(json.dumps({k: v for k, v in asdict(r).items() if k != "gate_results"}, default=str) + "\n"
                    for r in rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())
        return path
    except OSError:
        return None


def pending(root=None) -> list[LedgerRow]:
    """The ledger rows waiting in state/ledger_pending.jsonl (a cut last line, from a write the
    full disk stopped, is skipped: that write failed and its rows are not claimed kept)."""
    path = pending_path(root)
    if not path.exists():
        return []
    typed = {f.name: f.type for f in fields(LedgerRow)}
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        for name, kind in typed.items():
            if value.get(name) is None:
                continue
            if kind == "date":
                value[name] = date.fromisoformat(value[name])
            elif kind in ("datetime", "datetime | None"):
                value[name] = datetime.fromisoformat(value[name])
        out.append(LedgerRow(**value))
    return out


def flush_pending(con: duckdb.DuckDBPyConnection, root=None) -> list[LedgerRow]:
    """Write the pending ledger rows into ops.load_ledger (once: a row already there, by batch,
    file and finish time, is not written again), then remove the file."""
    rows = pending(root)
    if rows:
        have = set(con.execute(
            "select batch_id, source_file, finished_at from ops.load_ledger where batch_id in "
            f"(select unnest(?))", [sorted({r.batch_id for r in rows})]).fetchall())
        fresh = [r for r in rows if (r.batch_id, r.source_file, r.finished_at) not in have]
        if fresh:
            lake.commit(con, lambda: insert_rows(con, "ops.load_ledger", _COLUMNS, [_values(r) for r in fresh]), root)
    with contextlib.suppress(FileNotFoundError):
        pending_path(root).unlink()
    return rows


def _values(row: LedgerRow) -> list:
    value = asdict(row)
    value["tables"] = json.dumps(row.tables) if row.tables else None
    value["skipped"] = json.dumps(row.skipped) if row.skipped else None
    return [value[c] for c in _COLUMNS]


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], rows: list) -> None:
    if not rows:
        return
    placeholders = ", ".join("(" + ", ".join("?" * len(columns)) + ")" for _ in rows)
    con.execute(f"insert into {table} ({', '.join(columns)}) values {placeholders}",
                [value for row in rows for value in row])


def rows_for_run(run_id: str, feed: str | None = None, root=None) -> list[dict]:
    """The outcome of each file an Airflow run loaded: its latest attempt in that run (a task
    retry loads a file again; the retry's row is the one that counts)."""
    con = lake.connect(root, read_only=True)
    try:
        with lake.explained(root):  # a damaged ledger file: named, with the repair (check, jobs, announce)
            return _rows_for_run(con, run_id, feed)
    finally:
        con.close()


def _rows_for_run(con, run_id: str, feed: str | None) -> list[dict]:
    return lake.rows(
            con,
            """select * from ops.load_ledger
               where run_id = ? and (feed = ? or ? is null)
               qualify row_number() over (partition by feed, source_file order by finished_at desc) = 1
               order by feed, source_file""",
            [run_id, feed, feed])
