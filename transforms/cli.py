"""`qala`: the project's own commands. The Makefile calls these; so can engineers and scripts."""

from __future__ import annotations

import argparse
import signal
import sys
from datetime import date
from pathlib import Path

from transforms import jobs, lake, settings
from transforms.contract import all_feeds
from transforms.ledger import PUBLISHED


def _root() -> Path:
    return settings.warehouse_root()


def cmd_init(args) -> int:
    from transforms.airflow_secrets import passwords_file

    root = _root()
    password = jobs.init(root)
    print(f"warehouse ready: {root}")
    if password:
        print(f"Airflow UI login (shown once): admin / {password}  (kept in {passwords_file(root)})")
    return 0


def cmd_backfill(args) -> int:
    """An Airflow backfill of each domain's ingest DAG over [from, to], then build_kpis once."""
    return 0 if jobs.backfill(_root(), args.domains, args.first, args.last) else 1


def cmd_ingest(args) -> int:
    return 0 if jobs.ingest(_root(), [args.domain], args.date, args.date, "ingest") else 1


def cmd_scorecard(args, write: bool = True) -> int:
    """Print marts.kpi_scorecard, and write the ministers' page and PDF (transforms/scorecard.py)."""
    from transforms import scorecard
    from transforms.scorecard import format_change, format_target, format_value

    with lake.explained(_root()):  # a damaged lake file: named, with its table and the repair
        return _scorecard(write)


def _scorecard(write: bool) -> int:
    from transforms import scorecard
    from transforms.scorecard import format_change, format_target, format_value

    con = lake.connect(_root(), read_only=True)
    rows = con.execute(
        """select s.kpi_id, s.region_code, s.region_name_en, s.period_start, s.window_months, s.actual,
                  s.baseline, s.change_vs_baseline, s.change_lower, s.change_upper, s.target,
                  s.target_kind, s.unit, s.status, s.suppressed
           from marts.kpi_scorecard s
           order by s.kpi_id, s.region_code = 'KZ' desc, s.region_name_en""").fetchall()
    con.close()
    print(f"\nKPI scorecard (marts.kpi_scorecard): latest period per KPI and region (12m: the 12 months to that month);"
          f" change with its 95% interval; units in reference.kpi_catalogue\n"
          f"{'KPI':7} {'region':24} {'period':11} {'actual':>9} {'a year ago':>10} {'change':>8} {'95% interval':>19}"
          f" {'target':>7}  status")
    if not rows:
        print("(empty: KPIs are published for whole months only, and no month is loaded whole yet)")
    for (kpi, _, name, period, window, actual, baseline, change, low, high, target, target_kind, unit, status,
         suppressed) in rows:
        actual_text = "suppr." if suppressed else format_value(actual, unit)
        interval = f"{format_change(low)} to {format_change(high)}" if low is not None else "—"
        period_text = f"{period:%Y-%m}" + (f" {window}m" if window > 1 else "")
        print(f"{kpi:7} {name[:24]:24} {period_text:11} {actual_text:>9} {format_value(baseline, unit):>10} "
              f"{format_change(change):>8} {interval:>19} {format_target(target, target_kind, unit):>7}  "
              f"{'suppressed (small count)' if suppressed else status}")
    if write:
        scorecard.write(_root())
    return 0


def cmd_up(args) -> int:
    from transforms.airflow_secrets import passwords_file
    from transforms.orchestrate import EmbeddedAirflow, port

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


def cmd_rekey(args) -> int:
    """Rotate the pseudonymisation key; every landed file of the hashed feeds re-keyed (transforms/rekey.py)."""
    from transforms.rekey import RekeyRefused, rekey

    print("Rotating the pseudonymisation key. Pause the scheduler first (`qala up` stopped, or every DAG paused): "
          "a load that runs meanwhile is refused and retried by Airflow, not published under the old key.")
    try:
        summary = rekey(_root(), expire_snapshots=args.expire_snapshots)
    except RekeyRefused as error:
        print(f"rekey refused: {error}", file=sys.stderr)
        return 2
    files = sum(f["files"] for f in summary.feeds.values())
    rows = sum(f["rows"] for f in summary.feeds.values())
    print(f"rotation {summary.run_id} complete{' (resumed)' if summary.resumed else ''}: {len(summary.feeds)} feed(s), "
          f"{files:,} file(s), {rows:,} rows re-keyed in {summary.seconds:.1f} s; dbt: {summary.dbt}")
    print(f"ledger: select * from ops.load_ledger where run_id = '{summary.run_id}';")
    if summary.mode == "env":
        print("the key is held in the environment: now put the new key in QALA_PSEUDONYMISATION_KEY (and the Airflow "
              "connection qala_pseudonymisation), remove QALA_PSEUDONYMISATION_KEY_NEXT, and destroy the old key; "
              "loads under the old key are refused from now on")
    else:
        print("the new key is in place (state/secrets/pseudonymisation.key) and the old one is deleted: back up the new one")
    return 0


