"""The lakehouse: DuckLake with a SQLite catalog and Parquet data under the warehouse.

One function attaches the lake (`connect`); one creates what a fresh warehouse lacks
(`ensure_lake`). `attach.sql` at the warehouse root holds the same ATTACH for analysts.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from transforms import schema, settings
from transforms.errors import DiskFull, LakeDamaged

SCHEMAS = ("silver", "quarantine", "ops", "reference", "staging", "intermediate", "marts")

# The DuckDB extensions Qala needs, shipped as PyPI packages pinned to the duckdb version:
# nothing is downloaded at run time.
EXTENSION_PACKAGES = {
    "ducklake": "duckdb_extension_ducklake",
    "sqlite_scanner": "duckdb_extension_sqlite_scanner",
}

# SQLite is the catalog: writers wait for each other instead of failing at once.
_CATALOG_OPTIONS = "META_JOURNAL_MODE 'WAL', META_BUSY_TIMEOUT 30000"

def install_extensions() -> None:
    """Copy the packaged extension binaries into DuckDB's extension directory (idempotent)."""
    import importlib

    con = duckdb.connect()
    installed = {
        name
        for (name,) in con.execute(
            "select extension_name from duckdb_extensions() where installed"
        ).fetchall()
    }
    for name, package in EXTENSION_PACKAGES.items():
        if name in installed:
            continue
        package_dir = Path(importlib.import_module(package).__file__).parent
        (binary,) = package_dir.glob(f"extensions/v{duckdb.__version__}/*.duckdb_extension")
        # INSTALL takes no prepared parameter ("syntax error at or near ?"): a quoted literal
        con.execute("FORCE INSTALL '" + str(binary).replace("'", "''") + "'")
    con.close()


def catalog_path(root: Path | None = None) -> Path:
    return settings.lake_dir(root) / "catalog.sqlite"


def data_path(root: Path | None = None) -> Path:
    return settings.lake_dir(root) / "data"


def attach_statement(root: Path | None = None, read_only: bool = False) -> str:
    # Inlining is a per-session setting, not stored in the catalog: writers always turn it off
    # so every published row lands in a Parquet file. DATA_PATH is stored in the catalog when it
    # is created; naming it again is harmless.
    options = (["READ_ONLY"] if read_only else
               [f"DATA_PATH '{data_path(root)}/'", "DATA_INLINING_ROW_LIMIT 0"]) + [_CATALOG_OPTIONS]
    return (
        f"ATTACH IF NOT EXISTS 'ducklake:sqlite:{catalog_path(root)}' AS {settings.LAKE_ALIAS} "
        f"({', '.join(options)})"
    )


