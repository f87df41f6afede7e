"""Every feed of the five areas and programme delivery through Airflow: one history run per
ingest DAG, the privacy audit of every Parquet file, and an Airflow backfill that reloads the
same days into identical silver tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import query
from transforms import alerts, scorecard
from transforms.contract import DOMAINS, all_feeds, load_contract
from transforms.privacy import scan_lake

# A Monday (OneRoster bulk), the 1st of a month (Alatau workforce, first-grade applications open)
# and the day after.
START, DAYS = "2025-03-31", 3
SCALES = ["--scale", "0.001", "--feed-scale", "safety/road_accidents=1", "housing/utility_payments=0.2"]


def qala_command(root: Path, port: int, *args: str) -> dict:
    """subprocess arguments for `qala <args>` on this warehouse and Airflow port."""
    return {"args": [str(Path(sys.executable).parent / "qala"), *args], "text": True,
            "env": {**os.environ, "QALA_WAREHOUSE": str(root), "QALA_AIRFLOW_PORT": str(port)}}


def qala(root: Path, port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(**qala_command(root, port, *args), capture_output=True, timeout=2400)


def silver_fingerprints(root: Path) -> dict[str, tuple]:
    """Per silver table: row count and a content hash of every column but the batch id."""
    tables = [t for (t,) in query(root, "select table_name from duckdb_tables() where database_name = 'qala' "
                                        "and schema_name = 'silver' order by 1")]
    out = {}
    for table in tables:
        columns = [c for (c,) in query(root, "select column_name from duckdb_columns() where database_name = 'qala' "
                                             "and schema_name = 'silver' and table_name = ? and column_name != '_batch_id' "
                                             "order by column_index", [table])]
        row = ", ".join(f'"{c}"' for c in columns)
        out[table] = query(root, f"select count(*), bit_xor(hash({row})) from silver.{table}")[0]
    return out


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("all") / "warehouse"
    port = 8800 + os.getpid() % 90
    run = qala(root, port, "run", "--start", START, "--days", str(DAYS), *SCALES, "--defect-rate", "0")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    return root, port, run.stdout


def test_every_feed_loads_every_landed_file_through_airflow(loaded):
    root, _, out = loaded
    for domain in DOMAINS:
        assert f"Airflow: ingest_{domain} success" in out
    ledger = query(root, "select feed, count(*), count(*) filter (where status = 'published'), "
                         "count(*) filter (where rows_in != rows_published + rows_quarantined), sum(rows_published) "
                         "from ops.load_ledger group by 1 order by 1")
    assert [f for f, *_ in ledger] == all_feeds()
    for feed, files, published, broken, rows in ledger:
        assert files == published and broken == 0 and rows > 0, feed
    for feed in all_feeds():
        landed = sorted((root / "landing" / feed).glob(f"*/{load_contract(feed).format.get('files', '*')}"))
        assert query(root, "select count(distinct source_file) from ops.load_ledger where feed = ?", [feed]) == [(len(landed),)]
        for table in load_contract(feed).tables:
            if table.required:
                assert query(root, f"select count(*) > 0 from silver.{table.silver}") == [(True,)], table.silver


def test_no_raw_personal_identifier_is_in_any_parquet_file_of_the_lake(loaded):
    root, _, _ = loaded
    parquet = list((root / "lake" / "data").rglob("*.parquet"))
    assert len(parquet) > 20
    assert [str(f) for f in scan_lake(root)] == []


def test_late_records_keep_their_own_event_dates(loaded):
    root, _, _ = loaded
    late = query(root, "select count(*) from silver.safety__road_accidents where occurred_at::date < _landing_date")
    assert late[0][0] > 0


def test_build_kpis_writes_the_ministers_scorecard(loaded):
    root, _, _ = loaded
    page, pdf = root / "reports" / "scorecard.html", root / "reports" / "scorecard.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    # Three landing days hold few whole months (the workforce report of April 1st stands for March).
    text = page.read_text(encoding="utf-8")
    (snapshot, kpis), = query(root, "select max(lake_snapshot_id), list(distinct kpi_id) from marts.kpi_scorecard")
    assert f'data-snapshot="{snapshot}"' in text
    assert kpis and all(f'data-kpi="{kpi}"' in text for kpi in kpis)
    # one `dbt build` ran every node, and its results are kept for whoever reads the run
    results = json.loads((root / "state" / "dbt" / "run_results.json").read_text())["results"]
    assert len(results) > 300 and {r["status"] for r in results} <= {"success", "pass", "no-op"}
    assert {"model.qala.kpi_values", "model.qala.kpi_scorecard"} <= {r["unique_id"] for r in results}


def test_an_airflow_backfill_reloads_the_days_into_identical_silver_tables(loaded, tmp_path):
    root, port, _ = loaded
    before = silver_fingerprints(root)
    first_day = "2025-04-01"
    with subprocess.Popen(**qala_command(root, port, "backfill", "--from", first_day, "--to", "2025-04-02"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as running:
        # While the ingest DAGs write: the analysts' SQL workspace (make sql: the DuckDB shell on
        # attach.sql) answers, and the scorecard builds.
        during = 0
        while running.poll() is None:
            shell = subprocess.run([str(Path(sys.executable).parent / "duckdb"), "-init", str(root / "attach.sql"),
                                    "-csv", "-c", "select count(*) from silver.safety__road_accidents"],
                                   capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
            assert shell.returncode == 0 and int(shell.stdout.split()[-1]) > 0, shell.stderr
            scorecard.write(root, out=tmp_path)
            during += running.poll() is None
        stdout, stderr = running.communicate()
    backfill = subprocess.CompletedProcess(running.args, running.returncode, stdout, stderr)
    assert backfill.returncode == 0, backfill.stdout[-6000:] + backfill.stderr[-3000:]
    assert during >= 3, "the workspace and the scorecard were used while the backfill ran"
    for domain in DOMAINS:
        assert f"Airflow: backfill of ingest_{domain}: 2 run(s), 2 success" in backfill.stdout
    reloaded = query(root, "select count(distinct source_file) from ops.load_ledger where run_id like 'backfill__%'")
    landed = sum(len(list((root / "landing" / feed).glob(f"2025-04-0[12]/{load_contract(feed).format.get('files', '*')}")))
                 for feed in all_feeds())
    assert reloaded == [(landed,)]
    assert silver_fingerprints(root) == before
    # The backfilled days' rows now come from the backfill's batches; the first day's do not.
    assert query(root, "select bool_and(_batch_id in (select batch_id from ops.load_ledger where run_id like 'backfill__%')) "
                       "from silver.safety__road_accidents where _landing_date >= ?", [first_day]) == [(True,)]


def test_a_failed_kpi_build_names_what_failed_and_leaves_the_ministers_page(loaded, monkeypatch):
    """A copy of a silver row that no published batch stands behind (written past the load path)
    fails dbt's `published_batch` and `unique` tests: build_kpis fails, its task error and dbt's kept run results name the
    test, and the scorecard page stays the last good one."""
    from transforms import lake
    from transforms.airflow_api import run_id
    from transforms.orchestrate import EmbeddedAirflow

    root, port, _ = loaded
    page = root / "reports" / "scorecard.html"
    shown = page.read_bytes()
    table = "silver.safety__road_accidents"
    con = lake.connect(root)
    try:
        lake.commit(con, lambda: con.execute(
            f"insert into {table} select * replace ('not-a-published-batch' as _batch_id) from {table} limit 1"), root)
    finally:
        con.close()
    monkeypatch.setenv("QALA_WAREHOUSE", str(root))
    monkeypatch.setenv("QALA_AIRFLOW_PORT", str(port))
    try:
        with EmbeddedAirflow(root) as airflow:
            airflow.wait_for_dags(["build_kpis"])
            airflow.wait_for_scheduled_runs(airflow.dag_ids())
            rid = airflow.trigger("build_kpis", {}, run_id("test__failed_build"))
            assert airflow.wait_for_run("build_kpis", rid) == "failed"
            states = {t["task_id"]: t["state"] for t in airflow.dag_run("build_kpis", rid)["tasks"]}
    finally:
        con = lake.connect(root)
        try:
            lake.commit(con, lambda: con.execute(f"delete from {table} where _batch_id = 'not-a-published-batch'"), root)
        finally:
            con.close()
    assert states == {"dbt_build": "failed", "write_scorecard": "upstream_failed"}
    results = json.loads(lake.dbt_results_path(root).read_text())["results"]
    failed = [r["unique_id"] for r in results if r["status"] in ("fail", "error")]
    # the copied row breaks the accidents' staging tests: its batch, and its key now twice
    assert {f.split(".")[2] for f in failed} == {"published_batch_stg_safety__road_accidents__batch_id",
                                                 "unique_stg_safety__road_accidents_accident_id"}, failed
    assert len(results) > 300 and {r["status"] for r in results} <= {"success", "pass", "no-op", "fail", "error", "skipped"}
    log = "\n".join(p.read_text(errors="replace") for p in
                    (root / "state" / "airflow" / "logs").glob(f"dag_id=build_kpis/run_id={rid}/task_id=dbt_build/*.log"))
    assert "dbt invocation completed with errors" in log
    assert all(f.split(".")[2] in log for f in failed)
    assert page.read_bytes() == shown
    # the notifier's line in the warehouse's alert log names the same dbt nodes
    alert = [a for a in alerts.read(root) if a["run_id"] == rid]
    assert [(a["task_id"], sorted(n["node"] for n in a["failed_dbt_nodes"])) for a in alert] == [("dbt_build", sorted(failed))]
