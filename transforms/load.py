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

Outcomes, one ledger row per file: `published`; `failed` (the file cannot be read as a whole:
nothing of it published, the reason names the file, line and rule); `blocked` (the gate refused
its records: they wait in quarantine with the failed expectation, silver keeps what it had).
A batch the gate refuses is re-gated file by file, so only the offending files are blocked.
`load_files` raises LoadFailure after every given file has its ledger row.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from transforms import checks, gate, history, lake, schema, settings
from transforms.contract import Contract, Table, load_contract
from transforms.errors import BadInput
from transforms.ledger import BLOCKED, FAILED, PUBLISHED, LedgerRow, insert_rows, record
from transforms.pseudonymise import hmac_key
from transforms.readers import ReadResult, archive, many_reader, reader
from transforms.schema import Temp

# A batch's reach (environment, read at each load): landing days, and bytes of landed files.
BATCH_DAYS, BATCH_BYTES = "QALA_BATCH_DAYS", "QALA_BATCH_BYTES"
READ = "read"  # a file read whole, waiting for its batch's checks and gate


@dataclass
class LoadFailure(Exception):
    """Some files of a load did not publish; each has its ledger row saying why."""

    rows: list[LedgerRow]

    @property
    def failures(self) -> list[LedgerRow]:
        return [r for r in self.rows if r.status != PUBLISHED]

    def __str__(self) -> str:
        lines = [f"{len(self.failures)} file(s) not published:"]
        lines += [f"  {r.status}: {r.reason}" for r in self.failures]  # the reason names the file
        return "\n".join(lines)


def landing_date_of(path: Path) -> date:
    """Files land in landing/<domain>/<feed>/<YYYY-MM-DD>/."""
    return date.fromisoformat(path.parent.name)


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
    lake.ensure_lake(root)
    contract = load_contract(feed)
    outcomes: list[gate.GateOutcome] = []
    con = lake.connect(root)
    # A timestamp a source writes without an offset is local time, as the contracts say.
    con.execute(f"set TimeZone = '{settings.LOCAL_TZ}'")
    rows: list[LedgerRow] = []
    try:
        for batch in batches([Path(p) for p in paths]):
            done = Batch(con, contract, batch, run_id, root).load(outcomes)
            rows += done
            for row in done:
                if on_batch:
                    on_batch(row)
    finally:
        con.close()
        gate.build_data_docs(outcomes, root)
    if any(r.status != PUBLISHED for r in rows):
        raise LoadFailure(rows)
    return rows


