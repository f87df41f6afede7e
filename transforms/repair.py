"""A lake data file missing or damaged under the catalog: find it (`qala lake-check`) and repair
it (`qala repair`).

DuckLake's catalog lists every Parquet file of every table; a file deleted or overwritten behind
its back makes every query that reads it fail (DuckDB: "Cannot open file", "Invalid footer
length", ...), and so do a load of the feed (publish deletes a file's old rows, which reads
them) and the dbt build. The load path, replay, the scorecard and the KPI build say so as
`LakeDamaged` (errors.py): the table, the file and this repair.

`check` reads every file the catalog lists for the current snapshot, every column of every
row, and names each that is missing, of another size than the catalog recorded, or unreadable,
with its table and the landed source files whose rows were in it: read from the file's
`_source_file` column where that still reads, else from the batch that wrote it (the batch id is
the `_batch_id` column's statistics in the catalog, or the commit's extra_info that publish
sets) through ops.load_ledger and ops.file_profiles.

`repair` then, under the writer lock: moves each damaged file aside to
`lake/damaged/<time>/` (kept for a post-mortem), takes it out of its table in ONE lake transaction (DuckLake has no call that drops one data
file, and a DELETE opens every file it touches, so the table is dropped and created again from
its readable files, their delete files applied), and loads the affected
landed files again from landing/ through the normal load path (as replay does), so silver,
quarantine and ops.file_profiles end as an undisturbed load leaves them. A damaged file of
ops.load_ledger or ops.gate_results loses those history rows (they are not in landing/); the
landed files then left without any ledger row are loaded again, so each has one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import duckdb

from transforms import lake, settings
from transforms.contract import all_feeds
from transforms.schema import ident, literal

LEDGER_TABLES = ("ops.load_ledger", "ops.gate_results")


@dataclass
class Damage:
    table: str  # schema.table
    path: str  # the data (or delete) file as the catalog names it
    problem: str
    batch_ids: list[str] = field(default_factory=list)
    source_files: list[str] = field(default_factory=list)  # landed files whose rows were in it

    def __str__(self) -> str:
        whose = (f"; rows of {len(self.source_files)} landed file(s): {', '.join(self.source_files[:5])}"
                 + (" ..." if len(self.source_files) > 5 else "")) if self.source_files else ""
        return f"{self.table}: lake data file {self.path} is {self.problem}{whose}"


def _problem(con: duckdb.DuckDBPyConnection, path: str, size: int | None, deep: bool = True) -> str | None:
    """Why a Parquet file cannot serve its table (None: it reads whole; with deep=False, only its
    size and footer are looked at)."""
    if not Path(path).exists():
        return "missing (no such file)"
    actual = Path(path).stat().st_size
    if size is not None and actual != size:
        return f"damaged ({actual:,} bytes where the catalog recorded {size:,})"
    try:
        if deep:  # every column of every row decoded: hash() of the whole row reads each value
            con.execute("select count(*), bit_xor(hash(t)) from read_parquet(?) t", [path]).fetchall()
        else:
            con.execute("select count(*) from parquet_metadata(?)", [path]).fetchall()
    except duckdb.Error as error:
        return f"damaged (cannot be read as Parquet: {str(error).splitlines()[0][:200]})"
    return None


def check(root: Path | None = None, deep: bool = True, first_only: bool = False) -> list[Damage]:
    """Every catalog-registered data or delete file of the current snapshot that is missing or
    unreadable, with its table and the landed files whose rows it held. deep=False looks at
    sizes and footers only (lake.explain's quick look, when DuckDB's error names no file)."""
    root = root or settings.warehouse_root()
    listed = _live_files(root)
    con = lake.connect(root, read_only=True)
    try:
        found = []
        for (schema, table), files in listed.items():
            for data_file, data_size, delete_file, delete_size in files:
                problem = _problem(con, data_file, data_size, deep)
                if problem is None and delete_file:
                    problem = _problem(con, delete_file, delete_size, deep)
                    problem = problem and f"readable, but its delete file {delete_file} is {problem}"
                if problem:
                    damage = Damage(f"{schema}.{table}", data_file, problem)
                    _whose(con, damage, root)
                    found.append(damage)
                    if first_only:
                        return found
        return found
    finally:
        con.close()


def _live_files(root: Path) -> dict[tuple[str, str], list[tuple]]:
    """Per (schema, table), the data files of the current snapshot with their sizes and delete
    files: one query of the SQLite catalog (ducklake_list_files is one call per table, ~50 ms
    each); paths resolved as DuckLake resolves them (data_path / schema / table / file)."""
    import sqlite3

    catalog = sqlite3.connect(f"file:{lake.catalog_path(root)}?mode=ro", uri=True, timeout=30)
    try:
        (base,) = catalog.execute("select value from ducklake_metadata where key = 'data_path'").fetchone()
        rows = catalog.execute(
            """select s.schema_name, t.table_name, s.path, s.path_is_relative, t.path, t.path_is_relative,
                      f.path, f.path_is_relative, f.file_size_bytes, d.path, d.path_is_relative, d.file_size_bytes
               from ducklake_data_file f
               join ducklake_table t on t.table_id = f.table_id and t.end_snapshot is null
               join ducklake_schema s on s.schema_id = t.schema_id and s.end_snapshot is null
               left join ducklake_delete_file d on d.data_file_id = f.data_file_id and d.end_snapshot is null
               where f.end_snapshot is null
               order by s.schema_name, t.table_name, f.data_file_id""").fetchall()
    finally:
        catalog.close()
    out: dict[tuple[str, str], list[tuple]] = {}
    for schema, table, s_path, s_rel, t_path, t_rel, f_path, f_rel, f_size, d_path, d_rel, d_size in rows:
        schema_dir = base + s_path if s_rel else s_path
        table_dir = schema_dir + t_path if t_rel else t_path
        data = table_dir + f_path if f_rel else f_path
        delete = (table_dir + d_path if d_rel else d_path) if d_path else None
        out.setdefault((schema, table), []).append((data, f_size, delete, d_size))
    return out


def _whose(con: duckdb.DuckDBPyConnection, damage: Damage, root: Path) -> None:
    """The landed files whose rows the damaged file held, and the batch that wrote it."""
    if damage.table in LEDGER_TABLES:
        return  # history rows: no landed file holds them again (repair reloads files left without a row)
    column = "source_file" if damage.table == "ops.file_profiles" else "_source_file"
    try:
        damage.source_files = sorted(s for (s,) in con.execute(
            f"select distinct {column} from read_parquet(?)", [damage.path]).fetchall() if s)
        return
    except duckdb.Error:
        pass  # unreadable: the batch that wrote it says which files
    damage.batch_ids = _batches_of(damage.path, root)
    if damage.batch_ids:
        damage.source_files = sorted({s for (s,) in con.execute(
            "select source_file from ops.load_ledger where batch_id in (select unnest(?)) "
            "union select source_file from ops.file_profiles where batch_id in (select unnest(?))",
            [damage.batch_ids, damage.batch_ids]).fetchall()})


def _batches_of(path: str, root: Path) -> list[str]:
    """The batch that wrote a data file, from the catalog alone: the `_batch_id` (or `batch_id`)
    column's min/max statistics of the file, else the extra_info publish gave its commit."""
    import sqlite3

    name = Path(path).name
    catalog = sqlite3.connect(f"file:{lake.catalog_path(root)}?mode=ro", uri=True, timeout=30)
    try:
        row = catalog.execute("select data_file_id, table_id, begin_snapshot from ducklake_data_file "
                              "where path = ? or path like ?", [name, "%/" + name]).fetchone()
        if not row:
            return []
        file_id, table_id, snapshot = row
        stats = catalog.execute(
            """select s.min_value, s.max_value from ducklake_file_column_stats s
               join ducklake_column c on c.column_id = s.column_id and c.table_id = s.table_id
               where s.data_file_id = ? and s.table_id = ? and c.column_name in ('_batch_id', 'batch_id')""",
            [file_id, table_id]).fetchall()
        batches = {v for lo, hi in stats for v in (lo, hi) if v and lo == hi}
        if not batches:
            (extra,) = catalog.execute("select commit_extra_info from ducklake_snapshot_changes "
                                       "where snapshot_id = ?", [snapshot]).fetchone() or (None,)
            with_batch = json.loads(extra).get("batch_id") if extra else None
            batches = {with_batch} if with_batch else set()
        return sorted(batches)
    finally:
        catalog.close()


