"""The dbt project on a temporary lake: real `dbt build` against DuckLake, KPIs checked by hand.

Hand-made accidents go into qala.silver.safety__road_accidents of a fresh warehouse; `dbt build`
(seeds, models, data tests, unit tests) runs as a subprocess exactly as the DAG runs it; then
marts.kpi_values and marts.kpi_scorecard are read back through `lake.connect` and compared with
an independent computation in plain Python from the inserted rows.
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

import pytest

from tests.conftest import run_doc_query
from transforms import lake, settings

DBT = Path(sys.executable).parent / "dbt"
PROJECT = settings.DBT_PROJECT_DIR
MIN_CELL = 10
SAF01_TARGET = -0.16

# Accidents per region (KATO prefix) and month, 2023-01 .. 2024-03 (15 months). Chosen so that:
# Astana falls exactly 16% in 2024-01 (the target's boundary); Karaganda has a month without
# accidents (2023-06); Ulytau is a small cell (1-9) every month but 2023-07 (0), so it is usually
# the only small region and complementary suppression must hide the smallest other one;
# in 2024-02 Turkistan is small too (two small regions: no complementary suppression).
MONTHS = [date(2023 + (m - 1) // 12, (m - 1) % 12 + 1, 1) for m in range(1, 16)]
COUNTS = {
    "71": [25, 12, 11, 13, 12, 14, 13, 12, 11, 12, 13, 14, 21, 11, 12],  # Astana
    "75": [15, 14, 16, 15, 17, 18, 16, 15, 14, 16, 15, 18, 17, 13, 16],  # Almaty
    "35": [12, 11, 10, 12, 13, 0, 11, 12, 10, 14, 12, 11, 10, 12, 11],  # Karaganda
    "62": [3, 2, 1, 4, 5, 2, 0, 3, 2, 1, 9, 2, 4, 2, 3],  # Ulytau
    "61": [14, 15, 16, 13, 12, 11, 15, 16, 14, 13, 15, 12, 16, 5, 14],  # Turkistan
}
# people killed per region and month (sum over its accidents); Almaty is the only region with
# deaths at or above the publication threshold in some months
DEATHS = {
    "71": [2, 1, 0, 3, 1, 0, 2, 1, 0, 1, 2, 1, 1, 0, 2],
    "75": [11, 9, 12, 10, 8, 13, 10, 9, 11, 12, 10, 14, 9, 12, 10],
    "35": [0, 1, 0, 0, 2, 0, 1, 0, 0, 1, 0, 0, 0, 1, 0],
    "62": [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    "61": [3, 2, 1, 0, 2, 1, 3, 2, 1, 0, 2, 1, 2, 1, 1],
}


def _last_day(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1) - timedelta(days=1)


def _accident_rows() -> list[tuple]:
    rng = random.Random(20240401)
    rows = []
    n = 0
    for prefix, counts in COUNTS.items():
        for month, count, deaths in zip(MONTHS, counts, DEATHS[prefix]):
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


def _expected(rows: list[tuple]) -> dict[tuple, dict]:
    """SAF-01 / SAF-02 per (kpi, region_code, month), computed without SQL."""
    regions = _regions()
    first, last = min(r[1] for r in rows), max(r[1] for r in rows)
    months = []
    m = date(first.year, first.month, 1)
    while m <= date(last.year, last.month, 1):
        months.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)

    counts = {"SAF-01": defaultdict(int), "SAF-02": defaultdict(int)}
    batches = defaultdict(set)
    for r in rows:
        key = (r[2][:2], date(r[1].year, r[1].month, 1))
        counts["SAF-01"][key] += 1
        counts["SAF-02"][key] += r[5]
        batches[key].add(r[10])
        batches[("KZ", key[1])].add(r[10])

    population = {p: int(reg["population"]) for p, reg in regions.items()}
    code = {p: reg["kato_code"] for p, reg in regions.items()}
    kz_population = sum(population.values())

    out = {}
    for kpi, cnt in counts.items():
        for month in months:
            cells = {}
            for p in regions:
                cells[code[p]] = (cnt[(p, month)], population[p], sorted(batches[(p, month)]))
            kz = sum(cnt[(p, month)] for p in regions)
            cells["KZ"] = (kz, kz_population, sorted(batches[("KZ", month)]))
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
                out[(kpi, c, month)] = {
                    "numerator": None if suppressed else n,
                    "denominator": pop,
                    "actual": None if suppressed else n * 100000 / pop,
                    "suppressed": suppressed,
                    "reason": reasons.get(c),
                    "batch_ids": sorted(batches[("KZ", month)]) if suppressed else b,
                }
    for (kpi, c, month), row in out.items():
        prev = out.get((kpi, c, date(month.year - 1, month.month, 1)))
        row["baseline"] = prev["actual"] if prev else None
        row["change"] = (
            row["actual"] / row["baseline"] - 1
            if row["actual"] is not None and row["baseline"] else None
        )
        row["status"] = _status(kpi, row)
    return out


def _status(kpi: str, row: dict) -> str | None:
    if row["suppressed"]:
        return None
    actual, baseline, change = row["actual"], row["baseline"], row["change"]
    if kpi == "SAF-01":  # target: change vs same month a year earlier <= -16%
        if not baseline:
            return "no-baseline"
        if round(change, 9) <= SAF01_TARGET:
            return "on-track"
        return "at-risk" if round(change, 9) < 0 else "off-track"
    # SAF-02: no target, lower is better than the baseline
    if baseline is None:
        return "no-baseline"
    if round(actual, 9) < round(baseline, 9) or (actual == 0 and baseline == 0):
        return "on-track"
    return "at-risk" if round(actual, 9) == round(baseline, 9) else "off-track"


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


def test_test_data_covers_the_cases():
    rows = _accident_rows()
    assert 300 <= len(rows) <= 1000
    assert len({r[2][:2] for r in rows}) >= 5
    assert len({(r[1].year, r[1].month) for r in rows}) >= 14


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
    for r in cat.values():
        assert r["name_kk"] and r["name_ru"] and r["name_en"]
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

    def close(a, b):
        return (a is None and b is None) or (
            a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        )

    for key, exp in expected.items():
        g = got[key]
        assert g["period_grain"] == "month"
        assert g["suppressed"] is exp["suppressed"], key
        assert g["numerator"] == exp["numerator"], key
        assert g["denominator"] == exp["denominator"], key
        assert close(g["actual"], exp["actual"]), (key, g["actual"], exp["actual"])
        assert close(g["baseline"], exp["baseline"]), (key, g["baseline"], exp["baseline"])
        assert close(g["change_vs_baseline"], exp["change"]), key
        assert g["status"] == exp["status"], (key, g["status"], exp["status"])
        assert g["batch_ids"] == exp["batch_ids"], key
        assert (g["suppression_reason"] is None) == (exp["reason"] is None), key
        if exp["reason"] == "small":
            assert g["suppression_reason"].startswith("small cell"), key
        elif exp["reason"] == "complementary":
            assert g["suppression_reason"].startswith("complementary"), key
        assert close(g["target"], SAF01_TARGET if key[0] == "SAF-01" else None), key


def test_the_planted_cases(built):
    root, _, _ = built
    v = {
        (r["kpi_id"], r["region_code"], r["period_start"]): r
        for r in _read(root, "select * from marts.kpi_values")
    }
    astana, ulytau, karaganda, turkistan = "710000000", "620000000", "350000000", "610000000"
    # exactly -16% is on track
    r = v[("SAF-01", astana, date(2024, 1, 1))]
    assert r["change_vs_baseline"] == pytest.approx(-0.16) and r["status"] == "on-track"
    # the first year has no baseline
    assert v[("SAF-01", astana, date(2023, 5, 1))]["status"] == "no-baseline"
    # a month without accidents is a published 0, not a gap
    r = v[("SAF-01", karaganda, date(2023, 6, 1))]
    assert r["numerator"] == 0 and r["actual"] == 0 and r["suppressed"] is False
    assert r["batch_ids"] == []
    # a small cell is suppressed, and so is the baseline it would give a year later
    r = v[("SAF-01", ulytau, date(2023, 4, 1))]
    assert r["suppressed"] and r["numerator"] is None and r["actual"] is None
    assert r["status"] is None
    # a region untouched by the data is zero everywhere
    assert v[("SAF-01", "100000000", date(2023, 1, 1))]["numerator"] == 0
    # Ulytau is the only small region in 2023-01: the smallest other non-zero region
    # (Karaganda, 12) is hidden too, or it could be derived from the country total
    r = v[("SAF-01", karaganda, date(2023, 1, 1))]
    assert r["suppressed"] and r["suppression_reason"].startswith("complementary")
    assert r["actual"] is None and r["numerator"] is None
    # ... and its batches are the month's batches for the whole country
    assert r["batch_ids"] == v[("SAF-01", "KZ", date(2023, 1, 1))]["batch_ids"]
    # in 2023-06 Karaganda has 0 (published), so Turkistan (11) is the one hidden
    assert v[("SAF-01", turkistan, date(2023, 6, 1))]["suppressed"]
    # in 2024-02 Ulytau and Turkistan are both small: no complementary suppression,
    # but Karaganda's baseline (2023-02) was suppressed, so it has none
    feb = {k[1]: r for k, r in v.items() if k[0] == "SAF-01" and k[2] == date(2024, 2, 1)}
    assert feb[turkistan]["suppressed"] and feb[ulytau]["suppressed"]
    assert feb[karaganda]["suppressed"] is False and feb[karaganda]["numerator"] == 12
    assert feb[karaganda]["baseline"] is None and feb[karaganda]["status"] == "no-baseline"
    # zero is not suppressed; the country row carries every batch of the month
    kz = v[("SAF-02", "KZ", date(2024, 3, 1))]
    assert kz["suppressed"] is False and kz["numerator"] == sum(d[-1] for d in DEATHS.values())


def test_scorecard_has_the_latest_month_per_kpi_and_region(built):
    root, _, _ = built
    card = _read(root, "select * from marts.kpi_scorecard")
    latest = _read(root, "select kpi_id, max(period_start) p from marts.kpi_values group by 1")
    assert {r["kpi_id"] for r in latest} == {"SAF-01", "SAF-02"}
    regions = len(_regions()) + 1  # and the country
    assert len(card) == 2 * regions
    assert len({(r["kpi_id"], r["region_code"]) for r in card}) == len(card)
    last = {r["kpi_id"]: r["p"] for r in latest}
    assert all(r["period_start"] == last[r["kpi_id"]] == date(2024, 3, 1) for r in card)
    kz = next(r for r in card if r["kpi_id"] == "SAF-01" and r["region_code"] == "KZ")
    assert kz["name_kk"].startswith("Жол-көлік") and kz["region_name_kk"] == "Қазақстан Республикасы"
    assert kz["unit"] == "accidents per 100,000 population" and kz["target"] == pytest.approx(-0.16)
    assert kz["direction"] == "lower_is_better"


def test_dbt_parse_needs_no_warehouse(tmp_path):
    result = _dbt(["parse"], tmp_path, None)
    assert result.returncode == 0, result.stdout[-4000:]
    manifest = json.loads((tmp_path / "dbt_target" / "manifest.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert models["kpi_values"]["schema"] == "marts" and models["kpi_values"]["database"] == "qala"
    assert "exposure.qala.minister_scorecard" in manifest["exposures"]


def _population(prefix: str) -> int:
    return int(_regions()[prefix]["population"])


def test_lineage_query_lists_the_batches_and_files_behind_a_number(built):
    root, rows, _ = built
    month, prefix = date(2024, 1, 1), "71"  # Astana, January 2024
    files = run_doc_query(root, "kpi_lineage.sql", {
        "kpi_id": "'SAF-01'", "region_code": "'710000000'", "period_start": "DATE '2024-01-01'"})
    behind = [r for r in rows if r[2][:2] == prefix and date(r[1].year, r[1].month, 1) == month]
    assert {f["batch_id"] for f in files} == {r[10] for r in behind}
    assert {f["source_file"] for f in files} == {r[12] for r in behind}
    assert all(f["actual"] == pytest.approx(len(behind) * 100000 / _population(prefix)) for f in files)


def test_time_travel_reproduces_a_number_after_later_loads(built):
    """A late record changes silver; the number's snapshot still gives its inputs exactly."""
    root, rows, _ = built
    variables = {"kpi_id": "'SAF-01'", "region_code": "'750000000'", "period_start": "DATE '2024-02-01'"}
    (value,) = _read(root, "select numerator, lake_snapshot_id from marts.kpi_values where kpi_id = 'SAF-01' "
                           "and region_code = '750000000' and period_start = date '2024-02-01'")
    before = run_doc_query(root, "kpi_time_travel.sql", variables)
    assert sum(r["accidents"] for r in before) == value["numerator"] == COUNTS["75"][13]
    con = lake.connect(root)
    try:  # a late accident of February 2024 in Almaty, loaded after the build
        con.execute(f"insert into silver.safety__road_accidents ({SILVER_COLUMNS}) values "
                    "('RA-LATE', timestamp '2024-02-10 10:00', '750000001', 'injury', 1, 0, 2, 'x', 43.2, 76.9, "
                    "'safety__road_accidents:2024-03-31', date '2024-03-31', 'landing/late.csv', 2)")
        now = con.execute("select count(*) from silver.safety__road_accidents where left(kato_code, 2) = '75' "
                          "and date_trunc('month', occurred_at) = date '2024-02-01'").fetchone()[0]
    finally:
        con.close()
    assert now == value["numerator"] + 1
    after = run_doc_query(root, "kpi_time_travel.sql", variables)
    assert after == before


