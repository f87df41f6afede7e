"""The dbt project on a temporary lake: real `dbt build` against DuckLake, KPIs checked by hand.

Hand-made accidents go into qala.silver.safety__road_accidents of a fresh warehouse; `dbt build`
(seeds, models, data tests, unit tests) runs as a subprocess exactly as the DAG runs it; then
marts.kpi_values and marts.kpi_scorecard are read back through `lake.connect` and compared with
an independent computation in plain Python (and scipy for the Wilson interval) from the inserted
rows: rolling 12-month windows, suppression, baseline, change, 95% intervals and status.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from statistics import NormalDist

import pytest
from scipy import stats

from tests.conftest import run_doc_query
from transforms import lake, settings

DBT = Path(sys.executable).parent / "dbt"
PROJECT = settings.DBT_PROJECT_DIR
MIN_CELL = 10
SAF01_TARGET = -0.16
WINDOW = 12  # SAF-01 and SAF-02 are rolling 12-month windows
Z = NormalDist().inv_cdf(0.975)


def _month(first: date, k: int) -> date:
    """The first day of the month k months after `first` (k may be negative)."""
    m = first.year * 12 + first.month - 1 + k
    return date(m // 12, m % 12 + 1, 1)


# Accidents per region (KATO prefix) and month, 2023-01 .. 2025-03 (27 months). SAF-01/SAF-02
# are 12-month windows: the first row is 2023-12 (2023-01..2023-12), and the windows 2024-12 ..
# 2025-03 have a baseline (the window ending 12 months earlier). Chosen so that, in 12 months:
# - Astana falls exactly 16% in 2024 (150 -> 126, the target's boundary); at these counts the
#   interval of the change also holds 0: 'within-noise';
# - Almaty falls 30% (600 -> 420): the whole interval is beyond -16%, 'on-track';
# - Turkistan rises 67% (150 -> 250): the whole interval is above 0, 'off-track';
# - Shymkent falls 9% (1500 -> 1365): the whole interval is below 0 but not beyond -16%,
#   'at-risk' (improving, short of the target);
# - Karaganda (about 100 a year) has a month without accidents (2023-06) and is the smallest
#   published region, so the one complementary suppression hides;
# - Ulytau has none in 2023 (a window of 0, published), 2 and then 5 in the windows of 2024 (a
#   small cell: Karaganda is hidden with it), then 11..14 from 2025-01;
# - Mangystau has 4 accidents, all in 2024-09: from the window 2024-09 it is a small cell too, so
#   in 2024-09..2024-12 two regions are small (no complementary suppression), and from 2025-01 it
#   is the only one: the smallest other published region, Ulytau (11), is hidden.
MONTHS = [_month(date(2023, 1, 1), k) for k in range(27)]
COUNTS = {
    "71": [14, 12, 11, 13, 12, 14, 13, 12, 11, 12, 13, 13,   # Astana: 150
           11, 10, 9, 11, 10, 12, 11, 10, 9, 11, 10, 12,     # 126
           10, 9, 11],
    "75": [48, 47, 52, 50, 51, 49, 53, 50, 48, 52, 50, 50,   # Almaty: 600
           36, 34, 35, 37, 33, 35, 36, 34, 35, 35, 34, 36,   # 420
           34, 33, 35],
    "35": [9, 8, 8, 9, 10, 0, 8, 9, 8, 10, 9, 8,             # Karaganda: 96
           8, 9, 8, 9, 8, 8, 9, 8, 9, 8, 8, 9,               # 101
           8, 9, 8],
    "62": [0] * 12 + [2, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0] + [8, 1, 2],  # Ulytau: 0, 5
    "47": [0] * 12 + [0] * 8 + [4, 0, 0, 0] + [0, 0, 0],     # Mangystau: 0, 4
    "79": [125] * 12 + [114] * 9 + [113] * 3 + [108, 110, 109],  # Shymkent: 1500, 1365
    "61": [12, 13, 12, 11, 13, 12, 14, 12, 13, 12, 13, 13,   # Turkistan: 150
           20, 21, 19, 22, 20, 21, 20, 22, 21, 20, 22, 22,   # 250
           21, 20, 22],
}
# people killed per region and month (sum over its accidents): in 12 months Almaty's fall
# 130 -> 80 and Turkistan's rise 20 -> 45 are beyond noise, Astana's 14 -> 12 is not; Karaganda
# (4 a year) is a small cell in every window, so in the windows where it is the only one the
# smallest other published region is hidden
DEATHS = {
    "71": [2, 1, 0, 2, 1, 0, 2, 1, 0, 1, 2, 2, 1, 1, 0, 2, 1, 1, 1, 0, 1, 1, 2, 1, 1, 0, 1],
    "75": [11, 10, 12, 10, 11, 13, 10, 11, 12, 10, 10, 10,
           7, 6, 7, 6, 7, 7, 6, 7, 6, 7, 7, 7, 6, 7, 6],
    "35": [1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0],
    "62": [0] * 12 + [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0] + [1, 0, 0],
    "47": [0] * 27,
    "79": [0] * 27,
    "61": [2, 1, 2, 1, 2, 2, 1, 2, 2, 1, 2, 2,
           4, 3, 4, 4, 3, 4, 4, 3, 4, 4, 4, 4, 4, 3, 4],
}
ASTANA, ALMATY, KARAGANDA, ULYTAU, MANGYSTAU, TURKISTAN, SHYMKENT = (
    "710000000", "750000000", "350000000", "620000000", "470000000", "610000000", "790000000")


def _last_day(month: date) -> date:
    return _month(month, 1) - timedelta(days=1)


def _accident_rows() -> list[tuple]:
    rng = random.Random(20240401)
    rows = []
    n = 0
    for prefix, counts in COUNTS.items():
        for month, count, deaths in zip(MONTHS, counts, DEATHS[prefix], strict=True):
            killed = [0] * count
            for k in range(deaths):  # spread the deaths over the month's accidents
                killed[k % count] += 1
            for i in range(count):
                n += 1
                day = month + timedelta(days=rng.randrange(28))
                occurred = datetime.combine(day, datetime.min.time()) + timedelta(
                    minutes=rng.randrange(24 * 60)
                )
                severity = "fatal" if killed[i] else rng.choice(["damage_only", "injury"])
                injured = rng.randrange(1, 4) if severity != "damage_only" else 0
                # The loaded landing days must cover the first and the last month whole, or
                # the KPI models leave those months out as incomplete.
                landing = (month if month == MONTHS[0] else
                           _last_day(month) if month == MONTHS[-1] else day)
                batch = f"safety__road_accidents:{landing.isoformat()}"
                rows.append((
                    f"RA-{n:06d}", occurred, f"{prefix}{rng.randrange(10**7):07d}", severity,
                    injured, killed[i], rng.randrange(1, 4), f"street {rng.randrange(50)}",
                    43.0 + rng.random(), 70.0 + rng.random(), batch, landing,
                    f"landing/safety/road_accidents/{landing.isoformat()}/accidents.csv", i + 2,
                ))
    return rows


SILVER_COLUMNS = ("accident_id, occurred_at, kato_code, severity, injured, killed, vehicles, street, "
                  "lat, lon, _batch_id, _landing_date, _source_file, _source_line")


def _fill_lake(root: Path, rows: list[tuple]) -> None:
    lake.ensure_lake(root)
    con = lake.connect(root)
    # ensure_lake created every feed's silver table from its contract, empty
    con.execute("begin")  # one lake transaction, as the load path publishes
    con.executemany(
        f"insert into silver.safety__road_accidents ({SILVER_COLUMNS}) values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows
    )
    con.execute("commit")
    batches = sorted({(r[10], r[11], r[12]) for r in rows})
    snapshot = con.execute("select id from qala.current_snapshot()").fetchone()[0]
    now = datetime.now()
    con.executemany(
        "insert into ops.load_ledger (batch_id, feed, logical_date, source_file, rows_in, "
        "rows_published, rows_quarantined, rows_skipped, status, snapshot_id, started_at, finished_at) "
        "values (?, 'safety/road_accidents', ?, ?, 0, 0, 0, 0, 'published', ?, ?, ?)",
        [(b, d, f, snapshot, now, now) for b, d, f in batches],
    )
    con.close()


def _regions() -> dict[str, dict]:
    with open(settings.SEEDS_DIR / "regions.csv", encoding="utf-8") as f:
        return {r["kato_prefix"]: r for r in csv.DictReader(f)}


def _poisson_bounds(n: int) -> tuple[float, float]:
    """95% score interval of a Poisson count n."""
    half = Z * math.sqrt(n + Z * Z / 4)
    return max(n + Z * Z / 2 - half, 0.0), n + Z * Z / 2 + half


def _rate_ratio_bounds(n1: int, e1: float, n0: int, e0: float) -> tuple[float, float]:
    """95% interval of (n1/e1) / (n0/e0), conditional on n1 + n0: Wilson interval of n1's share."""
    ci = stats.binomtest(n1, n1 + n0).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = ci.low, ci.high
    upper = math.inf if hi >= 1 else hi / (1 - hi) * e0 / e1
    return lo / (1 - lo) * e0 / e1, upper


