"""`make bench`: the simulator's speed per feed, and Qala's ingest of one large road-accident
file against DuckDB's own floor.

Simulator: a week of every feed at two scales (S and 2S): records per second, and the bytes
written at 2S over the bytes at S (2.0 means size grows linearly with --scale; fixed-size
registers such as the programme plan stay at 1.0).

The floor is DuckDB reading the same CSV and writing it as Parquet (`COPY ... TO`), in the same
run on the same machine. Qala's figure is the whole load path of that file: read, row checks,
pseudonymisation, the GX gate, publish in one DuckLake transaction, ledger. Each side runs in
its own process so its peak memory (max RSS) is its own.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

BENCH_DAY = date(2025, 3, 3)
# Monday 31 March 2025 and its week: a OneRoster bulk, a monthly workforce report (1 April), the
# opening of first-grade applications, the heating season's last weeks.
SIMULATOR_WEEK = date(2025, 3, 31)


def _duckdb_floor(csv_path: str, out: str) -> dict:
    import duckdb

    started = time.perf_counter()
    duckdb.sql(f"copy (select * from read_csv('{csv_path}')) to '{out}' (format parquet)")
    return {"seconds": time.perf_counter() - started}


def _qala_ingest(csv_path: str, warehouse: str) -> dict:
    import os

    os.environ["QALA_WAREHOUSE"] = warehouse
    started = time.perf_counter()
    import great_expectations  # noqa: F401 - paid once per load task; reported apart

    imported = time.perf_counter()
    from transforms import gate, lake
    from transforms.load import load_files

    lake.ensure_lake(Path(warehouse))
    gate_seconds = []
    validate = gate.validate

    def timed(*args, **kwargs):
        t = time.perf_counter()
        try:
            return validate(*args, **kwargs)
        finally:
            gate_seconds.append(time.perf_counter() - t)

    gate.validate = timed
    t = time.perf_counter()
    (row,) = load_files("safety/road_accidents", [Path(csv_path)], run_id="bench", root=Path(warehouse))
    return {"seconds": time.perf_counter() - t, "gate_seconds": sum(gate_seconds),
            "gx_import_seconds": imported - started, "rows_in": row.rows_in,
            "rows_published": row.rows_published, "status": row.status}


def _child(kind: str, *args: str) -> None:
    result = {"duckdb": _duckdb_floor, "qala": _qala_ingest}[kind](*args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _run(kind: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "transforms.bench", kind, *args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def simulator_bench(scale: float, first: date = SIMULATOR_WEEK, days: int = 7) -> list[dict]:
    """Generate a week of every feed at `scale` and at 2 x `scale`, one process, one feed at a
    time: the time includes each feed's warm-up (earlier days re-derived for late records)."""
    from transforms.simulate import feed_modules, simulate

    results = []
    with tempfile.TemporaryDirectory(prefix="qala-simbench-") as tmp:
        for feed in feed_modules():
            measured = {}
            for factor in (1, 2):
                root = Path(tmp) / f"{feed.replace('/', '_')}_{factor}"
                t = time.perf_counter()
                records = simulate(root, first, days, scale=scale * factor, seed=42, feeds=[feed],
                                   workers=1)[feed]  # fmt: skip
                seconds = time.perf_counter() - t
                size = sum(p.stat().st_size for p in (root / "landing").rglob("*") if p.is_file())
                measured[factor] = (records, seconds, size)
                shutil.rmtree(root)
            (r1, _, b1), (r2, s2, b2) = measured[1], measured[2]
            results.append({"feed": feed, "records": r2, "seconds": s2, "records_per_s": r2 / s2,
                            "mb": b2 / 1e6, "size_ratio": b2 / b1 if b1 else float("nan")})
    return results


def main(rows: int = 2_000_000, sim_scale: float = 0.1) -> int:
    from transforms.simulate.road_accidents import write_rows

    print(f"make bench — the simulator: the week from {SIMULATOR_WEEK} of each feed, one process, "
          f"at scale S = {sim_scale} and 2S (figures at 2S)")
    print(f"  {'feed':34} {'records':>10} {'seconds':>8} {'records/s':>11} {'MB':>8}  size 2S/S")
    for r in simulator_bench(sim_scale):
        print(f"  {r['feed']:34} {r['records']:>10,} {r['seconds']:>8.2f} {r['records_per_s']:>11,.0f} "
              f"{r['mb']:>8.1f}  {r['size_ratio']:.2f}")

    with tempfile.TemporaryDirectory(prefix="qala-bench-") as tmp:
        warehouse = Path(tmp) / "warehouse"
        folder = warehouse / "landing" / "safety" / "road_accidents" / BENCH_DAY.isoformat()
        folder.mkdir(parents=True)
        csv_path = folder / "road_accidents_bench.csv"
        t = time.perf_counter()
        write_rows(csv_path, BENCH_DAY, rows)
        generated = time.perf_counter() - t
        size_mb = csv_path.stat().st_size / 1e6
        floor = _run("duckdb", str(csv_path), str(Path(tmp) / "floor.parquet"))
        qala = _run("qala", str(csv_path), str(warehouse))
    ratio = qala["seconds"] / floor["seconds"]
    print(f"""
make bench — ingest: safety/road_accidents, one file of {rows:,} rows ({size_mb:.0f} MB CSV), generated in {generated:.1f} s
  DuckDB floor (read_csv → Parquet):      {floor['seconds']:7.2f} s   peak memory {floor['peak_rss_mb']:7.0f} MB
  Qala ingest (parse, checks, GX gate,    {qala['seconds']:7.2f} s   peak memory {qala['peak_rss_mb']:7.0f} MB
    publish in one DuckLake transaction)
  ratio Qala / DuckDB floor:              {ratio:7.2f} ×
  GX gate share of the ingest:            {qala['gate_seconds']:7.2f} s = {qala['gate_seconds'] / qala['seconds']:.0%}
  GX import, once per load task (apart):  {qala['gx_import_seconds']:7.2f} s
  rows: {qala['rows_in']:,} in, {qala['rows_published']:,} published ({qala['status']})
""")
    return 0


if __name__ == "__main__":
    _child(sys.argv[1], *sys.argv[2:])