def connect(root: Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB session with the lake attached and made the default catalog."""
    # DuckDB's threads: $QALA_DUCKDB_THREADS, else 2 (this machine's cores). Airflow's task
    # processes get 1 (orchestrate.airflow_env): two task slots share the two cores, and two loads
    # side by side took 20-40% longer with two threads each than with one.
    con = duckdb.connect(config={"threads": int(os.environ.get("QALA_DUCKDB_THREADS") or 2)})
    con.execute(attach_statement(root, read_only))
    con.execute(f"USE {settings.LAKE_ALIAS}")
    return con


def rows(con: duckdb.DuckDBPyConnection, sql: str, params=()) -> list[dict]:
    """A query's rows as dicts by column name."""
    cursor = con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


@contextlib.contextmanager
def off_lake(con: duckdb.DuckDBPyConnection):
    """Work on temp tables only with the in-memory catalog as the default: while the lake is the
    default catalog, every statement (even on a temp table) costs DuckLake a look at its SQLite
    catalog, ~3 ms, measured; a batch of small files runs thousands of such statements."""
    con.execute("USE memory")
    try:
        yield con
    finally:
        con.execute(f"USE {settings.LAKE_ALIAS}")


def ensure_lake(root: Path | None = None) -> None:
    """Create the lake of a fresh warehouse: catalog, data path, schemas, the tables of transforms/schema.py
    (ops, every feed's silver and quarantine), attach.sql; and the warehouse's top-level
    directories, private to their owner (settings.private_dirs)."""
    root = root or settings.warehouse_root()
    install_extensions()
    settings.private_dirs(root)
    data_path(root).mkdir(parents=True, exist_ok=True)
    with writer_lock(root):  # two first loads of a fresh warehouse may start together
        con = connect(root)
        for name in SCHEMAS:
            con.execute(f"create schema if not exists {name}")
        con.execute(schema.OPS_DDL)
        schema.ensure_feed_tables(con, settings.LAKE_ALIAS)
        con.close()
    write_attach_sql(root)


def write_attach_sql(root: Path) -> Path:
    """The statements an analyst runs in any DuckDB session to read the lake."""
    path = root / "attach.sql"
    text = ("-- Qala lake, read-only. In the DuckDB shell: .read attach.sql\n"
            "-- then e.g.  select * from marts.kpi_scorecard;\n"
            "LOAD ducklake;\n"
            "LOAD sqlite_scanner;\n"
            f"{attach_statement(root, read_only=True)};\n"
            f"USE {settings.LAKE_ALIAS};\n")
    # Every load's ensure_lake comes here while analysts' shells read the file: rewriting it in
    # place let a shell read it empty (no ATTACH: "schema silver does not exist"), seen in CI.
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        settings.write_atomic(path, text)
    return path


@contextlib.contextmanager
def writer_lock(root: Path | None = None):
    """One lake writer at a time among this machine's processes. SQLite serialises commits
    anyway; waiting for a file lock is orderly where racing for SQLite's lock ends in
    'database is locked' (duckdb/ducklake#1309). Readers never take it."""
    path = settings.lake_dir(root) / ".writer.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def commit(con: duckdb.DuckDBPyConnection, statements: Callable[[], None], root: Path | None = None,
           attempts: int = 10) -> None:
    """Run `statements` as ONE lake transaction under the writer lock, the whole of it again if
    the SQLite catalog was still busy at COMMIT (a writer that does not take the lock: an
    analyst's own dbt run; build_kpis and `qala rekey` build under it). The statements must be idempotent (they replace, never append twice)."""
    with writer_lock(root):
        for attempt in range(attempts):
            con.execute("begin")
            try:
                statements()
                con.execute("commit")
                return
            except Exception as error:
                # Any failure rolls back (a check raised by `statements` too, or the connection
                # would stay inside the open transaction); a failed COMMIT has already rolled back.
                with contextlib.suppress(duckdb.Error):
                    con.execute("rollback")
                if (not isinstance(error, duckdb.Error) or "database is locked" not in str(error)
                        or attempt == attempts - 1):
                    # Still under the writer lock: Parquet files the failed transaction wrote
                    # (whole or cut short by a full disk) are in no snapshot; they go, so a full
                    # disk is not made fuller by what was rolled back.
                    delete_orphans(con)
                    explained = explain(error, root)
                    if explained is not None:
                        raise explained from error
                    raise
                time.sleep(min(0.25 * 2 ** attempt, 4))


def delete_orphans(con: duckdb.DuckDBPyConnection) -> None:
    """Delete the data files no snapshot of the catalog lists (left by a transaction that rolled
    back). Call it only under the writer lock: an uncommitted writer's files are orphans too."""
    with contextlib.suppress(duckdb.Error):
        con.execute(f"call ducklake_delete_orphaned_files('{settings.LAKE_ALIAS}', cleanup_all => true)")


_QUOTED_PATH = re.compile(r"""["'](/[^"']+)["']""")
_NO_SPACE = ("no space left on device", "database or disk is full")


