"""Replay one batch after its contract or suite was fixed (`make replay FEED=... BATCH=...`).

The batch's files are checked again from their landed originals (landing/ never changes, and the
originals hold what quarantine no longer can: the raw identifiers a format rule reads), through the
same load path, under a batch and ledger rows of their own (run `replay__<batch>__<time>`). A load
replaces a file's rows in silver and quarantine in one transaction, so the records that now pass
are published and the rest stay in quarantine with their rule; replaying again publishes nothing
twice.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from transforms import lake, settings
from transforms.contract import load_contract
from transforms.ledger import LedgerRow
from transforms.load import LoadFailure, load_files


def batch_files(feed: str, batch_id: str, root: Path) -> list[dict]:
    """The ledger rows of the batch's files (their latest attempt in it)."""
    con = lake.connect(root, read_only=True)
    try:
        rows = lake.rows(con, """
            select source_file, status, rows_in, rows_published, rows_quarantined, reason from ops.load_ledger
            where batch_id = ? and feed = ?
            qualify row_number() over (partition by source_file order by finished_at desc) = 1
            order by source_file""", [batch_id, feed])
    finally:
        con.close()
    if not rows:
        raise LookupError(f"no batch {batch_id} of {feed} in ops.load_ledger (its batch_id column)")
    return rows


def replay(feed: str, batch_id: str, root: Path | None = None) -> tuple[list[dict], list[LedgerRow]]:
    """(the batch's ledger rows before, the replay's ledger rows)."""
    root = root or settings.warehouse_root()
    load_contract(feed)  # an unknown feed fails here, naming it
    with lake.explained(root):  # a damaged ledger file: named, with the repair
        before = batch_files(feed, batch_id, root)
    missing = [r["source_file"] for r in before if not (root / r["source_file"]).exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: the landed file is gone, so batch {batch_id} cannot be replayed "
                                f"(landing/ keeps every export as received)")
    run_id = f"replay__{batch_id}__{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    try:
        after = load_files(feed, [root / r["source_file"] for r in before], run_id=run_id, root=root)
    except LoadFailure as failure:
        after = failure.rows
    return before, after
