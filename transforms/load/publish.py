"""Step 4, publish: the batch's files' rows replaced in silver and quarantine, with their history
profiles in ops.file_profiles, in ONE lake transaction (a blocked file's records all go to
quarantine; silver keeps what it had of that file); then each file's outcome on its ledger row."""

from __future__ import annotations

import json

from transforms import lake, schema, settings
from transforms.ledger import BLOCKED, FAILED, PUBLISHED, insert_rows
from transforms.load import gating
from transforms.load.batch import Batch
from transforms.pseudonymise import check_key
from transforms.schema import Temp, ident, literal


def publish(batch: Batch) -> None:
    snapshot = commit(batch)
    for row in batch.rows.values():
        if row.status == FAILED:
            continue
        row.snapshot_id = snapshot
        row.data_docs = " ".join(batch.pages) or None
        if row.source_file in batch.blocked:
            row.status, row.reason = BLOCKED, batch.blocked[row.source_file]
            row.rows_published, row.rows_quarantined = 0, row.rows_in
        else:
            row.status = PUBLISHED
            row.reason = "; ".join(batch.notes.get(row.source_file, [])
                                   + gating.warnings(batch.results, row.logical_date)) or None


def commit(batch: Batch) -> int:
    """The one lake transaction; returns its snapshot id."""
    con, contract, blocked = batch.con, batch.contract, batch.blocked
    files = [r.source_file for r in batch.rows.values() if r.status != FAILED]
    files_table = Temp.BATCH_FILES
    con.execute(f"create or replace temp table {files_table} (_source_file varchar, blocked boolean, reason varchar, "
                "rule varchar)")
    # One statement (executemany is one per row: 1.5 s for a month of GTFS-Realtime files).
    insert_rows(con, files_table, ["_source_file", "blocked", "reason", "rule"],
                [(f, f in blocked, blocked.get(f), "schema" if f in batch.drifted else "gate") for f in files])
    batch_id = literal(batch.batch_id)

    def statements() -> None:
        # Under the writer lock: a key rotation that started (or completed) since the batch took
        # its key refuses it here, so no row is published under a retired key.
        if batch.hashes:
            check_key(batch.key, batch.root)
        for table in contract.tables:
            schema.ensure_tables(con, table)
            for layer in ("silver", "quarantine"):
                con.execute(f"delete from {layer}.{table.silver} where _source_file in "
                            f"(select _source_file from {files_table} where {'not blocked' if layer == 'silver' else 'true'})")
            con.execute(f"insert into silver.{table.silver} by name select {batch_id} as _batch_id, * "
                        f"from {Temp.clean(table.name)} "
                        f"where _source_file in (select _source_file from {files_table} where not blocked)")
            text = ", ".join(f"cast({ident(c.name)} as varchar) as {ident(c.name)}" for c in table.published_columns)
            con.execute(f"""insert into quarantine.{table.silver} by name
                select {batch_id} as _batch_id, * from {Temp.quarantined(table.name)}
                union all by name
                select {batch_id} as _batch_id, c._source_file, c._landing_date, c._source_line, c._source_member,
                       b.rule as _rule, b.reason as _reason, {text}
                from {Temp.clean(table.name)} c join {files_table} b using (_source_file) where b.blocked""")
        con.execute("delete from ops.file_profiles where feed = ? and source_file in "
                    f"(select _source_file from {files_table} where not blocked)", [contract.feed])
        for table in contract.tables:
            con.execute(f"insert into ops.file_profiles by name select ? as feed, ? as table_name, "
                        f"{batch_id} as batch_id, * from {Temp.profiles(table.name)}", [contract.feed, table.name])
        con.execute(f"call {settings.LAKE_ALIAS}.set_commit_message('qala', ?, extra_info => ?)",
                    [f"publish {batch.batch_id}", json.dumps({"batch_id": batch.batch_id, "files": len(files)})])

    lake.commit(con, statements, batch.root)
    (snapshot,) = con.execute(
        f"select max(snapshot_id) from {settings.LAKE_ALIAS}.snapshots() "
        f"where json_extract_string(commit_extra_info, '$.batch_id') = ?", [batch.batch_id]).fetchone()
    return snapshot