def _expected(rows: list[tuple]) -> dict[tuple, dict]:
    """SAF-01 / SAF-02 per (kpi, region_code, month), computed without SQL."""
    regions = _regions()
    first, last = min(r[1] for r in rows), max(r[1] for r in rows)
    months = []
    m = date(first.year, first.month, 1)
    while m <= date(last.year, last.month, 1):
        months.append(m)
        m = _month(m, 1)

    # per region and calendar month
    monthly = {"SAF-01": defaultdict(int), "SAF-02": defaultdict(int)}
    month_batches = defaultdict(set)
    for r in rows:
        key = (r[2][:2], date(r[1].year, r[1].month, 1))
        monthly["SAF-01"][key] += 1
        monthly["SAF-02"][key] += r[5]
        month_batches[key].add(r[10])
        month_batches[("KZ", key[1])].add(r[10])

    # no simulator/ground_truth.json in this warehouse: the world's scale is 1
    population = {p: int(reg["population"]) * 1.0 for p, reg in regions.items()}
    code = {p: reg["kato_code"] for p, reg in regions.items()}
    kz_population = sum(population.values())

    out = {}
    for kpi, cnt in monthly.items():
        for end in months[WINDOW - 1:]:  # a window only when its 12 months are all there
            window = [_month(end, -k) for k in range(WINDOW)]
            cells = {}
            for p in regions:
                n = sum(cnt[(p, w)] for w in window)
                cells[code[p]] = (n, population[p], sorted(set().union(*(month_batches[(p, w)] for w in window))))
            kz = sum(cells[code[p]][0] for p in regions)
            kz_batches = sorted(set().union(*(month_batches[("KZ", w)] for w in window)))
            cells["KZ"] = (kz, kz_population, kz_batches)
            small = {c for c, (n, _, _) in cells.items() if 1 <= n < MIN_CELL}
            reasons = {c: "small" for c in small}
            regional_small = [c for c in small if c != "KZ"]
            if len(regional_small) == 1:
                candidates = sorted(
                    (n, c) for c, (n, _, _) in cells.items()
                    if c != "KZ" and c not in small and n > 0
                )
                if candidates:
                    reasons[candidates[0][1]] = "complementary"
            for c, (n, pop, b) in cells.items():
                suppressed = c in reasons
                lo, hi = _poisson_bounds(n)
                out[(kpi, c, end)] = {
                    "window_start": window[-1],
                    "count": n,  # the true count, published or not
                    "numerator": None if suppressed else n,
                    "denominator": pop,
                    "actual": None if suppressed else n * 100000 / pop,
                    "actual_lower": None if suppressed else lo / pop * 100000,
                    "actual_upper": None if suppressed else hi / pop * 100000,
                    "suppressed": suppressed,
                    "reason": reasons.get(c),
                    "batch_ids": kz_batches if suppressed else b,
                }
    for (kpi, c, end), row in out.items():
        prev = out.get((kpi, c, _month(end, -12)))  # the window ending 12 months earlier
        # the baseline and its interval are the baseline row's, shown also on a suppressed row
        # (they are published in their own row)
        row["baseline"] = prev["actual"] if prev else None
        row["baseline_lower"] = prev["actual_lower"] if prev else None
        row["baseline_upper"] = prev["actual_upper"] if prev else None
        row["change"] = row["change_lower"] = row["change_upper"] = None
        if row["actual"] is not None and row["baseline"] is not None and row["baseline"] > 0:
            row["change"] = row["actual"] / row["baseline"] - 1
            lo, hi = _rate_ratio_bounds(row["numerator"], row["denominator"],
                                        prev["numerator"], prev["denominator"])
            row["change_lower"], row["change_upper"] = lo - 1, hi - 1
        row["target"] = SAF01_TARGET if kpi == "SAF-01" else None
        if row["target"] is None or row["change"] is None:
            row["gap"] = row["gap_lower"] = row["gap_upper"] = None
        else:
            row["gap"] = row["change"] - row["target"]
            row["gap_lower"] = row["change_lower"] - row["target"]
            row["gap_upper"] = row["change_upper"] - row["target"]
        row["status"] = _status(kpi, row)
    return out


