"""The incremental model (int_transport__gtfs_rt_trip_updates__region_month) against a full refresh, on a real lake.

Simulated GTFS static and GTFS-Realtime for 2024-01-01 .. 2024-03-03 are loaded through the real
load path in three steps, with `dbt run` (incremental) after each, the way the daily build_kpis
runs go; at the end `dbt run --full-refresh` must give the same table:
  1. the landing days up to 2024-02-10 (January complete, February not): the first build;
  2. nothing new: the next build touches no month and changes nothing;
  3. the days to 2024-03-03 (February completes) AND a January file re-sent by its source with
     half of its trip updates (the replay deletes the file's rows and inserts the smaller set):
     the build redoes January and February (and March, incomplete, gives no row), not the rest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from transforms import lake, runs, settings
from transforms.load import load_files

DBT = Path(sys.executable).parent / "dbt"
MODEL = "int_transport__gtfs_rt_trip_updates__region_month"
FEEDS = ["transport/gtfs_static", "transport/gtfs_rt_trip_updates"]
START = date(2024, 1, 1)
DAYS = 63  # to 2024-03-03
FIRST_CUT = date(2024, 2, 10)


def dbt(root: Path, *args: str) -> str:
    done = subprocess.run(
        [str(DBT), *args, "--profiles-dir", ".", "--target-path", str(root / "dbt_target"),
         "--log-path", str(root / "dbt_logs")],
        cwd=settings.DBT_PROJECT_DIR, capture_output=True, text=True,
        env={**os.environ, "QALA_WAREHOUSE": str(root), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"},
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    return done.stdout


def table(root: Path) -> list[tuple]:
    con = lake.connect(root, read_only=True)
    try:
        return con.execute(f"select region_prefix, month, arrivals, on_time_arrivals, batch_ids "
                           f"from intermediate.{MODEL} order by all").fetchall()
    finally:
        con.close()


def touched(log: str) -> list[str]:
    """The months the incremental build said it redid (its log line)."""
    found = re.search(rf"{MODEL}: changes since lake snapshot \d+ \(to \d+\) touch (\d+) month\(s\): (.*)", log)
    assert found, log[-3000:]
    months = [] if found.group(2).strip() == "none" else [m.strip() for m in found.group(2).split(",")]
    assert int(found.group(1)) == len(months)
    return months


def load(root: Path, feed: str, first: date, last: date, run_id: str) -> None:
    load_files(feed, runs.landed_files(feed, first, last, root), run_id=run_id, root=root)


def iter_entities(path: Path):
    from google.transit import gtfs_realtime_pb2

    message = gtfs_realtime_pb2.FeedMessage()
    message.ParseFromString(path.read_bytes())
    return message.entity


def halve(path: Path) -> int:
    """The source re-sends the file with every other trip update: returns the entities kept."""
    from google.transit import gtfs_realtime_pb2

    message = gtfs_realtime_pb2.FeedMessage()
    message.ParseFromString(path.read_bytes())
    keep = [e for i, e in enumerate(message.entity) if i % 2 == 0]
    del message.entity[:]
    message.entity.extend(keep)
    path.write_bytes(message.SerializeToString())
    return len(keep)


@pytest.fixture(scope="module")
def transit_lake(tmp_path_factory) -> Path:
    from qala_devkit.simulate import simulate

    root = tmp_path_factory.mktemp("incremental") / "warehouse"
    root.mkdir(parents=True)
    before = os.environ.get("QALA_WAREHOUSE")
    os.environ["QALA_WAREHOUSE"] = str(root)
    try:
        simulate(root, start=START, days=DAYS, scale=0.0005, seed=3, defect_rate=0.0, feeds=FEEDS, workers=2)
        lake.ensure_lake(root)
        last = START + timedelta(days=DAYS - 1)
        load(root, FEEDS[0], START, last, "static")
        load(root, FEEDS[1], START, FIRST_CUT, "rt-1")
        yield root
    finally:
        if before is None:
            os.environ.pop("QALA_WAREHOUSE", None)
        else:
            os.environ["QALA_WAREHOUSE"] = before


def test_incremental_builds_equal_a_full_refresh(transit_lake: Path) -> None:
    root = transit_lake
    dbt(root, "seed")
    dbt(root, "run", "--select", f"+{MODEL}")
    first = table(root)
    assert {m for _, m, *_ in first} == {date(2024, 1, 1)}, "only January is complete at 2024-02-10"

    # nothing landed since: no month is redone and nothing changes
    assert touched(dbt(root, "run", "--select", MODEL)) == []
    assert table(root) == first

    # the rest of February and two days of March land, and a January file is re-sent smaller
    load(root, FEEDS[1], FIRST_CUT + timedelta(days=1), START + timedelta(days=DAYS - 1), "rt-2")
    january = sorted((root / "landing" / FEEDS[1] / "2024-01-15").glob("*.pb"))[0]
    sent = len(list(iter_entities(january)))
    assert 0 < halve(january) < sent
    load(root, FEEDS[1], date(2024, 1, 15), date(2024, 1, 15), "rt-resent")

    redone = touched(dbt(root, "run", "--select", MODEL))
    assert "2024-01-01" in redone and "2024-02-01" in redone
    incremental = table(root)
    assert {m for _, m, *_ in incremental} == {date(2024, 1, 1), date(2024, 2, 1)}
    assert "2023-12-01" not in redone and len(redone) <= 3, redone

    dbt(root, "run", "--select", MODEL, "--full-refresh")
    assert table(root) == incremental
