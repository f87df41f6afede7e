"""The devkit's `qala` commands: `simulate`, `run` (the demo's main job), `bench`, `gate-audit`, `fuzz`,
`chaos`, `effects`.

`register` is the `qala.commands` entry point: the product CLI (transforms/cli.py) calls it with its
subparsers when the devkit is installed. Each command calls one function; nothing heavy is imported
before a command runs.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

from qala_devkit import DEFAULT_DEFECT_RATE
from transforms import settings


def cmd_simulate(args) -> int:
    from qala_devkit.simulate import sergek_params, simulate

    root = settings.warehouse_root()
    written = simulate(root, args.start, args.days, scale=args.scale, seed=args.seed,
                       domains=args.domains, progress=True, defect_rate=args.defect_rate,
                       feeds=getattr(args, "feeds", None), scales=dict(args.feed_scale or []),
                       params=sergek_params(args.sergek_rollout) if args.sergek_rollout else None)
    for feed, rows in written.items():
        print(f"{feed}: {rows:,} records over {args.days} day(s) from {args.start}")
    print(f"ground truth and the planted defects (file, line, kind): {settings.simulator_dir(root)}")
    return 0


def cmd_run(args) -> int:
    """The demo: simulate the history, load it as ONE run per ingest DAG, build the KPIs once."""
    from transforms import jobs
    from transforms.cli import cmd_init, cmd_scorecard
    from transforms.contract import all_feeds
    from transforms.orchestrate import EmbeddedAirflow

    cmd_init(args)
    root = settings.warehouse_root()
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
        ok = jobs.ingest(root, domains, args.start, last, "history", build_once=True, started_airflow=airflow)
    if ok:
        cmd_scorecard(args, write=False)  # build_kpis's write_scorecard task wrote the page
    else:
        print(f"\nThe run did not finish cleanly: the ledger lines above say which files, and the task logs "
              f"are in {root / 'state' / 'airflow' / 'logs'} (or make up → Airflow UI).")
    print(jobs.where_to_look(root))
    return 0 if ok else 1


def cmd_gate_audit(args) -> int:
    from qala_devkit.gate_audit import main

    return main(args.days, args.scale, args.defect_rate)


def cmd_fuzz(args) -> int:
    from pathlib import Path

    from qala_devkit.fuzz import FEEDS, main

    return main(args.formats or list(FEEDS), args.inputs, memory_gb=args.memory_gb,
                seconds_per_input=args.seconds, keep=Path(args.keep) if args.keep else None)


def cmd_chaos(args) -> int:
    from pathlib import Path

    from qala_devkit.chaos import main

    return main(args.trials, seed=args.seed, kinds=args.kinds, keep=Path(args.keep) if args.keep else None,
                airflow_trials=args.airflow_trials)


def cmd_effects(args) -> int:
    from pathlib import Path

    from qala_devkit.effects import main

    return main(Path(args.warehouse) if args.warehouse else None,
                Path(args.ground_truth) if args.ground_truth else None, show_all=args.all)


def cmd_bench(args) -> int:
    from qala_devkit.bench import main

    return main(rows=args.rows, sim_scale=args.sim_scale, dbt_scale=args.dbt_scale)


def _feed_scale(text: str) -> tuple[str, float]:
    feed, _, value = text.partition("=")
    try:
        return feed, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected <domain>/<feed>=<scale>") from None


def _world(p: argparse.ArgumentParser, defect_rate: float) -> None:
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


def register(sub) -> None:
    """Add the devkit's commands to `qala`'s subparsers."""
    _world(p := sub.add_parser("simulate", help="write simulated source exports into landing/"), DEFAULT_DEFECT_RATE)
    p.set_defaults(func=cmd_simulate)
    _world(p := sub.add_parser("run", help="the main job: simulate, load the history through Airflow, build KPIs"), 0.0)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("gate-audit", help="recall and precision of the row checks and gates against planted defects")
    p.add_argument("--days", type=int, default=5)
    p.add_argument("--scale", type=float, default=0.02)
    p.add_argument("--defect-rate", type=float, default=0.2)
    p.set_defaults(func=cmd_gate_audit)
    p = sub.add_parser("fuzz", help="every reader fuzzed through the load path (hypothesis), seeded with real files")
    p.add_argument("--inputs", type=int, default=500, help="fuzzed landings per format")
    p.add_argument("--formats", nargs="*", help="formats to fuzz (default: all: csv jsonl open311 gtfs_static "
                                                "gtfs_rt fhir_bulk oneroster)")
    p.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of each format's process")
    p.add_argument("--seconds", type=float, default=60.0, help="time limit per input")
    p.add_argument("--keep", help="folder to copy each finding's input into")
    p.set_defaults(func=cmd_fuzz)
    p = sub.add_parser("chaos", help="SIGKILL at random instants, the work run again: must end as undisturbed")
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--kinds", nargs="*", choices=["load", "replay", "dbt", "scorecard"],
                   help="units of work to kill (default: all)")
    p.add_argument("--airflow-trials", type=int, default=8,
                   help="then, in the embedded Airflow: load task processes killed, Airflow's retry must end as undisturbed")
    p.add_argument("--keep", help="folder to move each warehouse that ended differently into")
    p.set_defaults(func=cmd_chaos)
    p = sub.add_parser("effects", help="the KPIs' 95% intervals against the simulator's planted effects; "
                       "constant KPIs must not claim a change more often than 95% allows")
    p.add_argument("--warehouse", help="the simulated warehouse (default $QALA_WAREHOUSE)")
    p.add_argument("--ground-truth", help="the ground truth to check against (default <warehouse>/simulator/ground_truth.json)")
    p.add_argument("--all", action="store_true", help="print every period's rows, not only the latest period's")
    p.set_defaults(func=cmd_effects)
    p = sub.add_parser("bench", help="ingest speed and memory vs DuckDB's own CSV → Parquet")
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--sim-scale", type=float, default=0.1,
                   help="the simulator is timed at this scale and at twice it")
    p.add_argument("--dbt-scale", type=float, default=0.002,
                   help="SCALE of the month of every feed the dbt section builds on (0: skip it)")
    p.set_defaults(func=cmd_bench)