class Batch:
    """Landed files of one feed checked, gated and published together."""

    def __init__(self, con: duckdb.DuckDBPyConnection, contract: Contract, paths: list[Path], run_id: str | None,
                 root: Path):
        self.con, self.contract, self.paths, self.root = con, contract, paths, root
        first, last = landing_date_of(paths[0]), landing_date_of(paths[-1])
        span = f"{first:%Y%m%d}" + (f"-{last:%Y%m%d}" if last != first else "")
        self.batch_id = f"{contract.table}-{span}-{uuid.uuid4().hex[:8]}"
        self.run_id = run_id
        self.rows: dict[str, LedgerRow] = {}
        self.notes: dict[str, list[str]] = {}
        self.key = hmac_key(root)
        self.pending: dict[tuple[str, str], list] = {}  # Arrow records per (table, select)
        self.drifted: set[str] = set()  # files blocked because a column changed type

    def label(self, path: Path) -> str:
        resolved = path.resolve()
        return str(resolved.relative_to(self.root)) if resolved.is_relative_to(self.root) else str(path)

    # --- read every file on its own
    def _accumulators(self) -> None:
        for table in self.contract.tables:
            columns = ", ".join(f"{checks.ident(c.name)} varchar" for c in table.columns)
            self.con.execute(f"create or replace temp table {Temp.accepted(table.name)} ({columns}, _source_file varchar, "
                             f"_landing_date date, _source_line bigint, _source_member varchar)")
            self.con.execute(f"create or replace temp table {Temp.rejected(table.name)} (_source_file varchar, _landing_date date, "
                             f"_source_line bigint, _source_member varchar, raw_line varchar, reason varchar)")

    def _read(self, path: Path, row: LedgerRow) -> bool:
        label = row.source_file
        result: ReadResult = reader(self.contract.format["type"])(self.con, path, self.contract, label)
        lineage = f"{checks.literal(label)} as _source_file, {checks.literal(row.logical_date.isoformat())}::date as _landing_date"
        arrows = {name: read for name, read in result.tables.items() if read.arrow is not None}
        counts = {name: read.arrow.num_rows for name, read in arrows.items()}
        if len(arrows) == len(result.tables):
            self._take(row, result, counts)
        else:
            self.con.execute("begin")  # a file's records enter the batch whole, or not at all
            try:
                for name, read in result.tables.items():
                    if name in arrows:
                        continue
                    # An insert answers with its row count.
                    counts[name], = self.con.execute(
                        f"insert into {Temp.accepted(name)} by name select *, {lineage} from {read.relation}").fetchone()
                    if read.rejected:
                        counts[name] += self.con.execute(
                            f"insert into {Temp.rejected(name)} by name select _source_line, _source_member, raw_line, "
                            f"reason, {lineage} from {read.rejected}").fetchone()[0]
                self._take(row, result, counts)
                self.con.execute("commit")
            except BaseException:
                self.con.execute("rollback")
                raise
        if arrows:  # gathered over the batch, and turned into text once (`_flush_arrows`)
            import pyarrow as pa

            for name, read in arrows.items():
                n = read.arrow.num_rows
                arrow = read.arrow.append_column("_source_file", pa.array([label] * n, pa.string())).append_column(
                    "_landing_date", pa.array([row.logical_date] * n, pa.date32()))
                self.pending.setdefault((name, read.select), []).append(arrow)
        return True

    def _take(self, row: LedgerRow, result: ReadResult, counts: dict[str, int]) -> None:
        """A file read: its encoding, skipped records, notes; refused below the contract's min_rows."""
        label = row.source_file
        row.encoding = result.encoding
        row.skipped = dict(result.skipped)
        row.rows_skipped = sum(result.skipped.values())
        notes = list(result.notes)
        for name, read in result.tables.items():
            if read.extra_columns:
                where = f" ({name})" if len(self.contract.tables) > 1 else ""
                notes.append(f"schema drift{where}: column(s) not in the contract kept out of silver: "
                             f"{', '.join(read.extra_columns)}")
        total = sum(counts.values())
        if total < self.contract.min_rows:
            raise BadInput(label, "min_rows", f"{total} record(s); the contract expects at least "
                                              f"{self.contract.min_rows} in every export (an empty export is a broken export)")
        self.notes[label] = notes

    def _read_many(self, ready: list[tuple[Path, LedgerRow]]) -> set[str]:
        """The files the format's `read_many` takes in one scan (the rest are read one by one)."""
        read_many = many_reader(self.contract.format["type"])
        if read_many is None or len(ready) < 2:
            return set()
        taken = read_many(self.con, [(p, r.source_file, r.logical_date.isoformat()) for p, r in ready],
                          self.contract, Temp.MANY_READ)
        if taken:
            name = self.contract.single.name
            self.con.execute(f"insert into {Temp.accepted(name)} by name select * from {Temp.MANY_READ}")
        for label, (result, count) in taken.items():
            row = self.rows[label]
            try:
                self._take(row, result, {result_table: count for result_table in result.tables})
                row.status = READ
            except BadInput as error:
                self.con.execute(f"delete from {Temp.accepted(self.contract.single.name)} where _source_file = ?", [label])
                row.status, row.reason = FAILED, str(error)
        return set(taken)

    def _flush_arrows(self) -> None:
        """The Arrow records of the batch's files, into the accumulators in one statement per table."""
        import pyarrow as pa

        for (name, select), arrows in self.pending.items():
            self.con.register("pending_arrow", pa.concat_tables(arrows))
            try:
                self.con.execute(f"insert into {Temp.accepted(name)} by name select {select}, _source_line, _source_member, "
                                 f"_source_file, _landing_date from pending_arrow")
            finally:
                self.con.unregister("pending_arrow")
        self.pending.clear()

    # --- the whole batch
    def load(self, outcomes: list) -> list[LedgerRow]:
        with lake.off_lake(self.con):  # reading touches temp tables only
            self._accumulators()
            ready = []
            for path in self.paths:
                row = LedgerRow(batch_id=self.batch_id, feed=self.contract.feed, logical_date=landing_date_of(path),
                                source_file=self.label(path), started_at=datetime.now(timezone.utc), run_id=self.run_id)
                self.rows[row.source_file] = row
                if self._attempt(row, lambda: self._admit(path, row)):
                    ready.append((path, row))
            taken = self._attempt(None, lambda: self._read_many(ready)) or set()
            for path, row in ready:
                if row.source_file not in taken and self._attempt(row, lambda: self._read(path, row)):
                    row.status = READ
            self._attempt(None, self._flush_arrows)
        readable = [r for r in self.rows.values() if r.status != FAILED]
        gate_results: list[dict] = []
        if readable:
            try:
                gate_results = self._check_gate_publish(outcomes)
            except Exception as error:
                for row in readable:
                    row.status, row.reason = FAILED, f"unexpected {type(error).__name__} (the task retries): {error}"
                    row.rows_in = row.rows_published = row.rows_quarantined = 0
                self._finish([])
                raise
        self._finish(gate_results)
        return list(self.rows.values())

    def _admit(self, path: Path, row: LedgerRow) -> bool:
        row.bytes = path.stat().st_size
        archive.check_size(path, row.source_file, self.contract.format, allow_empty=True)  # the reader judges empty files
        row.sha256 = _sha256(path)
        return True

    def _attempt(self, row: LedgerRow | None, step: Callable):
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
            self._finish([])
            raise

    def _check_gate_publish(self, outcomes: list) -> list[dict]:
        con, contract = self.con, self.contract
        suites = {t.name: t.suite() for t in contract.tables}
        results: list[dict] = []
        blocked: dict[str, str] = {}
        pages: list[str] = []
        with lake.off_lake(con):  # the checks and the gate work on temp tables only
            for table in contract.tables:
                references = {}
                for column, target in table.references.items():
                    other, _, other_column = target.partition(".")
                    references[column] = (Temp.accepted(other), other_column)
                _, _, changed = checks.split(con, table, Temp.accepted(table.name), Temp.rejected(table.name),
                                             suites[table.name], self.key, references)
                for source_file, reason in changed.items():  # the drift policy: a changed type blocks
                    blocked.setdefault(source_file, reason)
                    self.drifted.add(source_file)
                history.profile(con, table, suites[table.name], Temp.clean(table.name), Temp.quarantined(table.name))
                present, = con.execute(f"select count(*) from {Temp.clean(table.name)}").fetchone()
                if not present and not con.execute(f"select count(*) from {Temp.accepted(table.name)}").fetchone()[0]:
                    continue  # no file of the batch holds this table
                outcome = self._gate(table, None)
                outcomes.append(outcome)
                results += outcome.results
                if outcome.data_docs:
                    pages.append(outcome.data_docs)
                if not outcome.passed:
                    for source_file, reason in self._blame(table, outcome, outcomes).items():
                        blocked.setdefault(source_file, reason)
            self._count(blocked)
            for table in contract.tables:  # the days that publish, against the feed's own past
                if blocked:
                    con.execute(f"delete from {Temp.profiles(table.name)} where source_file in "
                                f"({', '.join(checks.literal(f) for f in blocked)})")
                results += history.check(con, table, suites[table.name], Temp.profiles(table.name))
        snapshot = self._publish(blocked)
        for row in self.rows.values():
            if row.status == FAILED:
                continue
            row.snapshot_id = snapshot
            row.data_docs = " ".join(pages) or None
            if row.source_file in blocked:
                row.status, row.reason = BLOCKED, blocked[row.source_file]
                row.rows_published, row.rows_quarantined = 0, row.rows_in
            else:
                row.status = PUBLISHED
                row.reason = "; ".join(self.notes.get(row.source_file, []) + self._warnings(results, row.logical_date)) or None
        return results

    def _frame(self, table: Table, source_file: str | None):
        where = "" if source_file is None else f"where _source_file = {checks.literal(source_file)}"
        # INTEGER as BIGINT: GX compares int64 and float64 columns vectorised, but an int32 one
        # value by value in Python (expect_column_values_to_be_between: ~3 s per million rows).
        columns = ", ".join(f"cast({checks.ident(c.name)} as bigint) as {checks.ident(c.name)}"
                            if c.type == "INTEGER" and c.name not in table.pii else checks.ident(c.name)
                            for c in table.published_columns)
        # Through Arrow: DuckDB's own .df() takes ~10x longer on text columns (pandas 3 strings).
        return self.con.execute(f"select {columns}, _source_file from {Temp.clean(table.name)} {where}").to_arrow_table().to_pandas()

    def _gate(self, table: Table, source_file: str | None) -> gate.GateOutcome:
        return gate.validate(table, self._frame(table, source_file), self.batch_id, self.root)

    def _blame(self, table: Table, outcome: gate.GateOutcome, outcomes: list) -> dict[str, str]:
        """The files whose records made the gate refuse the batch: each is gated alone."""
        files = [f for (f,) in self.con.execute(f"select distinct _source_file from {Temp.clean(table.name)} order by 1").fetchall()]
        summary = outcome.summary(outcome.blocking_failures)
        if len(files) <= 1:
            return {f: self._blocked_reason(f, table, summary, outcome.data_docs) for f in files}
        guilty = {}
        for source_file in files:
            alone = self._gate(table, source_file)
            outcomes.append(alone)
            if not alone.passed:
                guilty[source_file] = self._blocked_reason(source_file, table, alone.summary(alone.blocking_failures),
                                                           alone.data_docs)
        # Per-record rules fail in some file when they fail in the batch; if none does, the batch
        # as a whole is refused rather than trusted.
        return guilty or {f: self._blocked_reason(f, table, summary, outcome.data_docs) for f in files}

    @staticmethod
    def _blocked_reason(source_file: str, table: Table, summary: str, docs: str | None) -> str:
        return f"{source_file}: gate blocked {table.silver}: {summary}" + (f" (Data Docs: {docs})" if docs else "")

    @staticmethod
    def _warnings(results: list[dict], day: date) -> list[str]:
        """The batch's failed warn expectations, and its history checks of this landing day."""
        warned = [r for r in results if not r["success"] and r["severity"] == gate.WARN
                  and r.get("landing_date", day) == day]
        return [f"warn: {r['table']}: {r['expectation']}({r['column'] or ''}) observed {r['observed']}" for r in warned]

    def _count(self, blocked: dict[str, str]) -> None:
        """rows_in / published / quarantined per file and table, from what the checks made."""
        for table in self.contract.tables:
            counts = self.con.execute(
                f"""select _source_file, sum(published), sum(quarantined) from (
                        select _source_file, count(*) as published, 0 as quarantined from {Temp.clean(table.name)} group by 1
                        union all
                        select _source_file, 0, count(*) from {Temp.quarantined(table.name)} group by 1)
                    group by 1""").fetchall()
            for source_file, published, quarantined in counts:
                row = self.rows[source_file]
                row.tables[table.name] = {"in": int(published + quarantined), "published": int(published),
                                          "quarantined": int(quarantined)}
        for row in self.rows.values():
            if row.status == FAILED:
                continue
            row.rows_published = sum(t["published"] for t in row.tables.values())
            row.rows_quarantined = sum(t["quarantined"] for t in row.tables.values())
            row.rows_in = row.rows_published + row.rows_quarantined
            if row.rows_quarantined:
                rules = self.con.execute(
                    " union all ".join(f"select _rule from {Temp.quarantined(t.name)} where _source_file = ?"
                                       for t in self.contract.tables).join(["select _rule, count(*) from (", ") group by 1 order by 2 desc, 1"]),
                    [row.source_file] * len(self.contract.tables)).fetchall()
                self.notes.setdefault(row.source_file, []).insert(
                    0, "quarantined: " + ", ".join(f"{n} × {rule}" for rule, n in rules))

    def _publish(self, blocked: dict[str, str]) -> int:
        """Replace the batch's files' rows in silver and quarantine, in ONE lake transaction.
        A blocked file's records all go to quarantine; silver keeps what it had of that file."""
        con, contract = self.con, self.contract
        files = [r.source_file for r in self.rows.values() if r.status != FAILED]
        files_table = Temp.BATCH_FILES
        con.execute(f"create or replace temp table {files_table} (_source_file varchar, blocked boolean, reason varchar, "
                    "rule varchar)")
        # One statement (executemany is one per row: 1.5 s for a month of GTFS-Realtime files).
        insert_rows(con, files_table, ["_source_file", "blocked", "reason", "rule"],
                    [(f, f in blocked, blocked.get(f), "schema" if f in self.drifted else "gate") for f in files])
        batch = checks.literal(self.batch_id)

        def statements() -> None:
            for table in contract.tables:
                schema.ensure_tables(con, table)
                for layer in ("silver", "quarantine"):
                    con.execute(f"delete from {layer}.{table.silver} where _source_file in "
                                f"(select _source_file from {files_table} where {'not blocked' if layer == 'silver' else 'true'})")
                con.execute(f"insert into silver.{table.silver} by name select {batch} as _batch_id, * from {Temp.clean(table.name)} "
                            f"where _source_file in (select _source_file from {files_table} where not blocked)")
                text = ", ".join(f"cast({checks.ident(c.name)} as varchar) as {checks.ident(c.name)}" for c in table.published_columns)
                con.execute(f"""insert into quarantine.{table.silver} by name
                    select {batch} as _batch_id, * from {Temp.quarantined(table.name)}
                    union all by name
                    select {batch} as _batch_id, c._source_file, c._landing_date, c._source_line, c._source_member,
                           b.rule as _rule, b.reason as _reason, {text}
                    from {Temp.clean(table.name)} c join {files_table} b using (_source_file) where b.blocked""")
            con.execute("delete from ops.file_profiles where feed = ? and source_file in "
                        f"(select _source_file from {files_table} where not blocked)", [contract.feed])
            for table in contract.tables:
                con.execute(f"insert into ops.file_profiles by name select ? as feed, ? as table_name, "
                            f"{batch} as batch_id, * from {Temp.profiles(table.name)}", [contract.feed, table.name])
            con.execute(f"call {settings.LAKE_ALIAS}.set_commit_message('qala', ?, extra_info => ?)",
                        [f"publish {self.batch_id}", json.dumps({"batch_id": self.batch_id, "files": len(files)})])

        lake.commit(con, statements, self.root)
        (snapshot,) = con.execute(
            f"select max(snapshot_id) from {settings.LAKE_ALIAS}.snapshots() "
            f"where json_extract_string(commit_extra_info, '$.batch_id') = ?", [self.batch_id]).fetchone()
        return snapshot

    def _finish(self, gate_results: list[dict]) -> None:
        self.con.execute(f"USE {settings.LAKE_ALIAS}")  # also when a failure cut `off_lake` short
        now = datetime.now(timezone.utc)
        for row in self.rows.values():
            row.finished_at = now
            if row.status == FAILED:
                row.rows_in = row.rows_published = row.rows_quarantined = 0
                row.tables = {}
                row.reason = row.reason or "not loaded: its batch stopped on an unexpected error (the task retries)"
        record(self.con, list(self.rows.values()), gate_results, self.root)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
