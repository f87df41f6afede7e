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

from tests.conftest import not_private, query
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


@pytest.fixture(scope="module")
def airflow(loaded):
    """The loaded warehouse's embedded Airflow, started once (after the backfill test's own) for
    the tests that talk to a running one."""
    from transforms.orchestrate import EmbeddedAirflow

    root, port, _ = loaded
    with pytest.MonkeyPatch.context() as env:
        env.setenv("QALA_WAREHOUSE", str(root))
        env.setenv("QALA_AIRFLOW_PORT", str(port))
        with EmbeddedAirflow(root) as running:
            assert running.processes, f"an Airflow was already answering on port {port}"
            yield running


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


def test_nothing_the_run_created_is_open_to_other_users(loaded):
    """`qala run` (simulator, Airflow, every load task, dbt, GX Data Docs, the scorecard and its
    PDF) left no file or folder that the group or other users may read, write or enter."""
    root, _, _ = loaded
    assert not_private(root) == []
    assert len(list((root / "landing").rglob("*"))) > 50 and (root / "state" / "airflow" / "airflow.db").exists()


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


def test_a_failed_kpi_build_names_what_failed_and_leaves_the_ministers_page(loaded, airflow):
    """A copy of a silver row that no published batch stands behind (written past the load path)
    fails dbt's `published_batch` and `unique` tests: build_kpis fails, its task error and dbt's kept run results name the
    test, and the scorecard page stays the last good one."""
    from transforms import lake
    from transforms.airflow_api import run_id

    root, _, _ = loaded
    page = root / "reports" / "scorecard.html"
    shown = page.read_bytes()
    table = "silver.safety__road_accidents"
    con = lake.connect(root)
    try:
        lake.commit(con, lambda: con.execute(
            f"insert into {table} select * replace ('not-a-published-batch' as _batch_id) from {table} limit 1"), root)
    finally:
        con.close()
    try:
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


# Airflow answers nothing to a call without a valid token. (path, method, body) of the public REST
# API, the UI's own data routes and the task execution API; each must be refused without a token and
# with a forged one, and (so that the refusal is the login's, not a wrong path's) answer with a real one.
MINT_TASK_TOKEN = """
import sys
from airflow.executors.base_executor import BaseExecutor
print(BaseExecutor().jwt_generator.generate({"sub": sys.argv[1]}))
"""


