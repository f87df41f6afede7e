"""The one load path: landed files → read → row checks → pseudonymise → GX gate → publish in
one lake transaction → ledger rows.

    load_files("safety/road_accidents", [path, ...], run_id=...)

Files are loaded in batches: consecutive landed files of one feed, at most BATCH_DAYS landing
days and about BATCH_BYTES of data (a daily run's batch is its day). Each file is read on its
own, so a file that cannot be read fails alone; the records of a batch's files are then
checked, gated and published together, which keeps Great Expectations' fixed cost per batch,
not per file. Every rule that can refuse data holds per record or per file (primary keys are
unique within a file; suites may only block on per-record expectations), so a file gives the
same silver rows whether it is loaded alone or inside a backfill.

One `Batch` object (batch.py) carries a batch from step to step; each step is a module of this
package, and the data passes between them in the temp tables `schema.Temp` names:

    read.py     read_files     every file on its own → Temp.accepted / Temp.rejected (a file that
                               cannot be read: `failed`, with the file, line and rule)
    check.py    check_table    the contract's and the suite's row rules, and pseudonymisation (HMAC,
                               drop, year), in one DuckDB pass (checks.split) → Temp.clean /
                               Temp.quarantined; a column that changed type blocks its file;
                               the history profile of each file (history.py)
    gating.py   gate_table     the Great Expectations gate on the batch; a refused batch gated again
                               file by file, so only the offending files are `blocked`
    check.py    count, history_checks   rows in / published / quarantined per file; the history checks
    publish.py  publish        silver, quarantine and ops.file_profiles in ONE lake transaction;
                               each file's outcome (`published` or `blocked`)
    batch.py    Batch.finish   the ledger rows (ledger.record), whatever happened before

Outcomes, one ledger row per file: `not_read` (a landed file the feed does not read: a stray
`desktop.ini`, an NDJSON file no manifest lists; `readers.sort_landed` says which and why; a file a
FHIR manifest lists is read with it and counted in the manifest's row); `published`; `failed` (the file cannot be read as a whole:
nothing of it published, the reason names the file, line and rule); `blocked` (the gate refused
its records: they wait in quarantine with the failed expectation, silver keeps what it had).
`load_files` raises LoadFailure after every given file has its ledger row.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

from transforms import gate, lake, ledger, settings
from transforms.contract import load_contract
from transforms.errors import DiskFull
from transforms.ledger import BLOCKED, FAILED, NOT_READ, LedgerRow
from transforms.readers import sort_landed
from transforms.load.batch import Batch, landing_date_of
# The steps, imported with the package: the warm Airflow scheduler (orchestrate.py) imports
# transforms.load once, and every task process it forks starts with them.
from transforms.load import check, gating, publish, read  # noqa: E402,F401

__all__ = ["BATCH_BYTES", "BATCH_DAYS", "Batch", "LoadFailure", "batches", "landing_date_of", "load_files"]

# A batch's reach (environment, read at each load): landing days, and bytes of landed files.
BATCH_DAYS, BATCH_BYTES = "QALA_BATCH_DAYS", "QALA_BATCH_BYTES"


@dataclass
class LoadFailure(Exception):
    """Some files of a load did not publish; each has its ledger row saying why."""

    rows: list[LedgerRow]

    @property
    def failures(self) -> list[LedgerRow]:
        return [r for r in self.rows if r.status in (FAILED, BLOCKED)]

    def __str__(self) -> str:
        lines = [f"{len(self.failures)} file(s) not published:"]
        lines += [f"  {r.status}: {r.reason}" for r in self.failures]  # the reason names the file
        return "\n".join(lines)
def batches(paths: list[Path], days: int | None = None, size: int | None = None) -> Iterator[list[Path]]:
    """Consecutive files, cut at `days` landing days (31) or `size` bytes (256 MiB; a larger
    file is a batch alone)."""
    days = days or int(os.environ.get(BATCH_DAYS, "31"))
    size = size or int(os.environ.get(BATCH_BYTES, str(256 << 20)))
    batch: list[Path] = []
    batch_days: set[date] = set()
    batch_bytes = 0
    weights = _weights(paths)
    for path in sorted(paths, key=lambda p: (landing_date_of(p), p.name)):
        day, nbytes = landing_date_of(path), weights[path]
        if batch and ((day not in batch_days and len(batch_days) >= days) or batch_bytes + nbytes > size):
            yield batch
            batch, batch_days, batch_bytes = [], set(), 0
        batch.append(path)
        batch_days.add(day)
        batch_bytes += nbytes
    if batch:
        yield batch


def _weights(paths: list[Path]) -> dict[Path, int]:
    """The bytes each landed file brings: its share of its landing folder (a FHIR manifest
    brings the NDJSON files beside it, a CSV about itself)."""
    per_folder = Counter(p.parent for p in paths)
    folder_bytes = {folder: sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) if folder.exists() else 0
                    for folder in per_folder}
    return {p: folder_bytes[p.parent] // per_folder[p.parent] for p in paths}


def load_files(feed: str, paths: list[Path], run_id: str | None = None, root: Path | None = None,
               on_batch: Callable[[LedgerRow], None] | None = None) -> list[LedgerRow]:
    """Load the files in batches; `on_batch` hears of each file's outcome as its batch is done."""
    root = root or settings.warehouse_root()
    contract = load_contract(feed)
    try:
        with lake.explained(root):  # a disk too full to attach the catalog: said so, naming the files
            lake.ensure_lake(root)
            con = lake.connect(root)
    except DiskFull as full:
        raise full.naming([settings.label_of(Path(p), root) for p in paths]) from full.__cause__
    outcomes: list[gate.GateOutcome] = []
    # A timestamp a source writes without an offset is local time, as the contracts say.
    con.execute(f"set TimeZone = '{settings.LOCAL_TZ}'")
    rows: list[LedgerRow] = []
    landed = sort_landed(contract, [Path(p) for p in paths])
    failing = True
    try:
        # Ledger rows a full disk kept out of the lake (ledger.keep_pending), now that it writes.
        try:
            with lake.explained(root):
                ledger.flush_pending(con, root)
        except DiskFull as full:
            raise full.naming([settings.label_of(Path(p), root) for p in paths]) from full.__cause__
        if landed.unread:
            rows += not_read(con, contract, landed.unread, run_id, root)
            for row in rows:
                if on_batch:
                    on_batch(row)
        for batch in batches(landed.batches):
            with lake.explained(root):
                done = Batch(con, contract, batch, run_id, root).load(outcomes)
            rows += done
            for row in done:
                if on_batch:
                    on_batch(row)
        failing = False
    finally:
        con.close()
        try:
            gate.build_data_docs(outcomes, root)
        except OSError:
            # A full disk under reports/ must not hide the load's own error; when the load went
            # well, a page that cannot be written is the error.
            if not failing:
                raise
    if any(r.status in (FAILED, BLOCKED) for r in rows):
        raise LoadFailure(rows)
    return rows


def not_read(con, contract, unread: dict[Path, str], run_id: str | None, root: Path) -> list[LedgerRow]:
    """The ledger rows of the landed files the feed does not read: each file named, with why."""
    now = datetime.now(timezone.utc)
    rows = []
    for path, why in sorted(unread.items()):
        label = settings.label_of(path, root)
        regular = path.is_file() and not path.is_symlink()  # a link or a pipe is never opened
        rows.append(LedgerRow(batch_id=f"{contract.table}-not-read-{uuid.uuid4().hex[:8]}", feed=contract.feed,
                              logical_date=landing_date_of(path), source_file=label,
                              sha256=read.sha256(path) if regular else None,
                              bytes=path.stat().st_size if regular else None, status=NOT_READ,
                              reason=f"{label}: not read: {why}", run_id=run_id, started_at=now, finished_at=now))
    ledger.record(con, rows, [], root)
    return rows