def test_the_scorecard_as_of_a_past_moment_is_the_scorecard_of_then(built):
    """docs/queries/kpi_scorecard_as_of.sql: after a late record and a rebuild, the scorecard
    of the moment before them is still there, exactly."""
    root, _, tmp_path = built
    then = _read(root, "select kpi_id, region_code, period_start as month, actual, status, lake_snapshot_id "
                       "from marts.kpi_scorecard order by kpi_id, region_code")
    moment = datetime.now(timezone.utc)
    con = lake.connect(root)
    try:  # a late accident of the scorecard's month (March 2024) in Almaty
        con.execute(f"insert into silver.safety__road_accidents ({SILVER_COLUMNS}) values "
                    "('RA-LATE-2', timestamp '2024-03-12 10:00', '750000001', 'injury', 1, 0, 2, 'x', 43.2, 76.9, "
                    "'safety__road_accidents:2024-04-02', date '2024-04-02', 'landing/late2.csv', 2)")
    finally:
        con.close()
    rebuilt = _dbt(["run", "--select", "+kpi_scorecard"], tmp_path, root)  # the row has no ledger batch: no tests
    assert rebuilt.returncode == 0, rebuilt.stdout[-4000:]
    now = {(r["kpi_id"], r["region_code"]): r for r in _read(root, "select * from marts.kpi_scorecard")}
    old = {(r["kpi_id"], r["region_code"]): r for r in then}
    assert now[("SAF-01", "750000000")]["actual"] > old[("SAF-01", "750000000")]["actual"]
    as_of = run_doc_query(root, "kpi_scorecard_as_of.sql", {"as_of": f"TIMESTAMPTZ '{moment.isoformat()}'"})
    assert [(r["kpi_id"], r["region_code"], r["month"], r["actual"], r["status"], r["lake_snapshot_id"])
            for r in as_of] == [tuple(r.values()) for r in then]


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