def _status(kpi: str, row: dict) -> str | None:
    """The evidence rule: a verdict only where the whole 95% interval of the change supports it."""
    if row["suppressed"]:
        return None
    if row["baseline"] is None or row["baseline"] <= 0:
        return "no-baseline"
    lower, upper = row["change_lower"], row["change_upper"]
    # both KPIs are lower-is-better
    if kpi == "SAF-01":  # target: change vs the 12 months before <= -16%
        if upper <= SAF01_TARGET:
            return "on-track"
        if lower > 0:
            return "off-track"
        if SAF01_TARGET < lower and upper < 0:
            return "at-risk"
        return "within-noise"
    # SAF-02: no target, direction only
    if upper < 0:
        return "on-track"
    if lower > 0:
        return "off-track"
    return "within-noise"


def _dbt(args: list[str], tmp_path: Path, warehouse: Path | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    env.pop("QALA_WAREHOUSE", None)
    if warehouse is not None:
        env["QALA_WAREHOUSE"] = str(warehouse)
    env["DBT_LOG_PATH"] = str(tmp_path / "dbt_logs")
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return subprocess.run(
        [str(DBT), *args, "--project-dir", str(PROJECT), "--profiles-dir", str(PROJECT),
         "--target-path", str(tmp_path / "dbt_target")],
        env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("dbt_kpis")
    root = tmp_path / "warehouse"
    rows = _accident_rows()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QALA_WAREHOUSE", str(root))
        _fill_lake(root, rows)
        result = _dbt(["build"], tmp_path, root)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
        yield root, rows, tmp_path


def _read(root: Path, sql: str) -> list[dict]:
    con = lake.connect(root, read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


def _close(a, b) -> bool:
    return (a is None and b is None) or (
        a is not None and b is not None
        and (a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12))
    )


def test_test_data_covers_the_cases():
    rows = _accident_rows()
    assert 4000 <= len(rows) <= 6000
    assert len({r[2][:2] for r in rows}) >= 6
    assert len({(r[1].year, r[1].month) for r in rows}) == len(MONTHS) == 27
    for prefix, counts in COUNTS.items():
        assert len(counts) == len(DEATHS[prefix]) == len(MONTHS), prefix
        assert all(d <= n for n, d in zip(counts, DEATHS[prefix])), prefix
    # the independent computation meets every status the safety KPIs can take
    expected = _expected(rows)
    statuses = {(k[0], e["status"]) for k, e in expected.items()}
    every = ("on-track", "at-risk", "off-track", "within-noise", "no-baseline", None)
    assert {("SAF-01", s) for s in every} <= statuses
    assert {("SAF-02", s) for s in every if s != "at-risk"} <= statuses  # no target: no at-risk
    # and no interval bound sits so near a threshold (0, the target) that rounding could decide
    bounds = [e[b] for e in expected.values() for b in ("change_lower", "change_upper") if e[b] is not None]
    assert min(min(abs(b), abs(b - SAF01_TARGET)) for b in bounds) > 1e-3


def test_build_writes_everything_inside_the_lake(built):
    root, _, tmp_path = built
    tables = {
        (r["table_schema"], r["table_name"]): r["table_type"]
        for r in _read(root, "select table_schema, table_name, table_type "
                             "from information_schema.tables where table_catalog = 'qala'")
    }
    for expected in [("reference", "regions"), ("reference", "kpi_catalogue"),
                     ("staging", "stg_safety__road_accidents"),
                     ("intermediate", "int_safety__road_accidents__region_month"),
                     ("marts", "kpi_values"), ("marts", "kpi_scorecard")]:
        assert expected in tables, expected
    assert not any(s == "main" for s, _ in tables)  # nothing fell back to the default schema
    assert tables[("staging", "stg_safety__road_accidents")] == "VIEW"
    types = {
        r["column_name"]: r["column_type"]
        for r in _read(root, "describe marts.kpi_values")
    }
    # numerator and denominator are counts or amounts (kWh, tenge), by KPI
    assert types["numerator"] == types["denominator"] == "DOUBLE"
    assert types["lake_snapshot_id"] == "BIGINT"
    assert types["batch_ids"] == "VARCHAR[]" and types["period_start"] == "DATE"
    assert types["window_start"] == "DATE"
    for column in ["actual_lower", "actual_upper", "baseline_lower", "baseline_upper", "change_lower",
                   "change_upper", "gap_to_target", "gap_lower", "gap_upper", "population_scale"]:
        assert types[column] == "DOUBLE", column
    run = json.loads((tmp_path / "dbt_target" / "run_results.json").read_text())
    kinds = {r["unique_id"].split(".")[0] for r in run["results"]}
    assert {"seed", "model", "test", "unit_test"} <= kinds
    not_ok = [
        (r["unique_id"], r["status"]) for r in run["results"]
        if r["status"] not in ("success", "pass")
        and not (r["unique_id"].startswith("exposure.") and r["status"] == "no-op")
    ]
    assert not_ok == []  # no failure, and no warning (every batch is in the ledger)


def test_catalogue_seed_has_all_kpis_in_three_languages(built):
    root, _, _ = built
    cat = {r["kpi_id"]: r for r in _read(root, "select * from reference.kpi_catalogue")}
    assert len(cat) == 19 and {"SAF-01", "ALA-02", "GOV-01", "HLT-04"} <= set(cat)
    assert cat["SAF-01"]["target"] == pytest.approx(-0.16)
    assert cat["SAF-01"]["target_is_illustrative"] is False
    assert cat["SAF-02"]["target"] is None
    for kpi in ("SAF-01", "SAF-02"):
        assert cat[kpi]["interval_method"] == "poisson" and cat[kpi]["rate_per"] == 100000
        assert cat[kpi]["window_months"] == 12 and cat[kpi]["grain"] == "rolling_12_months"
        assert cat[kpi]["population_feed"] == "safety/road_accidents"
    for r in cat.values():
        assert r["name_kk"] and r["name_ru"] and r["name_en"]
        assert r["interval_method"] in ("poisson", "wilson", "median", "ratio", "cluster", "exact")
        assert r["window_months"] in (1, 12)
        if r["target"] is None:
            assert r["target_is_illustrative"] is False and r["target_kind"] == "none"
        elif r["target_is_illustrative"]:
            assert r["source"] == "illustrative"
    kazakh_letters = set("әғқңөұүі")
    assert kazakh_letters <= set("".join(r["name_kk"] for r in cat.values()))
    regions = _read(root, "select typeof(kato_code) t, typeof(kato_prefix) p from reference.regions limit 1")
    assert regions == [{"t": "VARCHAR", "p": "VARCHAR"}]


def test_kpi_values_match_an_independent_computation(built):
    root, rows, _ = built
    expected = _expected(rows)
    got = {
        (r["kpi_id"], r["region_code"], r["period_start"]): r
        for r in _read(root, "select * from marts.kpi_values")
    }
    assert set(got) == set(expected)
    # the first row is the first whole 12 months
    assert min(k[2] for k in got) == date(2023, 12, 1)
    # one snapshot for the whole build, taken after silver was published, and time travel to
    # it gives back exactly the inserted rows
    snapshots = {r["lake_snapshot_id"] for r in got.values()}
    assert len(snapshots) == 1
    read_at = snapshots.pop()
    published_at = _read(root, "select max(snapshot_id) s from ops.load_ledger")[0]["s"]
    latest = _read(root, "select max(snapshot_id) s from qala.snapshots()")[0]["s"]
    assert published_at <= read_at <= latest
    travelled = _read(root, "select count(*) n from silver.safety__road_accidents "
                            f"at (version => {read_at})")
    assert travelled == [{"n": len(rows)}]

    columns = {  # kpi_values column: the independent computation's key
        "numerator": "numerator", "denominator": "denominator", "actual": "actual",
        "actual_lower": "actual_lower", "actual_upper": "actual_upper",
        "baseline": "baseline", "baseline_lower": "baseline_lower", "baseline_upper": "baseline_upper",
        "change_vs_baseline": "change", "change_lower": "change_lower", "change_upper": "change_upper",
        "target": "target", "gap_to_target": "gap", "gap_lower": "gap_lower", "gap_upper": "gap_upper",
    }
    for key, exp in expected.items():
        g = got[key]
        assert g["period_grain"] == "rolling_12_months", key
        assert g["window_months"] == WINDOW and g["window_start"] == exp["window_start"], key
        assert g["interval_method"] == "poisson" and float(g["confidence"]) == 0.95, key
        assert g["population_scale"] == 1.0, key  # no simulated world: scale 1
        assert g["suppressed"] is exp["suppressed"], key
        for column, name in columns.items():
            assert _close(g[column], exp[name]), (key, column, g[column], exp[name])
        assert g["status"] == exp["status"], (key, g["status"], exp["status"])
        assert g["batch_ids"] == exp["batch_ids"], key
        assert (g["suppression_reason"] is None) == (exp["reason"] is None), key
        if exp["reason"] == "small":
            assert g["suppression_reason"].startswith("small cell"), key
        elif exp["reason"] == "complementary":
            assert g["suppression_reason"].startswith("complementary"), key
        if g["actual"] is not None:
            assert g["actual_lower"] <= g["actual"] <= g["actual_upper"], key
        if g["change_vs_baseline"] is not None:
            assert g["change_lower"] < g["change_vs_baseline"] < g["change_upper"], key


def test_the_planted_cases(built):
    root, _, _ = built
    v = {
        (r["kpi_id"], r["region_code"], r["period_start"]): r
        for r in _read(root, "select * from marts.kpi_values")
    }
    dec24, jan24, oct24, jan25 = date(2024, 12, 1), date(2024, 1, 1), date(2024, 10, 1), date(2025, 1, 1)
    # no row before the first 12 whole months, and the first windows have no baseline
    assert ("SAF-01", ASTANA, date(2023, 11, 1)) not in v
    r = v[("SAF-01", ASTANA, date(2023, 12, 1))]
    assert r["window_start"] == date(2023, 1, 1) and r["numerator"] == 150
    assert r["status"] == "no-baseline" and r["change_lower"] is None and r["gap_to_target"] is None
    # Astana: exactly -16% in the 12 months, but 126 against 150 accidents is within the noise
    r = v[("SAF-01", ASTANA, dec24)]
    assert (r["numerator"], r["window_start"]) == (126, jan24)
    assert r["change_vs_baseline"] == pytest.approx(-0.16) and r["gap_to_target"] == pytest.approx(0, abs=1e-12)
    assert r["change_lower"] < SAF01_TARGET < 0 < r["change_upper"]
    assert r["status"] == "within-noise"
    # Almaty: -30%, the whole interval beyond the target
    r = v[("SAF-01", ALMATY, dec24)]
    assert r["numerator"] == 420 and r["change_vs_baseline"] == pytest.approx(-0.30)
    assert r["change_upper"] <= SAF01_TARGET and r["gap_upper"] <= 0 and r["status"] == "on-track"
    # Turkistan: +67%, the whole interval above 0
    r = v[("SAF-01", TURKISTAN, dec24)]
    assert r["numerator"] == 250 and r["change_lower"] > 0 and r["status"] == "off-track"
    # Shymkent: -9%, the whole interval below 0 but short of the target
    r = v[("SAF-01", SHYMKENT, dec24)]
    assert r["numerator"] == 1365 and SAF01_TARGET < r["change_lower"] < r["change_upper"] < 0
    assert r["gap_lower"] > 0 and r["status"] == "at-risk"
    # road deaths: Almaty 130 -> 80 fewer beyond noise, Turkistan 20 -> 45 more
    assert v[("SAF-02", ALMATY, dec24)]["status"] == "on-track"
    assert v[("SAF-02", TURKISTAN, dec24)]["status"] == "off-track"
    assert v[("SAF-02", ALMATY, dec24)]["gap_to_target"] is None  # no target
    # a window without accidents is a published 0, not a gap, with an interval above 0
    r = v[("SAF-01", ULYTAU, date(2023, 12, 1))]
    assert r["numerator"] == 0 and r["actual"] == 0 and r["suppressed"] is False
    assert r["batch_ids"] == [] and r["actual_lower"] == 0 < r["actual_upper"]
    # a small cell (Ulytau, 2 in 12 months) is suppressed, with its intervals
    r = v[("SAF-01", ULYTAU, jan24)]
    assert r["suppressed"] and r["numerator"] is None and r["actual"] is None
    assert r["suppression_reason"].startswith("small cell")
    assert r["actual_lower"] is None and r["actual_upper"] is None and r["status"] is None
    # Ulytau is the only small region in the window to 2024-01: the smallest other non-zero
    # region (Karaganda) is hidden too, or it could be derived from the country total ...
    r = v[("SAF-01", KARAGANDA, jan24)]
    assert r["suppressed"] and r["suppression_reason"].startswith("complementary")
    assert r["actual"] is None and r["numerator"] is None and r["actual_upper"] is None
    # ... and its batches are the window's batches for the whole country
    assert r["batch_ids"] == v[("SAF-01", "KZ", jan24)]["batch_ids"]
    # in the windows to 2024-09 .. 2024-12 Ulytau and Mangystau are both small: no complementary
    # suppression, Karaganda is published
    oct_ = {k[1]: r for k, r in v.items() if k[0] == "SAF-01" and k[2] == oct24}
    assert oct_[ULYTAU]["suppressed"] and oct_[MANGYSTAU]["suppressed"]
    assert oct_[KARAGANDA]["suppressed"] is False and oct_[KARAGANDA]["numerator"] == sum(COUNTS["35"][10:22])
    # from 2025-01 Mangystau is the only small one: Ulytau (11) is the smallest other, hidden;
    # Karaganda is published, but its baseline (the window to 2024-01) was hidden: no baseline
    jan = {k[1]: r for k, r in v.items() if k[0] == "SAF-01" and k[2] == jan25}
    assert jan[MANGYSTAU]["suppression_reason"].startswith("small cell")
    assert jan[ULYTAU]["suppression_reason"].startswith("complementary")
    assert jan[KARAGANDA]["suppressed"] is False and jan[KARAGANDA]["baseline"] is None
    assert jan[KARAGANDA]["status"] == "no-baseline" and jan[KARAGANDA]["change_upper"] is None
    # a region untouched by the data is zero everywhere: a baseline of 0 gives no verdict
    r = v[("SAF-01", "100000000", dec24)]
    assert r["numerator"] == 0 and r["baseline"] == 0 and r["status"] == "no-baseline"
    # zero is not suppressed; the country row counts every death of its 12 months
    kz = v[("SAF-02", "KZ", date(2025, 3, 1))]
    assert kz["suppressed"] is False and kz["numerator"] == sum(sum(d[-12:]) for d in DEATHS.values())
    assert kz["denominator"] == sum(int(r["population"]) for r in _regions().values())


def test_scorecard_has_the_latest_window_per_kpi_and_region(built):
    root, _, _ = built
    card = _read(root, "select * from marts.kpi_scorecard")
    latest = _read(root, "select kpi_id, max(period_start) p from marts.kpi_values group by 1")
    assert {r["kpi_id"] for r in latest} == {"SAF-01", "SAF-02"}
    regions = len(_regions()) + 1  # and the country
    assert len(card) == 2 * regions
    assert len({(r["kpi_id"], r["region_code"]) for r in card}) == len(card)
    last = {r["kpi_id"]: r["p"] for r in latest}
    assert all(r["period_start"] == last[r["kpi_id"]] == date(2025, 3, 1) for r in card)
    assert all(r["window_start"] == date(2024, 4, 1) and r["window_months"] == 12
               and r["period_grain"] == "rolling_12_months" and r["interval_method"] == "poisson"
               and float(r["confidence"]) == 0.95 for r in card)
    # the scorecard's rows are kpi_values' rows of the latest window
    values = {(r["kpi_id"], r["region_code"]): r
              for r in _read(root, "select * from marts.kpi_values where period_start = date '2025-03-01'")}
    for r in card:
        v = values[(r["kpi_id"], r["region_code"])]
        for column in ["numerator", "actual", "actual_lower", "actual_upper", "baseline", "change_vs_baseline",
                       "change_lower", "change_upper", "gap_to_target", "status", "suppressed", "batch_ids"]:
            assert r[column] == v[column], (r["kpi_id"], r["region_code"], column)
    kz = next(r for r in card if r["kpi_id"] == "SAF-01" and r["region_code"] == "KZ")
    assert kz["name_kk"].startswith("Жол-көлік") and kz["region_name_kk"] == "Қазақстан Республикасы"
    assert kz["unit"] == "accidents per 100,000 population in 12 months" and kz["target"] == pytest.approx(-0.16)
    assert kz["direction"] == "lower_is_better" and kz["numerator"] == sum(sum(c[-12:]) for c in COUNTS.values())


def test_dbt_parse_needs_no_warehouse(tmp_path):
    result = _dbt(["parse"], tmp_path, None)
    assert result.returncode == 0, result.stdout[-4000:]
    manifest = json.loads((tmp_path / "dbt_target" / "manifest.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert models["kpi_values"]["schema"] == "marts" and models["kpi_values"]["database"] == "qala"
    assert "exposure.qala.minister_scorecard" in manifest["exposures"]


def _population(prefix: str) -> int:
    return int(_regions()[prefix]["population"])


def _in_window(row: tuple, prefix: str, end: date) -> bool:
    month = date(row[1].year, row[1].month, 1)
    return row[2][:2] == prefix and _month(end, -(WINDOW - 1)) <= month <= end


def test_lineage_query_lists_the_batches_and_files_behind_a_number(built):
    root, rows, _ = built
    end, prefix = date(2025, 1, 1), "71"  # Astana, the 12 months to January 2025
    files = run_doc_query(root, "kpi_lineage.sql", {
        "kpi_id": "'SAF-01'", "region_code": "'710000000'", "period_start": "DATE '2025-01-01'"})
    behind = [r for r in rows if _in_window(r, prefix, end)]
    assert len(behind) == sum(COUNTS[prefix][13:25])
    assert {f["batch_id"] for f in files} == {r[10] for r in behind}
    assert {f["source_file"] for f in files} == {r[12] for r in behind}
    assert all(f["actual"] == pytest.approx(len(behind) * 100000 / _population(prefix)) for f in files)


def test_time_travel_reproduces_a_number_after_later_loads(built):
    """A late record changes silver; the number's snapshot still gives its inputs exactly."""
    root, rows, _ = built
    variables = {"kpi_id": "'SAF-01'", "region_code": "'750000000'", "period_start": "DATE '2025-02-01'"}
    (value,) = _read(root, "select numerator, lake_snapshot_id from marts.kpi_values where kpi_id = 'SAF-01' "
                           "and region_code = '750000000' and period_start = date '2025-02-01'")
    before = run_doc_query(root, "kpi_time_travel.sql", variables)
    # the window 2024-03 .. 2025-02
    assert sum(r["accidents"] for r in before) == value["numerator"] == sum(COUNTS["75"][14:26])
    assert value["numerator"] == sum(1 for r in rows if _in_window(r, "75", date(2025, 2, 1)))
    con = lake.connect(root)
    try:  # a late accident of February 2025 in Almaty, loaded after the build
        con.execute(f"insert into silver.safety__road_accidents ({SILVER_COLUMNS}) values "
                    "('RA-LATE', timestamp '2025-02-10 10:00', '750000001', 'injury', 1, 0, 2, 'x', 43.2, 76.9, "
                    "'safety__road_accidents:2025-03-31', date '2025-03-31', 'landing/late.csv', 2)")
        now = con.execute("select count(*) from silver.safety__road_accidents where left(kato_code, 2) = '75' "
                          "and date_trunc('month', occurred_at) between date '2024-03-01' and date '2025-02-01'"
                          ).fetchone()[0]
    finally:
        con.close()
    assert now == value["numerator"] + 1
    after = run_doc_query(root, "kpi_time_travel.sql", variables)
    assert after == before


def test_the_scorecard_as_of_a_past_moment_is_the_scorecard_of_then(built):
    """docs/queries/kpi_scorecard_as_of.sql: after a late record and a rebuild, the scorecard
    of the moment before them is still there, exactly."""
    root, _, tmp_path = built
    then = _read(root, "select kpi_id, region_code, region_name_en as region, period_start as month, actual, "
                       "change_vs_baseline, status, lake_snapshot_id "
                       "from marts.kpi_scorecard order by kpi_id, region_code")
    moment = datetime.now(timezone.utc)
    con = lake.connect(root)
    try:  # a late accident of the scorecard's last month (March 2025) in Almaty
        con.execute(f"insert into silver.safety__road_accidents ({SILVER_COLUMNS}) values "
                    "('RA-LATE-2', timestamp '2025-03-12 10:00', '750000001', 'injury', 1, 0, 2, 'x', 43.2, 76.9, "
                    "'safety__road_accidents:2025-04-02', date '2025-04-02', 'landing/late2.csv', 2)")
    finally:
        con.close()
    rebuilt = _dbt(["run", "--select", "+kpi_scorecard"], tmp_path, root)  # the row has no ledger batch: no tests
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    now = {(r["kpi_id"], r["region_code"]): r for r in _read(root, "select * from marts.kpi_scorecard")}
    old = {(r["kpi_id"], r["region_code"]): r for r in then}
    assert now[("SAF-01", ALMATY)]["period_start"] == date(2025, 3, 1)
    assert now[("SAF-01", ALMATY)]["actual"] > old[("SAF-01", ALMATY)]["actual"]
    as_of = run_doc_query(root, "kpi_scorecard_as_of.sql", {"as_of": f"TIMESTAMPTZ '{moment.isoformat()}'"})
    assert as_of == then


def test_make_docs_builds_the_docs_site(built):
    root, _, _ = built
    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBT_")}
    done = subprocess.run(["make", "docs", f"QALA_WAREHOUSE={root}"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    site = root / "reports" / "dbt_docs" / "static_index.html"
    html = site.read_text(encoding="utf-8")
    # the models, their documented columns and the catalogue of the built lake are in the one file
    for text in ["model.qala.kpi_values", "model.qala.stg_safety__road_accidents",
                 "exposure.qala.minister_scorecard", "source.qala.silver.health__fhir_bulk__appointment",
                 "disclosure_count", "The long KPI table"]:
        assert text in html, text
