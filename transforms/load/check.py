"""Step 2, check and pseudonymise: per contract table, the row rules of the contract and of the
suite, with personal identifiers replaced by their HMAC (dropped, or coarsened to the year) in the
same DuckDB pass (`checks.split`: Temp.accepted → Temp.clean and Temp.quarantined), so no raw
identifier reaches a table that outlives the batch; a column whose every value fails its type
blocks its file (drift), unless the file is an export of many tables (a zip), where that member's
records are quarantined and the others publish. Then each file's history profile (history.py), and, once the gate has
spoken, the counts per file and the history checks of the days that publish."""

from __future__ import annotations

from transforms import checks, history
from transforms.contract import Table
from transforms.ledger import FAILED
from transforms.load.batch import Batch
from transforms.schema import Temp, literal


def check_table(batch: Batch, table: Table) -> bool:
    """The row checks of one table; True when a file of the batch holds it (it is then gated)."""
    con, suite = batch.con, batch.suites[table.name]
    references = {}
    for column, target in table.references.items():
        other, _, other_column = target.partition(".")
        references[column] = (Temp.accepted(other), other_column)
    _, _, changed = checks.split(con, table, Temp.accepted(table.name), Temp.rejected(table.name), suite, batch.key,
                                 references)
    for source_file, reason in changed.items():
        if len(batch.contract.tables) > 1:
            # An export of many tables (a zip): one member's column is no reason to hold back the
            # others; its records stay quarantined, each with its rule, and the file says why.
            batch.notes.setdefault(source_file, []).append(reason.split(": ", 1)[1] + " (records quarantined)")
            continue
        batch.blocked.setdefault(source_file, reason)  # the drift policy: a changed type blocks
        batch.drifted.add(source_file)
    history.profile(con, table, suite, Temp.clean(table.name), Temp.quarantined(table.name))
    present, = con.execute(f"select count(*) from {Temp.clean(table.name)}").fetchone()
    return bool(present or con.execute(f"select count(*) from {Temp.accepted(table.name)}").fetchone()[0])


def count(batch: Batch) -> None:
    """rows_in / published / quarantined per file and table, from what the checks made."""
    con, tables = batch.con, batch.contract.tables
    for table in tables:
        counts = con.execute(
            f"""select _source_file, sum(published), sum(quarantined) from (
                    select _source_file, count(*) as published, 0 as quarantined from {Temp.clean(table.name)} group by 1
                    union all
                    select _source_file, 0, count(*) from {Temp.quarantined(table.name)} group by 1)
                group by 1""").fetchall()
        for source_file, published, quarantined in counts:
            row = batch.rows[source_file]
            row.tables[table.name] = {"in": int(published + quarantined), "published": int(published),
                                      "quarantined": int(quarantined)}
    for row in batch.rows.values():
        if row.status == FAILED:
            continue
        row.rows_published = sum(t["published"] for t in row.tables.values())
        row.rows_quarantined = sum(t["quarantined"] for t in row.tables.values())
        row.rows_in = row.rows_published + row.rows_quarantined
        if row.rows_quarantined:
            rules = con.execute(
                " union all ".join(f"select _rule from {Temp.quarantined(t.name)} where _source_file = ?"
                                   for t in tables).join(["select _rule, count(*) from (", ") group by 1 order by 2 desc, 1"]),
                [row.source_file] * len(tables)).fetchall()
            batch.notes.setdefault(row.source_file, []).insert(
                0, "quarantined: " + ", ".join(f"{n} × {rule}" for rule, n in rules))


def history_checks(batch: Batch) -> None:
    """The days that publish, against the feed's own past (severity warn)."""
    for table in batch.contract.tables:
        if batch.blocked:
            batch.con.execute(f"delete from {Temp.profiles(table.name)} where source_file in "
                              f"({', '.join(literal(f) for f in batch.blocked)})")
        batch.results += history.check(batch.con, table, batch.suites[table.name], Temp.profiles(table.name))