def unaccounted_landed(root: Path) -> dict[str, list[Path]]:
    """Per feed, the landed files no ledger row accounts for (runs.unaccounted over all days)."""
    from transforms.runs import landed_files, unaccounted

    con = lake.connect(root, read_only=True)
    try:
        have = {s for (s,) in con.execute("select distinct source_file from ops.load_ledger").fetchall()}
    finally:
        con.close()
    out = {}
    for feed in all_feeds():
        files = landed_files(feed, date.min, date.max, root)
        missing = set(unaccounted(feed, files, have, root)) if files else set()
        if missing:
            out[feed] = [p for p in files if settings.label_of(p, root) in missing]
    return out


@dataclass
class Repaired:
    damaged: list[Damage]
    moved_to: Path | None
    reloaded: dict[str, list]  # feed → its ledger rows of the reload
    not_in_landing: list[str]


def feed_of(label: str) -> str:
    """landing/<domain>/<feed>/<day>/<name> → <domain>/<feed>."""
    parts = Path(label).parts
    return f"{parts[1]}/{parts[2]}"


def repair(root: Path | None = None) -> Repaired:
    from transforms.load import LoadFailure, load_files

    root = root or settings.warehouse_root()
    damaged = check(root)
    moved_to = None
    if damaged:
        stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
        moved_to = settings.lake_dir(root) / "damaged" / stamp
        con = lake.connect(root)
        try:
            with lake.writer_lock(root):
                moved_to.mkdir(parents=True, exist_ok=True)
                for damage in damaged:
                    _move_aside(Path(damage.path), moved_to, root)
                    if "delete file" in damage.problem:
                        delete_file = damage.problem.split("its delete file ", 1)[1].split(" is ", 1)[0]
                        _move_aside(Path(delete_file), moved_to, root)
                (moved_to / "damaged.json").write_text(json.dumps(
                    [vars(d) for d in damaged], indent=1, ensure_ascii=False), encoding="utf-8")

                tables = sorted({d.table for d in damaged})
                gone = {d.path for d in damaged}
                plans = {t: _readable_files(con, t, gone) for t in tables}

                def rebuild() -> None:
                    for table, (create, columns, files) in plans.items():
                        _rebuild(con, table, create, columns, files)
                    con.execute(f"call {settings.LAKE_ALIAS}.set_commit_message('qala', ?, extra_info => ?)",
                                [f"repair: {len(damaged)} damaged data file(s) taken out of {', '.join(tables)}",
                                 json.dumps({"repair": sorted(gone)})])

                _commit_locked(con, rebuild)
        finally:
            con.close()
    # The landed files to load again: those whose rows were in a damaged file, and any landed
    # file left without a ledger row (a damaged ledger file's rows are gone).
    wanted: dict[str, set[Path]] = defaultdict(set)
    not_in_landing = []
    for damage in damaged:
        for label in damage.source_files:
            path = root / label
            if path.exists() or path.is_symlink():
                wanted[feed_of(label)].add(path)
            else:
                not_in_landing.append(label)
    if any(d.table in LEDGER_TABLES for d in damaged):
        for feed, paths in unaccounted_landed(root).items():
            wanted[feed].update(paths)
    run_id = f"repair__{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    reloaded = {}
    for feed, paths in sorted(wanted.items()):
        try:
            reloaded[feed] = load_files(feed, sorted(paths), run_id=run_id, root=root)
        except LoadFailure as failure:
            reloaded[feed] = failure.rows
    return Repaired(damaged, moved_to, reloaded, sorted(set(not_in_landing)))


