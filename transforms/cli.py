"""`qala`: the project's own commands. The Makefile calls these; so can engineers and scripts."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from collections import Counter

from transforms import alerts, lake, settings
from transforms.contract import all_feeds
from transforms.ledger import PUBLISHED


def _root() -> Path:
    return settings.warehouse_root()


def cmd_init(args) -> int:
    from transforms.orchestrate import ensure_airflow, passwords_file

    root = _root()
    lake.ensure_lake(root)
    password = ensure_airflow(root)
    print(f"warehouse ready: {root}")
    if password:
        print(f"Airflow UI login (shown once): admin / {password}  (kept in {passwords_file(root)})")
    return 0


def cmd_simulate(args) -> int:
    from transforms.simulate import sergek_params, simulate

    written = simulate(_root(), args.start, args.days, scale=args.scale, seed=args.seed,
                       domains=args.domains, progress=True, defect_rate=args.defect_rate,
                       feeds=getattr(args, "feeds", None), scales=dict(args.feed_scale or []),
                       params=sergek_params(args.sergek_rollout) if args.sergek_rollout else None)
    for feed, rows in written.items():
        print(f"{feed}: {rows:,} records over {args.days} day(s) from {args.start}")
    print(f"ground truth and the planted defects (file, line, kind): {settings.simulator_dir(_root())}")
    return 0


def _print_ledger(root: Path, run_id: str) -> list[dict]:
    """Per feed and status: files and rows of the run (each file's latest attempt)."""
    from itertools import groupby

    from transforms.ledger import rows_for_run

    rows = rows_for_run(run_id, root=root)
    for (feed, status), group in groupby(sorted(rows, key=lambda r: (r["feed"], r["status"])),
                                         key=lambda r: (r["feed"], r["status"])):
        group = list(group)
        print(f"  {feed}: {len(group)} file(s) {status}: {sum(r['rows_in'] for r in group):,} rows in = "
              f"{sum(r['rows_published'] for r in group):,} published + "
              f"{sum(r['rows_quarantined'] for r in group):,} quarantined")
        for row in group:
            if status != PUBLISHED:
                print(f"    ✗ {row['reason']}")
    return rows


def _ingest(domains: list[str], first: date, last: date, prefix: str, build_once: bool = False,
            started_airflow=None) -> int:
    """One run of each domain's ingest DAG over the landing days, all triggered at once (the
    LocalExecutor's two slots take their tasks as they come). The silver Assets trigger
    build_kpis; with `build_once` the runs announce nothing and build_kpis is triggered once,
    after all of them, instead of once per Asset event. `started_airflow`: an EmbeddedAirflow
    the caller started already (else one is started here, and stopped at the end)."""
    from transforms.orchestrate import EmbeddedAirflow, run_id

    root = _root()
    lake.ensure_lake(root)
    ok, published, announced = True, 0, 0
    with contextlib.nullcontext(started_airflow.ready()) if started_airflow else EmbeddedAirflow(root) as airflow:
        dag_ids = [f"ingest_{d}" for d in domains]
        airflow.wait_for_dags(dag_ids + ["build_kpis"])
        airflow.wait_for_scheduled_runs(dag_ids)
        started = datetime.now(timezone.utc)
        runs = {}
        for domain in domains:
            dag_id = f"ingest_{domain}"
            conf = {"landing_from": first.isoformat(), "landing_to": last.isoformat(), "announce": not build_once}
            runs[dag_id] = airflow.trigger(dag_id, conf, run_id(f"{prefix}__{first}_{last}"))
            print(f"Airflow: {dag_id} run {runs[dag_id]} (landing days {first} .. {last}) ...", flush=True)
        for dag_id, rid in runs.items():
            state = airflow.wait_for_run(dag_id, rid)
            print(f"Airflow: {dag_id} {state}")
            rows = _print_ledger(root, rid)
            ok &= state == "success" and all(r["status"] == PUBLISHED for r in rows)
            published += sum(r["status"] == PUBLISHED for r in rows)
            announced += len(airflow.asset_events(dag_id, rid))
        if published and build_once:
            rid = airflow.trigger("build_kpis", {}, run_id(f"{prefix}__build_kpis"))
            print(f"Airflow: build_kpis run {rid} (once, after every ingest run) ...", flush=True)
            state = airflow.wait_for_run("build_kpis", rid)
            print(f"Airflow: build_kpis {state}")
            ok &= state == "success"
        elif announced:  # the silver Assets changed: build_kpis runs
            print("Airflow: build_kpis (triggered by the silver Assets) ...", flush=True)
            run = airflow.wait_for_triggered_run("build_kpis", started)
            print(f"Airflow: build_kpis {run['state']}")
            ok &= run["state"] == "success"
    return 0 if ok else 1


def cmd_backfill(args) -> int:
    """An Airflow backfill of each domain's ingest DAG over [from, to]: one scheduled-style run
    per landing day, days that already ran included; build_kpis once at the end."""
    from zoneinfo import ZoneInfo

    from transforms.orchestrate import EmbeddedAirflow, run_id

    root = _root()
    lake.ensure_lake(root)
    domains = args.domains or sorted({f.split("/")[0] for f in all_feeds()})
    tz = ZoneInfo(settings.LOCAL_TZ)
    first = datetime.combine(args.first, datetime.min.time(), tz)
    last = datetime.combine(args.last, datetime.min.time(), tz)
    ok, published = True, 0
    with EmbeddedAirflow(root) as airflow:
        dag_ids = [f"ingest_{d}" for d in domains]
        airflow.wait_for_dags(dag_ids + ["build_kpis"])
        airflow.wait_for_scheduled_runs(dag_ids)
        backfills = {}
        for domain in domains:
            backfills[domain] = airflow.backfill(f"ingest_{domain}", first, last, {"announce": False})
            print(f"Airflow: backfill {backfills[domain]} of ingest_{domain}, landing days {args.first} .. {args.last} ...",
                  flush=True)
        for domain, backfill_id in backfills.items():
            runs = airflow.wait_for_backfill(backfill_id)
            states = Counter(r["state"] for r in runs)
            print(f"Airflow: backfill of ingest_{domain}: {len(runs)} run(s), "
                  + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
            ok &= bool(runs) and set(states) == {"success"}
            for run in runs:
                rows = _print_ledger(root, run["dag_run_id"])
                ok &= all(r["status"] == PUBLISHED for r in rows)
                published += sum(r["status"] == PUBLISHED for r in rows)
        if published:
            rid = airflow.trigger("build_kpis", {}, run_id("after_backfill__build_kpis"))
            print(f"Airflow: build_kpis run {rid} (once, after the backfills) ...", flush=True)
            state = airflow.wait_for_run("build_kpis", rid)
            print(f"Airflow: build_kpis {state}")
            ok &= state == "success"
    return 0 if ok else 1


def cmd_ingest(args) -> int:
    return _ingest([args.domain], args.date, args.date, "ingest")


def cmd_run(args) -> int:
    from transforms.orchestrate import EmbeddedAirflow, passwords_file, port

    cmd_init(args)
    root = _root()
    last = args.start + timedelta(days=args.days - 1)
    # Simulate what the ingest DAGs load: the feeds that have a contract.
    args.feeds = [f for f in all_feeds() if not args.domains or f.split("/")[0] in args.domains]
    domains = sorted({feed.split("/")[0] for feed in args.feeds})
    # Airflow starts while the simulator writes: its start-up, first DAG parse and the first
    # scheduled runs (of yesterday: nothing landed) are out of the way when the history loads.
    with EmbeddedAirflow(root, wait=False) as airflow:
        print(f"Simulating {args.days} days of source exports from {args.start} (scale {args.scale}; "
              f"{', '.join(args.feeds)}) ...", flush=True)
        cmd_simulate(args)
        print(f"Loading the history {args.start} .. {last} as ONE run per ingest DAG "
              f"(the daily schedule then takes one day per run) ...", flush=True)
        status = _ingest(domains, args.start, last, "history", build_once=True, started_airflow=airflow)
    if status == 0:
        cmd_scorecard(args, write=False)  # build_kpis's write_scorecard task wrote the page
    else:
        print(f"\nThe run did not finish cleanly: the ledger lines above say which files, and the task logs "
              f"are in {root / 'state' / 'airflow' / 'logs'} (or make up → Airflow UI).")
    print(f"""
Where to look:
  lake (DuckLake):   {lake.catalog_path(root)}  (data: {lake.data_path(root)})
  query it:          make sql     (or in any DuckDB session: .read {root / 'attach.sql'})
  ledger:            select * from ops.load_ledger order by started_at desc;
  scorecard:         {settings.reports_dir(root) / 'scorecard.html'}  (printable: scorecard.pdf beside it)
  Data Docs:         {settings.reports_dir(root) / 'data_docs' / 'index.html'}
  alerts:            {alerts.alerts_path(root)}  (one line per failed task)
  Airflow UI:        make up  → http://127.0.0.1:{port()}  (login: admin, password in {passwords_file(root)})
""")
    return status


def cmd_scorecard(args, write: bool = True) -> int:
    """Print marts.kpi_scorecard, and write the ministers' page and PDF (transforms/scorecard.py)."""
    from transforms import scorecard
    from transforms.scorecard import format_change, format_target, format_value

    con = lake.connect(_root(), read_only=True)
    rows = con.execute(
        """select s.kpi_id, s.region_code, s.region_name_en, s.period_start, s.actual, s.baseline,
                  s.change_vs_baseline, s.target, s.target_kind, s.unit, s.status, s.suppressed
           from marts.kpi_scorecard s
           order by s.kpi_id, s.region_code = 'KZ' desc, s.region_name_en""").fetchall()
    con.close()
    print(f"\nKPI scorecard (marts.kpi_scorecard): latest month per KPI and region; units in reference.kpi_catalogue\n"
          f"{'KPI':7} {'region':24} {'month':8} {'actual':>9} {'a year ago':>10} {'change':>8} {'target':>7}  status")
    if not rows:
        print("(empty: KPIs are published for whole months only, and no month is loaded whole yet)")
    for kpi, _, name, period, actual, baseline, change, target, target_kind, unit, status, suppressed in rows:
        actual_text = "suppr." if suppressed else format_value(actual, unit)
        print(f"{kpi:7} {name[:24]:24} {period:%Y-%m} {actual_text:>9} {format_value(baseline, unit):>10} "
              f"{format_change(change):>8} {format_target(target, target_kind, unit):>7}  "
              f"{'suppressed (small count)' if suppressed else status}")
    if write:
        scorecard.write(_root())
    return 0


def cmd_up(args) -> int:
    from transforms.orchestrate import EmbeddedAirflow, passwords_file, port

    root = _root()
    lake.ensure_lake(root)
    with EmbeddedAirflow(root) as airflow:
        print(f"Airflow UI: http://127.0.0.1:{port()}  (user admin, password in {passwords_file(root)}); Ctrl-C stops it")
        try:
            airflow.wait_forever()
        except KeyboardInterrupt:
            pass
    return 0


def cmd_airflow(args) -> int:
    import subprocess

    from transforms.orchestrate import airflow_env, ensure_airflow

    ensure_airflow(_root())
    return subprocess.call(["airflow", *args.args], env=airflow_env(_root()))


def cmd_privacy_scan(args) -> int:
    from transforms.privacy import scan_lake

    findings = scan_lake(_root())
    for finding in findings:
        print(finding)
    files = sum(1 for _ in lake.data_path(_root()).rglob("*.parquet"))
    print(f"{len(findings)} finding(s) in {files} Parquet file(s) of the lake")
    return 1 if findings else 0


def cmd_replay(args) -> int:
    """Replay one batch; print each file's outcome before and after."""
    from transforms.replay import replay

    try:
        before, after = replay(args.feed, args.batch, _root())
    except (LookupError, FileNotFoundError) as error:
        print(f"replay refused: {error}", file=sys.stderr)
        return 2
    now = {r.source_file: r for r in after}
    for old in before:
        new = now[old["source_file"]]
        print(f"{old['source_file']}\n  batch {args.batch}: {old['status']}, {old['rows_published']:,} published"
              f" + {old['rows_quarantined']:,} quarantined\n  replay {new.batch_id}: {new.status},"
              f" {new.rows_published:,} published + {new.rows_quarantined:,} quarantined"
              + (f"\n  {new.reason}" if new.reason else ""))
    print(f"ledger: select * from ops.load_ledger where run_id = '{after[0].run_id}';")
    return 0 if all(r.status == PUBLISHED for r in after) else 1


def cmd_gate_audit(args) -> int:
    from transforms.gate_audit import main

    return main(args.days, args.scale, args.defect_rate)


def cmd_bench(args) -> int:
    from transforms.bench import main as bench

    return bench(rows=args.rows, sim_scale=args.sim_scale, dbt_scale=args.dbt_scale)


def _feed_scale(text: str) -> tuple[str, float]:
    feed, _, value = text.partition("=")
    try:
        return feed, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected <domain>/<feed>=<scale>") from None


def main(argv: list[str] | None = None) -> int:
    from transforms.simulate import DEFAULT_DEFECT_RATE

    parser = argparse.ArgumentParser(prog="qala", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def world(p, defect_rate: float):
        p.add_argument("--start", type=date.fromisoformat, default=date(2024, 10, 1))
        p.add_argument("--days", type=int, default=400)
        p.add_argument("--scale", type=float, default=1.0,
                       help="1.0 = a realistic national day of every source system")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--domains", nargs="*", default=None)
        p.add_argument("--feed-scale", nargs="*", type=_feed_scale, default=None, metavar="FEED=SCALE",
                       help="a feed's own scale, e.g. safety/road_accidents=1 (the others take --scale)")
        p.add_argument("--sergek-rollout", type=date.fromisoformat, default=None,
                       help="the day Astana's Sergek cameras go live (default 2025-01-01)")
        p.add_argument("--defect-rate", type=float, default=defect_rate,
                       help=f"share of records (and of files) given a planted defect (default {defect_rate})")

    sub.add_parser("init", help="create the warehouse: lake, attach.sql, Airflow state").set_defaults(func=cmd_init)
    world(p := sub.add_parser("simulate", help="write simulated source exports into landing/"), DEFAULT_DEFECT_RATE)
    p.set_defaults(func=cmd_simulate)
    world(p := sub.add_parser("run", help="the main job: simulate, load the history through Airflow, build KPIs"), 0.0)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("backfill", help="an Airflow backfill of the ingest DAGs over landing days FROM..TO")
    p.add_argument("--from", dest="first", type=date.fromisoformat, required=True)
    p.add_argument("--to", dest="last", type=date.fromisoformat, required=True)
    p.add_argument("--domains", nargs="*", default=None)
    p.set_defaults(func=cmd_backfill)
    p = sub.add_parser("ingest", help="one ingest DAG run for one landing day")
    p.add_argument("--domain", required=True)
    p.add_argument("--date", type=date.fromisoformat, required=True)
    p.set_defaults(func=cmd_ingest)
    sub.add_parser("scorecard", help="print marts.kpi_scorecard; write reports/scorecard.html and .pdf").set_defaults(func=cmd_scorecard)
    sub.add_parser("privacy-scan", help="look for raw IINs, phones and plates in every Parquet file of the lake"
                   ).set_defaults(func=cmd_privacy_scan)
    p = sub.add_parser("replay", help="check a batch's files again (after a contract or suite fix) and publish what passes")
    p.add_argument("--feed", required=True, help="<domain>/<feed>")
    p.add_argument("--batch", required=True, help="a batch_id of ops.load_ledger")
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("gate-audit", help="recall and precision of the row checks and gates against planted defects")
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--scale", type=float, default=0.02)
    p.add_argument("--defect-rate", type=float, default=0.2)
    p.set_defaults(func=cmd_gate_audit)
    sub.add_parser("up", help="run the Airflow UI and scheduler until Ctrl-C").set_defaults(func=cmd_up)
    p = sub.add_parser("airflow", help="the airflow CLI, with this warehouse's environment")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_airflow)
    p = sub.add_parser("bench", help="ingest speed and memory vs DuckDB's own CSV → Parquet")
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--sim-scale", type=float, default=0.1,
                   help="the simulator is timed at this scale and at twice it")
    p.add_argument("--dbt-scale", type=float, default=0.002,
                   help="SCALE of the month of every feed the dbt section builds on (0: skip it)")
    p.set_defaults(func=cmd_bench)
    args = parser.parse_args(argv)
    # A SIGTERM (kill, a CI time-out, systemd) unwinds like Ctrl-C does, so the Airflow components
    # this command started are stopped with it instead of left running on the port.
    signal.signal(signal.SIGTERM, _terminated)
    return args.func(args)


def _terminated(signum, frame) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
