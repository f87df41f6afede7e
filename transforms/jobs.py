"""The jobs an engineer starts from the command line, each one function: `init`, `ingest` (one run of
each domain's ingest DAG over landing days), `backfill` (an Airflow backfill of them), each then
building the KPIs once. `qala` (transforms/cli.py) parses arguments and calls one of these; the
devkit's `qala run` simulates and then calls `ingest` with `build_once`.

Airflow is driven from outside through its REST API (airflow_api.py; orchestrate.py starts the embedded one); what each run
loaded is read back from the ledger and printed per feed and status, so the console says which
files did not publish and why.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from datetime import date, datetime, timezone
from itertools import groupby
from pathlib import Path
from zoneinfo import ZoneInfo

from transforms import lake, settings
from transforms.contract import all_feeds
from transforms.ledger import NOT_READ, PUBLISHED, rows_for_run


def init(root: Path) -> str | None:
    """Create the warehouse (lake, attach.sql, Airflow state). Returns the Airflow admin password
    the first time, to be shown once."""
    from transforms.orchestrate import ensure_airflow

    lake.ensure_lake(root)
    return ensure_airflow(root)


def print_ledger(root: Path, run_id: str) -> list[dict]:
    """Per feed and status: files and rows of the run (each file's latest attempt)."""
    rows = rows_for_run(run_id, root=root)
    for (feed, status), group in groupby(sorted(rows, key=lambda r: (r["feed"], r["status"])),
                                         key=lambda r: (r["feed"], r["status"])):
        group = list(group)
        print(f"  {feed}: {len(group)} file(s) {status}: {sum(r['rows_in'] for r in group):,} rows in = "
              f"{sum(r['rows_published'] for r in group):,} published + "
              f"{sum(r['rows_quarantined'] for r in group):,} quarantined")
        for row in group:
            if status == NOT_READ:
                print(f"    · {row['reason']}")
            elif status != PUBLISHED:
                print(f"    ✗ {row['reason']}")
    return rows


def _settle(root: Path, run_ids: list[str]) -> tuple[bool, int]:
    """Print the ledger of each finished run: (every file published, how many did)."""
    ok, published = True, 0
    for rid in run_ids:
        rows = print_ledger(root, rid)
        ok &= all(r["status"] in (PUBLISHED, NOT_READ) for r in rows)
        published += sum(r["status"] == PUBLISHED for r in rows)
    return ok, published


def _build_kpis_once(airflow, prefix: str, why: str) -> bool:
    from transforms.airflow_api import run_id

    rid = airflow.trigger("build_kpis", {}, run_id(f"{prefix}__build_kpis"))
    print(f"Airflow: build_kpis run {rid} ({why}) ...", flush=True)
    state = airflow.wait_for_run("build_kpis", rid)
    print(f"Airflow: build_kpis {state}")
    return state == "success"


def _ready_airflow(root: Path, domains: list[str], started_airflow=None):
    """The embedded Airflow with the domains' DAGs parsed and their first scheduled runs done: the
    caller's, if it started one (`started_airflow`), else one started here and stopped at the end."""
    from transforms.orchestrate import EmbeddedAirflow

    lake.ensure_lake(root)
    context = contextlib.nullcontext(started_airflow.ready()) if started_airflow else EmbeddedAirflow(root)
    dag_ids = [f"ingest_{d}" for d in domains]

    @contextlib.contextmanager
    def ready():
        with context as airflow:
            airflow.wait_for_dags(dag_ids + ["build_kpis"])
            airflow.wait_for_scheduled_runs(dag_ids)
            yield airflow

    return ready()


def ingest(root: Path, domains: list[str], first: date, last: date, prefix: str, build_once: bool = False,
           started_airflow=None) -> bool:
    """One run of each domain's ingest DAG over the landing days, all triggered at once (the
    LocalExecutor's two slots take their tasks as they come). The silver Assets trigger
    build_kpis; with `build_once` the runs announce nothing and build_kpis is triggered once,
    after all of them, instead of once per Asset event. `started_airflow`: an EmbeddedAirflow
    the caller started already. True when every run succeeded and every file published."""
    from transforms.airflow_api import run_id

    with _ready_airflow(root, domains, started_airflow) as airflow:
        started = datetime.now(timezone.utc)
        runs = {}
        for domain in domains:
            dag_id = f"ingest_{domain}"
            conf = {"landing_from": first.isoformat(), "landing_to": last.isoformat(), "announce": not build_once}
            runs[dag_id] = airflow.trigger(dag_id, conf, run_id(f"{prefix}__{first}_{last}"))
            print(f"Airflow: {dag_id} run {runs[dag_id]} (landing days {first} .. {last}) ...", flush=True)
        ok, published, announced = True, 0, 0
        for dag_id, rid in runs.items():
            state = airflow.wait_for_run(dag_id, rid)
            print(f"Airflow: {dag_id} {state}")
            files_ok, files_published = _settle(root, [rid])
            ok &= state == "success" and files_ok
            published += files_published
            announced += len(airflow.asset_events(dag_id, rid))
        if published and build_once:
            ok &= _build_kpis_once(airflow, prefix, "once, after every ingest run")
        elif announced:  # the silver Assets changed: build_kpis runs
            print("Airflow: build_kpis (triggered by the silver Assets) ...", flush=True)
            run = airflow.wait_for_triggered_run("build_kpis", started)
            print(f"Airflow: build_kpis {run['state']}")
            ok &= run["state"] == "success"
    return ok


def backfill(root: Path, domains: list[str] | None, first: date, last: date) -> bool:
    """An Airflow backfill of each domain's ingest DAG over [first, last]: one scheduled-style run
    per landing day, days that already ran included; build_kpis once at the end. True when every
    run succeeded and every file published."""
    domains = domains or sorted({f.split("/")[0] for f in all_feeds()})
    tz = ZoneInfo(settings.LOCAL_TZ)
    start = datetime.combine(first, datetime.min.time(), tz)
    end = datetime.combine(last, datetime.min.time(), tz)
    with _ready_airflow(root, domains) as airflow:
        backfills = {}
        for domain in domains:
            backfills[domain] = airflow.backfill(f"ingest_{domain}", start, end, {"announce": False})
            print(f"Airflow: backfill {backfills[domain]} of ingest_{domain}, landing days {first} .. {last} ...",
                  flush=True)
        ok, published = True, 0
        for domain, backfill_id in backfills.items():
            runs = airflow.wait_for_backfill(backfill_id)
            states = Counter(r["state"] for r in runs)
            print(f"Airflow: backfill of ingest_{domain}: {len(runs)} run(s), "
                  + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
            ok &= bool(runs) and set(states) == {"success"}
            files_ok, files_published = _settle(root, [run["dag_run_id"] for run in runs])
            ok &= files_ok
            published += files_published
        if published:
            ok &= _build_kpis_once(airflow, "after_backfill", "once, after the backfills")
    return ok


def where_to_look(root: Path) -> str:
    """The paths and commands a user needs after a run."""
    from transforms import alerts
    from transforms.airflow_secrets import passwords_file
    from transforms.orchestrate import port

    return f"""
Where to look:
  lake (DuckLake):   {lake.catalog_path(root)}  (data: {lake.data_path(root)})
  query it:          make sql     (or in any DuckDB session: .read {root / 'attach.sql'})
  ledger:            select * from ops.load_ledger order by started_at desc;
  scorecard:         {settings.reports_dir(root) / 'scorecard.html'}  (printable: scorecard.pdf beside it)
  Data Docs:         {settings.reports_dir(root) / 'data_docs' / 'index.html'}
  alerts:            {alerts.alerts_path(root)}  (one line per failed task)
  Airflow UI:        make up  → http://127.0.0.1:{port()}  (login: admin, password in {passwords_file(root)})
"""
