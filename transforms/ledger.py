"""ops.load_ledger: one row per batch (one landed file, one attempt), whatever its fate.

Invariant, for every row: rows_in = rows_published + rows_quarantined. A re-run appends a new
row; the latest row per source_file is the batch that silver holds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime

import duckdb

from transforms import lake

PUBLISHED, BLOCKED, FAILED = "published", "blocked", "failed"


@dataclass
class LedgerRow:
    batch_id: str
    feed: str
    logical_date: date
    source_file: str
    started_at: datetime
    sha256: str | None = None
    bytes: int | None = None
    encoding: str | None = None
    rows_in: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    status: str = FAILED
    reason: str | None = None
    snapshot_id: int | None = None
    run_id: str | None = None
    data_docs: str | None = None
    finished_at: datetime | None = None
    gate_results: list[dict] = field(default_factory=list, repr=False)


_COLUMNS = [f.name for f in fields(LedgerRow) if f.name != "gate_results"]


def record(con: duckdb.DuckDBPyConnection, row: LedgerRow, root=None) -> None:
    """Append the batch's ledger row and its gate results, in one lake transaction."""
    values = asdict(row)
    gate_rows = [
        (row.batch_id, row.feed, r["expectation"], r["column"], r["severity"], r["success"],
         r["observed"], row.finished_at)
        for r in row.gate_results
    ]

    def write() -> None:
        con.execute(
            f"insert into ops.load_ledger ({', '.join(_COLUMNS)}) values ({', '.join('?' * len(_COLUMNS))})",
            [values[c] for c in _COLUMNS])
        if gate_rows:
            con.executemany("insert into ops.gate_results values (?, ?, ?, ?, ?, ?, ?, ?)", gate_rows)

    lake.commit(con, write, root)


def rows_for_run(run_id: str, feed: str | None = None, root=None) -> list[dict]:
    """The outcome of each file an Airflow run loaded: its latest attempt in that run (a task
    retry loads a file again; the retry's row is the one that counts)."""
    con = lake.connect(root, read_only=True)
    try:
        cursor = con.execute(
            """select * from ops.load_ledger
               where run_id = ? and (feed = ? or ? is null)
               qualify row_number() over (partition by feed, source_file order by finished_at desc) = 1
               order by feed, source_file""",
            [run_id, feed, feed])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in cursor.fetchall()]
    finally:
        con.close()
