"""`Batch`: the one object a batch's load carries from step to step (see the package docstring):
its files and their ledger rows, its notes, the files it blocks and why, the gate's results and
Data Docs pages, on one DuckDB connection whose temp tables (`schema.Temp`) hold its records.
`load` runs the steps in order; `finish` is the last one, the ledger, reached whatever happened.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from transforms import lake, ledger, settings
from transforms.contract import Contract
from transforms.errors import BadInput, DiskFull, LakeDamaged
from transforms.ledger import FAILED, LedgerRow
from transforms.pseudonymise import KeyRefused, hmac_key

READ = "read"  # a file read whole, waiting for its batch's checks and gate


def landing_date_of(path: Path) -> date:
    """Files land in landing/<domain>/<feed>/<YYYY-MM-DD>/."""
    return date.fromisoformat(path.parent.name)


class Batch:
    """Landed files of one feed checked, gated and published together."""

    def __init__(self, con: duckdb.DuckDBPyConnection, contract: Contract, paths: list[Path], run_id: str | None,
                 root: Path):
        self.con, self.contract, self.paths, self.root = con, contract, paths, root
        first, last = landing_date_of(paths[0]), landing_date_of(paths[-1])
        span = f"{first:%Y%m%d}" + (f"-{last:%Y%m%d}" if last != first else "")
        self.batch_id = f"{contract.table}-{span}-{uuid.uuid4().hex[:8]}"
        self.run_id = run_id
        # Only a feed that hashes a column needs the key, and only its loads are refused while the
        # key rotates (pseudonymise.check_key; `refused` says why, `load` gives each file its row).
        self.hashes = any("hash" in t.pii.values() for t in contract.tables)
        self.key, self.refused = b"", None
        if self.hashes:
            try:
                self.key = hmac_key(root)
            except KeyRefused as error:
                self.refused = error
        self.suites: dict[str, dict] = {}  # table → its GX suite (and history section)
        # per file (its label): the ledger row, the notes its reason will carry
        self.rows: dict[str, LedgerRow] = {}
        self.notes: dict[str, list[str]] = {}
        self.pending: dict[tuple[str, str], list] = {}  # Arrow records per (table, select), read.py
        self.blocked: dict[str, str] = {}  # file → why it is blocked (the first reason found)
        self.drifted: set[str] = set()  # files blocked because a column changed type
        self.results: list[dict] = []  # gate and history results, for ops.gate_results
        self.pages: list[str] = []  # Data Docs pages of the gate's validations
        self.outcomes: list = []  # every GX validation of the load (Data Docs are built once per load)

    def label(self, path: Path) -> str:
        return settings.label_of(path, self.root)

    def new_row(self, path: Path) -> LedgerRow:
        row = LedgerRow(batch_id=self.batch_id, feed=self.contract.feed, logical_date=landing_date_of(path),
                        source_file=self.label(path), started_at=datetime.now(timezone.utc), run_id=self.run_id)
        self.rows[row.source_file] = row
        return row

    def readable(self) -> list[LedgerRow]:
        return [r for r in self.rows.values() if r.status != FAILED]

    def load(self, outcomes: list) -> list[LedgerRow]:
        """The steps, in order; every file ends with its ledger row."""
        from transforms.load import check, gating, publish, read

        self.outcomes = outcomes
        if self.refused is not None:  # nothing read: every file failed with why, then the error raised
            for path in self.paths:
                row = self.new_row(path)
                row.status, row.reason = FAILED, f"{row.source_file}: not loaded: {self.refused}"
            self.finish()
            raise self.refused
        with lake.off_lake(self.con):  # reading touches temp tables only
            read.read_files(self)
        readable = self.readable()
        if readable:
            try:
                self.suites = {t.name: t.suite() for t in self.contract.tables}
                with lake.off_lake(self.con):  # the checks and the gate work on temp tables only
                    for table in self.contract.tables:
                        if check.check_table(self, table):
                            gating.gate_table(self, table)
                    check.count(self)
                    check.history_checks(self)
                publish.publish(self)
            except Exception as error:
                error = lake.explain(error, self.root) or error
                known = isinstance(error, (DiskFull, LakeDamaged))
                for row in readable:
                    row.status = FAILED
                    # A full disk or a damaged lake file is said as such (the reason names the
                    # file, the place and what to do), not as an unexpected error.
                    row.reason = (f"{row.source_file}: failed: {error}" if known else
                                  f"unexpected {type(error).__name__} (the task retries): {error}")
                    row.rows_in = row.rows_published = row.rows_quarantined = 0
                self.results = []
                files = [r.source_file for r in readable]
                try:
                    self.finish()
                except DiskFull as full:
                    # The ledger itself could not be written: its rows wait in state/ (ledger.py)
                    # and the error says where, naming the files.
                    kept = ledger.pending_path(self.root)
                    raise DiskFull(full.where, full.free, full.total,
                                   f"{full.detail}; their ledger rows wait in {kept} until the next load "
                                   f"writes them" if kept.exists() else
                                   f"{full.detail}; their ledger rows could not be written anywhere", files) from error
                if isinstance(error, DiskFull):
                    raise error.naming(files) from error.__cause__
                if known:
                    raise error from error.__cause__
                raise
        self.finish()
        return list(self.rows.values())

    def attempt(self, row: LedgerRow | None, step: Callable):
        """Run one step of reading; a file's own fault fails that file (its ledger row says why)."""
        try:
            return step()
        except Exception as error:
            if row is not None and isinstance(error, (BadInput, FileNotFoundError)):
                row.status = FAILED
                row.reason = (str(error) if isinstance(error, BadInput) else
                              f"{row.source_file}: [missing] {error.strerror}")
                return None
            # Not the file's fault (lock, disk, a bug): recorded, then raised so Airflow retries.
            if row is not None:
                row.reason = f"unexpected {type(error).__name__} (the task retries): {error}"
            self.results = []
            self.finish()
            raise

    def finish(self) -> None:
        """The last step: every file's ledger row, and the gate's results, in one lake transaction."""
        self.con.execute(f"USE {settings.LAKE_ALIAS}")  # also when a failure cut `off_lake` short
        now = datetime.now(timezone.utc)
        for row in self.rows.values():
            row.finished_at = now
            if row.status == FAILED:
                row.rows_in = row.rows_published = row.rows_quarantined = 0
                row.tables = {}
                row.reason = row.reason or "not loaded: its batch stopped on an unexpected error (the task retries)"
        ledger.record(self.con, list(self.rows.values()), self.results, self.root)
