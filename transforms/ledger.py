"""ops.load_ledger: one row per landed file and attempt, whatever its fate.

A batch is the set of landed files of one feed that one load step checks, gates and publishes
together (a day's files in a daily run; up to a month of them in a history run); its files share
the batch_id. Invariant, for every row: rows_in = rows_published + rows_quarantined. A re-run
appends new rows; the latest row per source_file says what silver holds of that file.
"""

from __future__ import annotations

from dataclasses import asdict

import duckdb

from transforms import lake
# The row's fields and statuses are the lake schema's (transforms/schema.py); named here too for the
# load path and the commands, which speak of the ledger.
from transforms.schema import BLOCKED, FAILED, NOT_READ, PUBLISHED, LedgerRow, ledger_columns  # noqa: F401

_COLUMNS = ledger_columns()


def record(con: duckdb.DuckDBPyConnection, rows: list[LedgerRow], gate_results: list[dict], root=None) -> None:
    """Append the ledger rows of a batch's files and its gate results, in one lake transaction."""
    import json

    values = []
    for row in rows:
        value = asdict(row)
        value["tables"] = json.dumps(row.tables) if row.tables else None
        value["skipped"] = json.dumps(row.skipped) if row.skipped else None
        values.append([value[c] for c in _COLUMNS])
    checked_at = max((r.finished_at for r in rows if r.finished_at), default=None)
    gate_rows = [(rows[0].batch_id, rows[0].feed, r.get("table"), r["expectation"], r["column"], r["severity"],
                  r["success"], r["observed"], checked_at) for r in gate_results] if rows else []

    def write() -> None:
        # One INSERT of all the rows: executemany would be one statement per row.
        insert_rows(con, "ops.load_ledger", _COLUMNS, values)
        insert_rows(con, "ops.gate_results", ["batch_id", "feed", "table_name", "expectation", "column_name",
                                              "severity", "success", "observed", "checked_at"], gate_rows)

    lake.commit(con, write, root)


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
        return lake.rows(
            con,
            """select * from ops.load_ledger
               where run_id = ? and (feed = ? or ? is null)
               qualify row_number() over (partition by feed, source_file order by finished_at desc) = 1
               order by feed, source_file""",
            [run_id, feed, feed])
    finally:
        con.close()