def explain(error: BaseException, root: Path | None = None, any_error: bool = False) -> Exception | None:
    """A DuckDB or OS error that is a full disk (DiskFull) or a damaged lake data file
    (LakeDamaged, naming the file and its table), said so; None for any other error."""
    text = str(error)
    paths = _QUOTED_PATH.findall(text)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return _disk_full(error.filename or str(settings.lake_dir(root)), text)
    if not isinstance(error, duckdb.Error) and not any_error:  # any_error: a tool's text (dbt) quoting DuckDB
        return None
    lowered = text.lower()
    if any(s in lowered for s in _NO_SPACE):
        return _disk_full(paths[0] if paths else str(settings.lake_dir(root)), text)
    if "disk i/o error" in lowered:  # SQLite cannot grow its WAL or shared memory on a full disk
        free, _ = _space(settings.lake_dir(root))
        if free is not None and free < 1 << 20:
            return _disk_full(str(settings.lake_dir(root)), text)
    data = str(data_path(root))
    for path in paths:
        if path.startswith(data) and path.endswith(".parquet"):
            problem = ("missing (no such file)" if not Path(path).exists() else
                       "damaged (cannot be read as Parquet: " + text.split("\n")[0][:200] + ")")
            return LakeDamaged(table_of_file(path, root) or "(not in the catalog)", path, problem)
    if _PARQUET_TROUBLE.search(text):
        # DuckDB's Parquet reader names no file for some damage (a footer it cannot decode:
        # "TProtocolException: Invalid data"): a quick look at every file's size and footer does.
        from transforms.repair import check

        with contextlib.suppress(Exception):
            for damage in check(root, deep=False, first_only=True):
                return LakeDamaged(damage.table, damage.path, damage.problem)
    return None


_PARQUET_TROUBLE = re.compile(r"TProtocolException|parquet|footer|magic bytes|Corrupt|snappy|zstd|decompress",
                              re.IGNORECASE)


@contextlib.contextmanager
def explained(root: Path | None = None):
    """Qala's boundaries (load, replay, scorecard, dbt): a full disk or a damaged lake data file
    raised as DiskFull / LakeDamaged, which name the place and the repair."""
    try:
        yield
    except (duckdb.Error, OSError) as error:
        better = explain(error, root)
        if better is None:
            raise
        raise better from error


def _space(path: Path) -> tuple[int | None, int | None]:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError:
        return None, None
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def _disk_full(where: str, detail: str) -> DiskFull:
    where_dir = Path(where) if Path(where).is_dir() else Path(where).parent
    free, total = _space(where_dir)
    return DiskFull(str(where_dir), free, total, detail.splitlines()[0][:300])


def table_of_file(path: str, root: Path | None = None) -> str | None:
    """schema.table of a data or delete file the catalog lists (by its file name, a UUID), read
    straight from the SQLite catalog so it works when DuckDB cannot read the table."""
    name = Path(path).name
    try:
        catalog = sqlite3.connect(f"file:{catalog_path(root)}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        for kind in ("data", "delete"):
            row = catalog.execute(
                f"""select s.schema_name || '.' || t.table_name from ducklake_{kind}_file f
                    join ducklake_table t on t.table_id = f.table_id and t.end_snapshot is null
                    join ducklake_schema s on s.schema_id = t.schema_id and s.end_snapshot is null
                    where f.path = ? or f.path like ? order by f.end_snapshot is null desc limit 1""",
                [name, "%/" + name]).fetchone()
            if row:
                return row[0]
    except sqlite3.Error:
        return None
    finally:
        catalog.close()
    return None


def dbt_results_path(root: Path | None = None) -> Path:
    return settings.state_dir(root) / "dbt" / "run_results.json"


def keep_dbt_results(project_dir: str, **_context) -> None:
    """cosmos callback after the build_kpis `dbt build`, failed or not: dbt's run_results.json
    (every node's status, message and seconds) kept in the warehouse, where the temporary
    project copy it was written in is gone once the task ends."""
    source = Path(project_dir) / "target" / "run_results.json"
    if source.exists():
        settings.write_atomic(dbt_results_path(), source.read_bytes())
