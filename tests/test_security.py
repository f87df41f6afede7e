"""Security on real components: attach.sql reads the lake and cannot write it, and what Qala
creates under the warehouse is its owner's alone (landing holds raw personal data until the load
pseudonymises it). The Airflow side (no call answered without a token, nothing listening beyond
127.0.0.1) is in test_ingest_all.py, on the Airflow that module already runs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import HEADER, accident_rows, land, not_private
from transforms import lake, settings
from transforms.load import load_files

WRITES = {
    "insert": "insert into silver.safety__road_accidents select * from silver.safety__road_accidents limit 1",
    "update": "update silver.safety__road_accidents set killed = killed + 1",
    "delete": "delete from silver.safety__road_accidents",
    "create table": "create table silver.mine (a int)",
    "drop table": "drop table silver.safety__road_accidents",
    "create schema": "create schema mine",
    "alter table": "alter table ops.load_ledger add column mine int",
    "expire snapshots": "call ducklake_expire_snapshots('qala', older_than => now())",
    "set option": "call qala.set_option('parquet_compression', 'zstd')",
    "merge files": "call ducklake_merge_adjacent_files('qala')",
}


def test_attach_sql_cannot_write_the_lake(warehouse):
    # Two days published: two small data files per table, which merge_adjacent_files would merge.
    for day, prefix in (("2025-03-01", "RA"), ("2025-03-02", "RB")):
        load_files("safety/road_accidents", [land(warehouse, day, "ra.csv", HEADER + "\n" + accident_rows(12, day, prefix))],
                   run_id=day)
    con = duckdb.connect()
    con.execute((warehouse / "attach.sql").read_text(encoding="utf-8"))  # every statement of the file, in order

    def state():
        return con.execute("select (select count(*) from ducklake_snapshots('qala')), "
                           "(select count(*) || '/' || sum(killed) from silver.safety__road_accidents), "
                           "(select count(*) from ops.load_ledger), "
                           "(select list(schema_name order by schema_name) from duckdb_schemas() where database_name = 'qala')"
                           ).fetchone()

    before = state()
    assert before[1] == "24/0"
    for what, sql in WRITES.items():
        with pytest.raises(duckdb.Error) as refused:
            con.execute(sql)
        message = str(refused.value)
        assert "read-only mode" in message or "readonly database" in message, (what, message)
    assert state() == before
    # every data file the catalog lists is still there
    missing = [path for (path,) in con.execute("select data_file from ducklake_list_files('qala', 'safety__road_accidents', schema => 'silver')").fetchall()
               if not Path(path).exists()]
    assert missing == []
    con.close()
    # The DuckDB shell on attach.sql (make sql) refuses the same way.
    shell = subprocess.run([str(Path(sys.executable).parent / "duckdb"), "-init", str(warehouse / "attach.sql"),
                            "-c", WRITES["insert"]], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert shell.returncode != 0 and "read-only mode" in shell.stderr, shell.stderr


@pytest.fixture
def qala_umask():
    """This process as a Qala process is: with the umask the `qala` CLI and the Airflow components
    (hence the load tasks) run with."""
    previous = settings.private_files()
    yield
    os.umask(previous)


def test_nothing_qala_creates_in_the_warehouse_is_open_to_other_users(tmp_path, qala_umask):
    root = tmp_path / "warehouse"
    env = {**os.environ, "QALA_WAREHOUSE": str(root)}
    qala = str(Path(sys.executable).parent / "qala")
    # The CLI sets its umask itself: started here with the usual 022, it still creates 0700/0600.
    for args in (["init"], ["simulate", "--start", "2025-03-01", "--days", "1", "--scale", "0.001",
                            "--domains", "safety", "--defect-rate", "0"]):
        done = subprocess.run([qala, *args], env=env, capture_output=True, text=True, umask=0o022, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    landed = sorted((root / "landing" / "safety" / "sergek_violations" / "2025-03-01").glob("*.jsonl"))
    assert landed
    rows = load_files("safety/sergek_violations", landed, run_id="r", root=root)
    assert {r.status for r in rows} == {"published"}
    # a source's own file, dropped with its own (0644) mode: unreachable through the 0700 folders
    stray = land(root, "2025-03-02", "dropped.csv", HEADER + "\n" + accident_rows(2))
    stray.chmod(0o644)
    assert not_private(root) == [stray]
    for folder in [root / "landing", *(root / "landing").rglob("*")]:
        if folder.is_dir():
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for top in ("", "landing", "lake", "state", "reports", "simulator"):
        assert stat.S_IMODE((root / top).stat().st_mode) == 0o700, top


def test_an_existing_open_warehouse_is_closed_by_init_without_rewriting_its_files(tmp_path):
    root = tmp_path / "warehouse"
    old = land(root, "2025-03-01", "ra.csv", HEADER + "\n" + accident_rows(2))
    for path in (root, root / "landing", old.parent):
        path.chmod(0o755)
    old.chmod(0o644)
    lake.ensure_lake(root)  # what `qala init` and every load do first
    for top in ("", "landing", "lake", "state", "reports"):
        assert stat.S_IMODE((root / top).stat().st_mode) == 0o700, top
    # Not recursive: what lies below stays as it was, closed to others by the folders above it.
    assert stat.S_IMODE(old.stat().st_mode) == 0o644 and stat.S_IMODE(old.parent.stat().st_mode) == 0o755
