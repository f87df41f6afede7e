"""A small simulated world for the KPI tests: every feed, landed, loaded and built for real.

The simulator writes 14 months of every feed (2024-01-01 .. 2025-02-28, so every KPI has a
complete month and the same month a year earlier), and a year more of history for the feeds of the
rolling 12-month KPIs (SAF-01/SAF-02: the road-accident register; HCS-03: the Open311 requests;
from 2023-01-01), so that their latest windows have the 12 months before as a baseline. The load
path publishes every landed file
(real readers, row checks, pseudonymisation, GX gate, DuckLake), and `dbt build` runs the whole
project as the build_kpis DAG runs it. Tests then compare marts.kpi_values with computations
written straight from the landing files (never from the lake).

Built once per test session (`kpi_world` fixture in conftest.py) and only read afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from transforms import lake, settings

START = date(2024, 1, 1)
DAYS = 425  # to 2025-02-28
SCALE = 0.001
# The small registers at a size where their KPIs are mostly above the small-cell threshold.
FEED_SCALES = {"safety/road_accidents": 1.0, "housing/utility_payments": 1.0,
               # at 0.001 some days have no request, and the contract refuses an empty export
               "housing/open311_requests": 0.005}
# The rolling 12-month KPIs' feeds start a year earlier (26 months: windows ending 2023-12 ..
# 2025-02, of which 2024-12 .. 2025-02 have a baseline). Both feeds are small (~60 accidents and
# ~40 requests a day), so the year more costs little. Their days are written by one simulator run
# from HISTORY_START (a day's export depends only on the seed, the feed and the day, so the later
# days are the ones the other feeds' world would have), which keeps the landed days contiguous and
# ground_truth.json's run (start, days, scale) true for each feed.
HISTORY_START = date(2023, 1, 1)
HISTORY_FEEDS = ("safety/road_accidents", "housing/open311_requests")
SEED = 7
MIN_CELL = 10
DBT = Path(sys.executable).parent / "dbt"


def first_day(feed: str) -> date:
    """The world's first landing day of a feed."""
    return HISTORY_START if feed in HISTORY_FEEDS else START


@dataclass(frozen=True)
class World:
    root: Path
    start: date
    days: int

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def files(self, feed: str, pattern: str = "*") -> list[Path]:
        """Landed files of a feed, in landing-day order."""
        return sorted((self.landing / feed).glob(f"*/{pattern}"))

    def ground_truth(self) -> dict:
        import json

        return json.loads((self.root / "simulator" / "ground_truth.json").read_text(encoding="utf-8"))

    def kpi_values(self, kpi_id: str) -> dict[tuple[str, date], dict]:
        """marts.kpi_values of a KPI, keyed by (region_code, period_start)."""
        con = lake.connect(self.root, read_only=True)
        try:
            cur = con.execute("select * from marts.kpi_values where kpi_id = ?", [kpi_id])
            names = [d[0] for d in cur.description]
            return {(r["region_code"], r["period_start"]): r
                    for r in (dict(zip(names, row)) for row in cur.fetchall())}
        finally:
            con.close()

    def query(self, sql: str, params=None) -> list[tuple]:
        con = lake.connect(self.root, read_only=True)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


def _load(job: tuple[str, str]) -> str:
    feed, root = job
    from transforms import runs
    from transforms.load import load_files

    last = START + timedelta(days=DAYS - 1)
    load_files(feed, runs.landed_files(feed, first_day(feed), last, Path(root)), run_id="kpi-world",
               root=Path(root))
    return feed


def build(root: Path) -> World:
    from qala_devkit.simulate import feed_modules, simulate

    root.mkdir(parents=True, exist_ok=True)
    env_before = os.environ.get("QALA_WAREHOUSE")
    os.environ["QALA_WAREHOUSE"] = str(root)
    try:
        feeds = sorted(feed_modules())
        simulate(root, start=START, days=DAYS, scale=SCALE, seed=SEED, defect_rate=0.0,
                 scales=FEED_SCALES, workers=2, feeds=[f for f in feeds if f not in HISTORY_FEEDS])
        simulate(root, start=HISTORY_START, days=DAYS + (START - HISTORY_START).days, scale=SCALE,
                 seed=SEED, defect_rate=0.0, scales=FEED_SCALES, workers=2, feeds=list(HISTORY_FEEDS))
        lake.ensure_lake(root)
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_load, [(feed, str(root)) for feed in feeds]))
        done = subprocess.run(
            [str(DBT), "build", "--profiles-dir", ".", "--target-path", str(root / "dbt_target"),
             "--log-path", str(root / "dbt_logs")],
            cwd=settings.DBT_PROJECT_DIR, capture_output=True, text=True,
            env={**os.environ, "QALA_WAREHOUSE": str(root), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
        )
        if done.returncode != 0:
            raise RuntimeError(f"dbt build failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")
    finally:
        if env_before is None:
            os.environ.pop("QALA_WAREHOUSE", None)
        else:
            os.environ["QALA_WAREHOUSE"] = env_before
    return World(root, START, DAYS)