def cmd_lake_check(args) -> int:
    """Every lake data file the catalog lists that is missing or unreadable; exit code 1 if any."""
    from transforms import ledger
    from transforms.repair import check

    damaged = check(_root())
    for damage in damaged:
        print(damage)
    waiting = ledger.pending(_root())
    if waiting:
        print(f"{len(waiting)} ledger row(s) kept by a full disk wait in {ledger.pending_path(_root())} "
              "(the next load writes them into ops.load_ledger)")
    print(f"{len(damaged)} damaged lake data file(s)" + ("; repair: qala repair (make repair)" if damaged else ""))
    return 1 if damaged else 0


def cmd_repair(args) -> int:
    """Take every damaged data file out of its table and load its landed files again."""
    from transforms.repair import repair

    done = repair(_root())
    if not done.damaged:
        print("no damaged lake data file: nothing to repair")
        return 0
    for damage in done.damaged:
        print(f"removed from {damage.table}: {damage.path} ({damage.problem})")
    print(f"damaged files kept in {done.moved_to}")
    failed = 0
    for feed, rows in done.reloaded.items():
        for row in rows:
            failed += row.status not in (PUBLISHED, "not_read")
            print(f"reloaded {row.source_file}: {row.status}, {row.rows_published:,} published"
                  f" + {row.rows_quarantined:,} quarantined" + (f"; {row.reason}" if row.reason else ""))
    for label in done.not_in_landing:
        print(f"NOT reloaded (gone from landing/): {label}")
    return 1 if failed or done.not_in_landing else 0


def cmd_feeds(args) -> int:
    """`qala feeds list` / `qala feeds show <domain>/<feed>`."""
    from transforms import feeds

    if args.feed is None:
        for feed in feeds.catalogue():
            print(f"{feed['feed']:34} {feed['format']:12} {feed['title']}  →  {', '.join(feed['tables'])}")
        return 0
    chapters = feeds.story(args.feed, _root())
    width = max(len(c.role) for c in chapters)
    print(f"{args.feed}: every file and table that tells its story, source to KPI")
    for chapter in chapters:
        print(f"  {chapter.role:{width}}  {chapter.where}")
    return 0


# Commands that other distributions add to `qala` (the devkit's simulate, run, bench and
# gate-audit): each entry point of this group is a function that adds its subparsers.
COMMAND_PLUGINS = "qala.commands"


def main(argv: list[str] | None = None) -> int:
    from importlib.metadata import entry_points

    parser = argparse.ArgumentParser(prog="qala", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="create the warehouse: lake, attach.sql, Airflow state").set_defaults(func=cmd_init)
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
    p = sub.add_parser("rekey", help="rotate the pseudonymisation key: reload every landed file of the hashed feeds "
                       "under a new key, rebuild dbt's models on them, then retire the old key (resumes if interrupted)")
    p.add_argument("--expire-snapshots", action="store_true",
                   help="also expire the lake's older snapshots and delete their files (they hold old-key hashes; "
                        "time travel then starts at the rotation)")
    p.set_defaults(func=cmd_rekey)
    sub.add_parser("lake-check", help="find every lake data file the catalog lists that is missing or unreadable"
                   ).set_defaults(func=cmd_lake_check)
    sub.add_parser("repair", help="take damaged lake data files out of their tables and load their landed files again"
                   ).set_defaults(func=cmd_repair)
    p = sub.add_parser("feeds", help="list the feeds, or show every file and table of one feed's story")
    feeds_sub = p.add_subparsers(dest="feeds_command", required=True)
    feeds_sub.add_parser("list", help="every feed: format, title, silver tables").set_defaults(func=cmd_feeds, feed=None)
    show = feeds_sub.add_parser("show", help="contract, suites, reader, DAG, dbt models, tests, simulator, tables")
    show.add_argument("feed", choices=all_feeds(), metavar="<domain>/<feed>")
    show.set_defaults(func=cmd_feeds)
    sub.add_parser("up", help="run the Airflow UI and scheduler until Ctrl-C").set_defaults(func=cmd_up)
    p = sub.add_parser("airflow", help="the airflow CLI, with this warehouse's environment")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_airflow)
    for plugin in entry_points(group=COMMAND_PLUGINS):
        plugin.load()(sub)
    args = parser.parse_args(argv)
    # What this command and the processes it starts (Airflow, its tasks, dbt) create is its
    # owner's alone: landing holds raw personal data (settings.PRIVATE_UMASK).
    settings.private_files()
    # A SIGTERM (kill, a CI time-out, systemd) unwinds like Ctrl-C does, so the Airflow components
    # this command started are stopped with it instead of left running on the port.
    signal.signal(signal.SIGTERM, _terminated)
    return args.func(args)


def _terminated(signum, frame) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
