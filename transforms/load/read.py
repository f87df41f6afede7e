"""Step 1, read: every landed file of the batch on its own, by the reader of its format, into the
batch's `Temp.accepted` (records as text, with lineage) and `Temp.rejected` (records that could not
be split into fields). A file that cannot be read as a whole fails alone: its ledger row says why
(the file, the line and the rule) and none of its records enter the batch."""

from __future__ import annotations

import hashlib
from pathlib import Path

from transforms.errors import BadInput
from transforms.ledger import FAILED, LedgerRow
from transforms.load.batch import READ, Batch
from transforms.readers import ReadResult, archive, many_reader, reader
from transforms.schema import Temp, ident, literal


def read_files(batch: Batch) -> None:
    """Admit each file (size, zip bombs, checksum), let the format's `read_many` take what it can in
    one scan, read the rest one by one, then turn the Arrow records gathered into text."""
    accumulators(batch)
    ready = []
    for path in batch.paths:
        row = batch.new_row(path)
        if batch.attempt(row, lambda: admit(batch, path, row)):
            ready.append((path, row))
    taken = batch.attempt(None, lambda: read_many(batch, ready)) or set()
    for path, row in ready:
        if row.source_file not in taken and batch.attempt(row, lambda: read_file(batch, path, row)):
            row.status = READ
    batch.attempt(None, lambda: flush_arrows(batch))


def accumulators(batch: Batch) -> None:
    for table in batch.contract.tables:
        columns = ", ".join(f"{ident(c.name)} varchar" for c in table.columns)
        batch.con.execute(f"create or replace temp table {Temp.accepted(table.name)} ({columns}, _source_file varchar, "
                          f"_landing_date date, _source_line bigint, _source_member varchar)")
        batch.con.execute(f"create or replace temp table {Temp.rejected(table.name)} (_source_file varchar, "
                          f"_landing_date date, _source_line bigint, _source_member varchar, raw_line varchar, "
                          f"reason varchar)")


def admit(batch: Batch, path: Path, row: LedgerRow) -> bool:
    row.bytes = path.stat().st_size
    archive.check_size(path, row.source_file, batch.contract.format, allow_empty=True)  # the reader judges empty files
    row.sha256 = sha256(path)
    return True


def read_file(batch: Batch, path: Path, row: LedgerRow) -> bool:
    con, label = batch.con, row.source_file
    result: ReadResult = reader(batch.contract.format["type"])(con, path, batch.contract, label)
    lineage = f"{literal(label)} as _source_file, {literal(row.logical_date.isoformat())}::date as _landing_date"
    arrows = {name: read for name, read in result.tables.items() if read.arrow is not None}
    counts = {name: read.arrow.num_rows for name, read in arrows.items()}
    if len(arrows) == len(result.tables):
        take(batch, row, result, counts)
    else:
        con.execute("begin")  # a file's records enter the batch whole, or not at all
        try:
            for name, read in result.tables.items():
                if name in arrows:
                    continue
                # An insert answers with its row count.
                counts[name], = con.execute(
                    f"insert into {Temp.accepted(name)} by name select *, {lineage} from {read.relation}").fetchone()
                if read.rejected:
                    counts[name] += con.execute(
                        f"insert into {Temp.rejected(name)} by name select _source_line, _source_member, raw_line, "
                        f"reason, {lineage} from {read.rejected}").fetchone()[0]
            take(batch, row, result, counts)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    if arrows:  # gathered over the batch, and turned into text once (`flush_arrows`)
        import pyarrow as pa

        for name, read in arrows.items():
            n = read.arrow.num_rows
            arrow = read.arrow.append_column("_source_file", pa.array([label] * n, pa.string())).append_column(
                "_landing_date", pa.array([row.logical_date] * n, pa.date32()))
            batch.pending.setdefault((name, read.select), []).append(arrow)
    return True


def take(batch: Batch, row: LedgerRow, result: ReadResult, counts: dict[str, int]) -> None:
    """A file read: its encoding, skipped records, notes; refused below the contract's min_rows."""
    contract, label = batch.contract, row.source_file
    row.encoding = result.encoding
    row.skipped = dict(result.skipped)
    row.rows_skipped = sum(result.skipped.values())
    notes = list(result.notes)
    for name, read in result.tables.items():
        where = f" ({name})" if len(contract.tables) > 1 else ""
        if read.padded:
            notes.append(f"{read.padded} record(s){where} omit trailing optional fields: read with NULLs for them")
        if read.extra_columns:
            notes.append(f"schema drift{where}: column(s) not in the contract kept out of silver: "
                         f"{', '.join(read.extra_columns)}")
    # Records of kinds the contract does not take count too: an export of them is not empty.
    total = sum(counts.values()) + row.rows_skipped
    if total < contract.min_rows:
        raise BadInput(label, "min_rows", f"{total} record(s); the contract expects at least "
                                          f"{contract.min_rows} in every export (an empty export is a broken export)")
    batch.notes[label] = notes


def read_many(batch: Batch, ready: list[tuple[Path, LedgerRow]]) -> set[str]:
    """The files the format's `read_many` takes in one scan (the rest are read one by one)."""
    con, contract = batch.con, batch.contract
    scan = many_reader(contract.format["type"])
    if scan is None or len(ready) < 2:
        return set()
    taken = scan(con, [(p, r.source_file, r.logical_date.isoformat()) for p, r in ready], contract, Temp.MANY_READ)
    accepted = Temp.accepted(contract.single.name) if taken else None
    if taken:
        con.execute(f"insert into {accepted} by name select * from {Temp.MANY_READ}")
    for label, (result, count) in taken.items():
        row = batch.rows[label]
        try:
            take(batch, row, result, {result_table: count for result_table in result.tables})
            row.status = READ
        except BadInput as error:
            con.execute(f"delete from {accepted} where _source_file = ?", [label])
            row.status, row.reason = FAILED, str(error)
    return set(taken)


def flush_arrows(batch: Batch) -> None:
    """The Arrow records of the batch's files, into the accumulators in one statement per table."""
    import pyarrow as pa

    for (name, select), arrows in batch.pending.items():
        batch.con.register("pending_arrow", pa.concat_tables(arrows))
        try:
            batch.con.execute(f"insert into {Temp.accepted(name)} by name select {select}, _source_line, "
                              f"_source_member, _source_file, _landing_date from pending_arrow")
        finally:
            batch.con.unregister("pending_arrow")
    batch.pending.clear()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