def _readable_files(con: duckdb.DuckDBPyConnection, table: str, gone: set[str]):
    """(the table's CREATE statement, its columns, its data files but the damaged ones with their
    delete files), all from the catalog: nothing here opens a data file."""
    schema, name = table.split(".")
    (create,) = con.execute("select sql from duckdb_tables() where database_name = ? and schema_name = ? "
                            "and table_name = ?", [settings.LAKE_ALIAS, schema, name]).fetchone()
    columns = [c for (c,) in con.execute(
        "select column_name from duckdb_columns() where database_name = ? and schema_name = ? and table_name = ? "
        "order by column_index", [settings.LAKE_ALIAS, schema, name]).fetchall()]
    files = [(data, delete) for data, delete in con.execute(
        f"select data_file, delete_file from ducklake_list_files('{settings.LAKE_ALIAS}', ?, schema => ?)",
        [name, schema]).fetchall() if data not in gone]
    return create, columns, files


def _rebuild(con: duckdb.DuckDBPyConnection, table: str, create: str, columns: list[str],
             files: list[tuple[str, str | None]]) -> None:
    """The table dropped and created again with the rows of its readable files (DuckLake has no
    way to drop one data file from a table: a DELETE, even of every row, opens each file it
    touches, and a damaged one fails it; DROP TABLE reads none). The files are read as Parquet,
    their delete files applied by row position, as DuckLake itself reads them."""
    con.execute(f"drop table {table}")
    con.execute(create)
    for data, delete in files:
        present = {c for (c, *_rest) in con.execute("describe select * from read_parquet(?)", [data]).fetchall()}
        names = ", ".join(ident(c) for c in columns if c in present)
        where = (f" where file_row_number not in (select pos from read_parquet({literal(delete)}))" if delete else "")
        con.execute(f"insert into {table} ({names}) select {names} "
                    f"from read_parquet({literal(data)}, file_row_number = true){where}")


def _commit_locked(con: duckdb.DuckDBPyConnection, statements) -> None:
    """One lake transaction, the writer lock already held by the caller."""
    con.execute("begin")
    try:
        statements()
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _move_aside(path: Path, into: Path, root: Path) -> None:
    """Keep a damaged file for a post-mortem, out of the data path (a missing one: nothing to keep)."""
    if not path.exists():
        return
    data = lake.data_path(root)
    target = into / (path.relative_to(data) if path.is_relative_to(data) else path.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(path, target)
    except OSError:
        shutil.move(str(path), target)