def _call(base: str, method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _forged(real: str) -> list[str]:
    """The real token's claims signed with a key that is not the warehouse's, and unsigned."""
    import jwt

    claims = jwt.decode(real, options={"verify_signature": False})
    return [jwt.encode(claims, "not-the-warehouse-secret-" * 4, algorithm="HS512"),
            jwt.encode(claims, None, algorithm="none")]


def test_airflow_refuses_every_call_without_a_valid_token_and_listens_on_localhost_only(loaded, airflow):
    import psutil

    from transforms.airflow_api import run_id
    from transforms.airflow_secrets import ADMIN, admin_password
    from transforms.orchestrate import airflow_env

    root, _, _ = loaded
    base = airflow.base
    airflow.wait_for_dags(["ingest_safety"])
    status, login = _call(base, "POST", "/auth/token", body={"username": ADMIN, "password": admin_password(root)})
    assert status in (200, 201), login
    user_token = json.loads(login)["access_token"]  # what the admin's login in the UI gets
    run = airflow.runs("ingest_safety")[0]["dag_run_id"]
    task = airflow.dag_run("ingest_safety", run)["tasks"][0]["id"]
    # What a task process authenticates with: minted by Airflow's own executor code, for a real task.
    minted = subprocess.run([sys.executable, "-c", MINT_TASK_TOKEN, task], env=airflow_env(root),
                            capture_output=True, text=True, check=True)
    task_token = minted.stdout.strip().splitlines()[-1]
    mine = run_id("test__auth")
    # In order: the writes pause ingest_safety, trigger a run (queued while paused: it never
    # starts), delete that run and unpause the DAG, leaving Airflow as it was.
    calls = [
        # public REST API
        ("GET", "/api/v2/dags", None, user_token),
        ("GET", "/api/v2/dags/ingest_safety/dagRuns", None, user_token),
        ("GET", f"/api/v2/dags/ingest_safety/dagRuns/{run}/taskInstances", None, user_token),
        ("GET", "/api/v2/assets/events", None, user_token),
        ("GET", "/api/v2/connections", None, user_token),
        ("GET", "/api/v2/variables", None, user_token),
        ("PATCH", "/api/v2/dags/ingest_safety", {"is_paused": True}, user_token),
        ("POST", "/api/v2/dags/ingest_safety/dagRuns", {"dag_run_id": mine, "logical_date": None, "conf": {}}, user_token),
        ("DELETE", f"/api/v2/dags/ingest_safety/dagRuns/{mine}", None, user_token),
        ("PATCH", "/api/v2/dags/ingest_safety", {"is_paused": False}, user_token),
        # the UI's data routes
        ("GET", "/ui/dags", None, user_token),
        ("GET", "/ui/grid/runs/ingest_safety", None, user_token),
        ("GET", "/ui/dashboard/dag_stats", None, user_token),
        ("GET", "/ui/auth/me", None, user_token),
        # the execution API (task processes), which takes a task's token, not a user's
        ("GET", "/execution/dags/ingest_safety", None, task_token),
        ("GET", f"/execution/dag-runs/ingest_safety/{run}/state", None, task_token),
    ]
    for method, path, body, token in calls:
        for bad in [None, *_forged(token), user_token if token is task_token else task_token]:
            status, text = _call(base, method, path, bad, body)
            assert status in (401, 403), (method, path, bad and bad[:16], status, text[:200])
        status, text = _call(base, method, path, token, body)
        assert status in (200, 204), (method, path, status, text[:300])
    # The configuration: refused without a login, and not shown even to the admin (expose_config = False).
    assert _call(base, "GET", "/api/v2/config")[0] == 401
    status, text = _call(base, "GET", "/api/v2/config", user_token)
    assert status == 403 and "not to expose the configuration" in text
    # A POST to the execution API that would start a run: refused without a task's token.
    for bad in [None, user_token]:
        assert _call(base, "POST", f"/execution/dag-runs/ingest_safety/{run_id('test__auth_exec')}", bad,
                     {"logical_date": None, "conf": {}})[0] in (401, 403)
    # What answers without a login carries no data: the UI's page shell (the data comes from the
    # routes above), the health checks, the version.
    status, page = _call(base, "GET", "/")
    assert status == 200 and '<div id="root"' in page and not any(dag in page for dag in airflow.dag_ids())
    assert _call(base, "GET", "/", user_token) == (status, page)  # the same shell for everyone
    assert _call(base, "GET", "/api/v2/monitor/health")[0] == 200 and _call(base, "GET", "/execution/health")[0] == 200
    # Every socket the Airflow processes listen on is the API server's, on 127.0.0.1.
    processes = [psutil.Process(p.pid) for p in airflow.processes]
    processes += [child for p in processes for child in p.children(recursive=True)]
    listening = {(c.laddr.ip, c.laddr.port) for p in processes for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", int(base.rsplit(":", 1)[1]))}, listening


def test_asset_events_answer_while_a_run_they_created_has_not_started(loaded, airflow):
    """A run that an Asset event created has no start date while it is queued: for a moment after
    the scheduler creates it, and for as long as it waits once cleared. Airflow 3.3.2 failed its
    own answer to GET /api/v2/assets/events then (apache/airflow#71360: an HTTP 500 that CI saw
    during a `make ingest`); dags/airflow_local_settings.py makes the start date nullable as
    upstream did. Here an event of a silver Asset (posted through the API) triggers build_kpis;
    its run, once done, is cleared while the DAG is paused, so that it stays queued, and is listed
    with the event; the DAG is left as it was."""
    from datetime import datetime, timezone

    airflow.wait_for_scheduled_runs(airflow.dag_ids())
    assets = airflow._request("GET", "/api/v2/assets?limit=100")["assets"]
    asset = next(a for a in assets if "build_kpis" in {d["dag_id"] for d in a["scheduled_dags"]})
    posted = datetime.now(timezone.utc)
    airflow._request("POST", "/api/v2/assets/events", {"asset_id": asset["id"], "extra": {"test": "queued run"}})
    run = airflow.wait_for_triggered_run("build_kpis", posted, seconds=900)["dag_run_id"]
    airflow._request("PATCH", "/api/v2/dags/build_kpis", {"is_paused": True})
    try:
        airflow._request("POST", f"/api/v2/dags/build_kpis/dagRuns/{run}/clear", {"dry_run": False})
        cleared = airflow._request("GET", f"/api/v2/dags/build_kpis/dagRuns/{run}")
        assert (cleared["state"], cleared["start_date"]) == ("queued", None)
        status, text = _call(airflow.base, "GET", f"/api/v2/assets/events?asset_id={asset['id']}&limit=100",
                             airflow._token)
        assert status == 200, text[:600]
        listed = [r for e in json.loads(text)["asset_events"] for r in e["created_dagruns"] if r["run_id"] == run]
        assert [(r["state"], r["start_date"]) for r in listed] == [("queued", None)]
    finally:
        airflow._request("PATCH", f"/api/v2/dags/build_kpis/dagRuns/{run}", {"state": "success"})
        airflow._request("PATCH", "/api/v2/dags/build_kpis", {"is_paused": False})
