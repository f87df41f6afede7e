"""Education (EDU-01..03) and health (HLT-01..04) KPIs of the KPI world, recomputed from the
landed files.

Every expected value here is computed straight from the landing zone (the registers' CSV files
and the FHIR Bulk Data exports: manifest.json + NDJSON, parsed with the standard library), the
reference seeds (population, KATO codes) and the simulator's ground truth (the world's scale of a
feed): never from the lake. Then marts.kpi_values must hold exactly the same (place, month) rows
with the same numerator, denominator and actual (unsuppressed rows), a small count or a
complementary suppression (suppressed rows), baselines of the same place a year earlier and the
status the evidence rule gives (test_kpi_intervals.py recomputes the 95% intervals themselves).
Last, the simulator's planted effects must come out of kpi_values within tolerances derived from
the sample sizes.

Definitions recomputed (see dbt_project/models/intermediate/int_kpi__education.sql / __health.sql):
- complete months: the months the loaded landing days (every landing folder of the feed, also the
  days whose files hold a header alone) cover from their first to their last day;
- EDU-01: each application_id once (it reappears with every status), in the local month of its
  submitted_at and the region of its kato_code: egov / all; only (place, month) with applications;
- EDU-02: per child (child_iin) without priority (priority_category none) referred in the month (its first referral of the month): calendar
  days from its latest registered event at or before the referral; median (mean of the two middle
  values, as DuckDB's quantile_cont(x, 0.5)) per region of the referral and for all children;
- EDU-03: children with a registered event by the month's last day (each once, region of its
  first registration); of them, those with an enrolled event by that day: enrolled / registered;
- HLT-01..03: each Appointment in its latest version (highest meta.versionId), in the region of its
  Patient (address KATO extension; appointments of a patient never exported are left out):
  HLT-01 channel online / all by the local date of `created`; HLT-02 median of start date -
  created date (local dates as written) over fulfilled appointments by start month; HLT-03
  noshow / (fulfilled + noshow) by start month;
- HLT-04: completed Immunizations (latest version) by the local date of occurrenceDateTime, region
  of the Patient, x 1,000 / (population x the world's scale of the FHIR feed, ground_truth.json
  run.scale); every region every complete month, zero-filled.
- disclosure of a share: the smaller part, or the denominator when one part is 0.

Each expected row is a dict: numerator, denominator, actual, disclosure, and for a median
`values`, the sorted observations (test_kpi_intervals.py takes its interval from them).
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import statistics
from collections import defaultdict
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import pytest
from test_kpi_intervals import evidence_status

from transforms import settings

SEEDS = settings.DBT_PROJECT_DIR / "seeds"
MIN_CELL = 10


def _seed(name: str) -> list[dict]:
    with open(SEEDS / f"{name}.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


REGIONS = _seed("regions")
CATALOGUE = {r["kpi_id"]: r for r in _seed("kpi_catalogue")}
CODE_OF_PREFIX = {r["kato_prefix"]: r["kato_code"] for r in REGIONS}
POPULATION = {r["kato_code"]: int(r["population"]) for r in REGIONS}
POPULATION["KZ"] = sum(int(r["population"]) for r in REGIONS)


def _month(day: date) -> date:
    return day.replace(day=1)


def _last_day(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def _complete_months(days: list[date]) -> list[date]:
    first, last = min(days), max(days)
    start = _month(first) if first.day == 1 else _month(_month(first) + timedelta(days=32))
    end = _month(last) if last == _last_day(last) else _month(_month(last) - timedelta(days=1))
    months, m = [], start
    while m <= end:
        months.append(m)
        m = _month(m + timedelta(days=32))
    return months


def _landing_days(world, feed: str) -> list[date]:
    return sorted({date.fromisoformat(p.parent.name) for p in world.files(feed)})


def _csv_rows(path: Path) -> list[dict]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # the contract's other encoding (the older regional registers)
        text = data.decode("windows-1251")
    return list(csv.DictReader(io.StringIO(text)))


def _share(num: int, den: int) -> dict:
    disclosure = min(num, den - num) if 0 < num < den else den
    return {"numerator": num, "denominator": den, "actual": num / den, "disclosure": disclosure}


def _median(values: list[float], n: int) -> dict:
    return {"numerator": None, "denominator": n, "actual": statistics.median(values), "disclosure": n,
            "values": sorted(values)}


def feed_scale(world, feed: str) -> float:
    """The world's scale of a feed (ground_truth.json: run.scale): a per-capita KPI's population
    is the register's times it."""
    return float(world.ground_truth()[feed]["run"]["scale"])


# --- the landing zone ------------------------------------------------------------------------


@cache
def read_applications(world) -> dict:
    """application_id -> (region_code, month, channel): each application once."""
    apps = {}
    for path in world_files(world, "education/school_applications"):
        for row in _csv_rows(path):
            if row["application_id"] in apps:
                continue
            submitted = date.fromisoformat(row["submitted_at"][:10])
            apps[row["application_id"]] = (CODE_OF_PREFIX[row["kato_code"][:2]], _month(submitted),
                                           row["channel"])
    return apps


def world_files(world, feed: str) -> list[Path]:
    return [p for p in world.files(feed) if p.is_file()]


@cache
def read_queue_events(world) -> list[dict]:
    events = []
    for path in world_files(world, "education/kindergarten_queue"):
        for row in _csv_rows(path):
            events.append({"child": row["child_iin"], "type": row["event_type"], "at": row["event_at"],
                           "day": date.fromisoformat(row["event_at"][:10]),
                           "region": CODE_OF_PREFIX[row["kato_code"][:2]],
                           "priority": row["priority_category"], "id": row["event_id"]})
    return events


def _fhir_resources(world, types: set[str]):
    """(landing day, resource) of the listed types, read through each export's manifest."""
    for manifest in world.files("health/fhir_bulk", "manifest.json"):
        day = date.fromisoformat(manifest.parent.name)
        body = json.loads(manifest.read_text(encoding="utf-8"))
        for output in body["output"]:
            if output["type"] not in types:
                continue
            path = manifest.parent / output["url"].rsplit("/", 1)[1]
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield day, json.loads(line)


@cache
def read_fhir(world) -> dict:
    patients: dict[str, tuple] = {}  # id -> (lastUpdated, landing day, region_code)
    appointments: dict[str, tuple] = {}  # id -> (version, lastUpdated, day, resource)
    immunizations: dict[str, tuple] = {}
    for day, res in _fhir_resources(world, {"Patient", "Appointment", "Immunization"}):
        kind, rid, meta = res["resourceType"], res["id"], res.get("meta", {})
        if kind == "Patient":
            kato = next(e["valueString"] for a in res.get("address", []) for e in a.get("extension", [])
                        if e["url"].endswith("/address-kato"))
            key = (meta.get("lastUpdated", ""), day)
            if rid not in patients or key >= patients[rid][:2]:
                patients[rid] = (*key, CODE_OF_PREFIX[kato[:2]])
        elif kind == "Appointment":
            key = (int(meta.get("versionId", 0)), meta.get("lastUpdated", ""), day)
            if rid not in appointments or key >= appointments[rid][:3]:
                appointments[rid] = (*key, res)
        else:
            key = (meta.get("lastUpdated", ""), day)
            if rid not in immunizations or key >= immunizations[rid][:2]:
                immunizations[rid] = (*key, res)
    region = {pid: p[2] for pid, p in patients.items()}
    appts = []
    for *_, res in appointments.values():
        pid = next(p["actor"]["reference"].split("/", 1)[1] for p in res["participant"]
                   if p["actor"].get("reference", "").startswith("Patient/"))
        if pid not in region:
            continue  # booked before the first loaded export: no region
        channel = next(e["valueCoding"]["code"] for e in res.get("extension", [])
                       if e["url"].endswith("/booking-channel"))
        created, start = date.fromisoformat(res["created"][:10]), date.fromisoformat(res["start"][:10])
        appts.append({"region": region[pid], "status": res["status"], "channel": channel,
                      "created": created, "start": start})
    imms = []
    for *_, res in immunizations.values():
        pid = res["patient"]["reference"].split("/", 1)[1]
        if res["status"] == "completed" and pid in region:
            imms.append({"region": region[pid], "month": _month(date.fromisoformat(res["occurrenceDateTime"][:10]))})
    return {"appointments": appts, "immunizations": imms,
            "months": _complete_months(_landing_days(world, "health/fhir_bulk")),
            "scale": feed_scale(world, "health/fhir_bulk")}


# --- expected values -------------------------------------------------------------------------


@cache
def expected_edu01(world) -> dict:
    apps = read_applications(world)
    months = set(_complete_months(_landing_days(world, "education/school_applications")))
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for region, month, channel in apps.values():
        if month in months:
            for place in (region, "KZ"):
                counts[place, month][0] += channel == "egov"
                counts[place, month][1] += 1
    return {key: _share(n, d) for key, (n, d) in counts.items()}


@cache
def expected_edu02_03(world) -> tuple[dict, dict]:
    events = read_queue_events(world)
    months = _complete_months(_landing_days(world, "education/kindergarten_queue"))
    registrations = defaultdict(list)
    for e in events:
        if e["type"] == "registered":
            registrations[e["child"]].append(e)
    # EDU-02: each child's first referral of the month, from its latest registration before it
    first_referral: dict[tuple, dict] = {}
    for e in events:
        if e["type"] == "referred" and e["priority"] == "none" and _month(e["day"]) in months:
            key = (e["child"], _month(e["day"]))
            if key not in first_referral or (e["at"], e["id"]) < (first_referral[key]["at"], first_referral[key]["id"]):
                first_referral[key] = e
    waits = defaultdict(list)
    for (child, month), ref in first_referral.items():
        before = [r for r in registrations.get(child, []) if r["at"] <= ref["at"]]
        if not before:
            continue
        reg = max(before, key=lambda r: (r["at"], r["id"]))
        for place in (ref["region"], "KZ"):
            waits[place, month].append((ref["day"] - reg["day"]).days)
    edu02 = {key: _median(v, len(v)) for key, v in waits.items()}
    # EDU-03: cumulative registered children and, of them, the enrolled
    first_reg = {c: min(rs, key=lambda r: (r["at"], r["id"])) for c, rs in registrations.items()}
    enrolled: dict[str, date] = {}
    for e in events:
        if e["type"] == "enrolled" and (e["child"] not in enrolled or e["day"] < enrolled[e["child"]]):
            enrolled[e["child"]] = e["day"]
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for child, reg in first_reg.items():
        for month in months:
            end = _last_day(month)
            if reg["day"] <= end:
                placed = child in enrolled and enrolled[child] <= end
                for place in (reg["region"], "KZ"):
                    counts[place, month][0] += placed
                    counts[place, month][1] += 1
    edu03 = {key: _share(n, d) for key, (n, d) in counts.items()}
    return edu02, edu03


@cache
def expected_health(world) -> dict[str, dict]:
    data = read_fhir(world)
    months = set(data["months"])
    booked = defaultdict(lambda: [0, 0])
    due = defaultdict(lambda: [0, 0])
    leads = defaultdict(list)
    for a in data["appointments"]:
        for place in (a["region"], "KZ"):
            if _month(a["created"]) in months:
                booked[place, _month(a["created"])][0] += a["channel"] == "online"
                booked[place, _month(a["created"])][1] += 1
            if _month(a["start"]) in months and a["status"] in ("fulfilled", "noshow"):
                due[place, _month(a["start"])][0] += a["status"] == "noshow"
                due[place, _month(a["start"])][1] += 1
                if a["status"] == "fulfilled":
                    leads[place, _month(a["start"])].append((a["start"] - a["created"]).days)
    imm = defaultdict(int)
    for i in data["immunizations"]:
        if i["month"] in months:
            imm[i["region"], i["month"]] += 1
            imm["KZ", i["month"]] += 1
    hlt04 = {}
    for place in [*CODE_OF_PREFIX.values(), "KZ"]:
        population = POPULATION[place] * data["scale"]
        for month in months:
            n = imm.get((place, month), 0)
            hlt04[place, month] = {"numerator": n, "denominator": population,
                                   "actual": n * 1000 / population, "disclosure": n}
    return {
        "HLT-01": {k: _share(n, d) for k, (n, d) in booked.items()},
        "HLT-02": {k: _median(v, len(v)) for k, v in leads.items() if v},
        "HLT-03": {k: _share(n, d) for k, (n, d) in due.items()},
        "HLT-04": hlt04,
    }


# --- comparison ------------------------------------------------------------------------------


def assert_matches(kpi_id: str, expected: dict, published: dict) -> None:
    assert set(published) == set(expected), (
        f"{kpi_id}: rows only published {sorted(set(published) - set(expected))[:5]}, "
        f"only expected {sorted(set(expected) - set(published))[:5]}")
    for key, exp in expected.items():
        row = published[key]
        assert row["denominator"] == pytest.approx(exp["denominator"], rel=1e-9), (kpi_id, key)
        if row["suppressed"]:
            assert 1 <= exp["disclosure"] < MIN_CELL or row["suppression_reason"].startswith("complementary"), (
                kpi_id, key, exp, row["suppression_reason"])
            assert row["numerator"] is None and row["actual"] is None
        else:
            assert not (1 <= exp["disclosure"] < MIN_CELL), (kpi_id, key, exp)
            if exp["numerator"] is None:
                assert row["numerator"] is None, (kpi_id, key)
            else:
                assert row["numerator"] == pytest.approx(exp["numerator"], rel=1e-9), (kpi_id, key)
            assert row["actual"] == pytest.approx(exp["actual"], rel=1e-9), (kpi_id, key, exp, row["actual"])


def assert_baselines_and_status(kpi_id: str, published: dict) -> int:
    """Baseline = actual of the same place a year earlier when both are published; status by the
    design's evidence rule (test_kpi_intervals.evidence_status) applied to the row's own 95%
    intervals, which test_kpi_intervals recomputes from the landed files. Returns the rows
    checked with a baseline."""
    rule = CATALOGUE[kpi_id]
    checked = 0
    for (place, month), row in published.items():
        assert row["status"] == evidence_status(rule, row), (kpi_id, place, month, row)
        if row["suppressed"]:
            assert row["status"] is None
            continue
        if rule["direction"] == "monitoring":
            assert row["status"] == "monitoring"
        before = published.get((place, month.replace(year=month.year - 1)))
        if before is None or before["suppressed"]:
            assert row["baseline"] is None, (kpi_id, place, month)
            if rule["direction"] != "monitoring" and rule["target_kind"] != "level":
                assert row["status"] == "no-baseline", (kpi_id, place, month, row["status"])
            continue
        assert row["baseline"] == pytest.approx(before["actual"], rel=1e-9), (kpi_id, place, month)
        checked += 1
    return checked


# --- tests -----------------------------------------------------------------------------------


def test_edu01_online_applications(kpi_world):
    published = kpi_world.kpi_values("EDU-01")
    assert_matches("EDU-01", expected_edu01(kpi_world), published)
    assert_baselines_and_status("EDU-01", published)
    # Planted effect: 90% of applications online nationally (population-weighted offsets centred
    # on 0.90). This world's season has ~400 applications, ~40 in person: every country month has
    # fewer than 10 in person, so kpi_values suppresses them all; the effect is then read from the
    # area model's unsuppressed country rows (intermediate.int_kpi__education: what kpi_values
    # publishes before suppression, checked equal to the landing files above), pooled over the
    # season. A binomial share of n applications has SE sqrt(p(1-p)/n) (~0.015 at n ~ 400): 4 SE.
    effect = kpi_world.ground_truth()["education/school_applications"]["effects"]["EDU-01"]
    rows = kpi_world.query("select numerator, denominator from intermediate.int_kpi__education "
                           "where kpi_id = 'EDU-01' and region_code = 'KZ'")
    online, total = sum(r[0] for r in rows), sum(r[1] for r in rows)
    assert total >= 100
    p = effect["national_share"]
    assert abs(online / total - p) <= 4 * math.sqrt(p * (1 - p) / total), (online, total)


def test_edu02_edu03_kindergarten_queue(kpi_world):
    edu02, edu03 = expected_edu02_03(kpi_world)
    published02, published03 = kpi_world.kpi_values("EDU-02"), kpi_world.kpi_values("EDU-03")
    assert_matches("EDU-02", edu02, published02)
    assert_matches("EDU-03", edu03, published03)
    assert_baselines_and_status("EDU-02", published02)
    assert_baselines_and_status("EDU-03", published03)


def test_edu03_planted_placed_share(kpi_world):
    """EDU-03 plants 80% of registered children placed, but the KPI is cumulative: at a month's end
    the children registered lately still wait. The expected share at each month's end follows from
    the ground truth's parameters (registrations by weekday and region, priority mix, lognormal
    waits by region, 1-10 days to enrol), simulated here with 200,000 draws (its own error is
    negligible); the published country share must be within 4 binomial SE of it (n = children
    registered by then; n ~ 100..330 in this world: 4 SE ~ 0.1 early, ~ 0.1 late)."""
    gt = kpi_world.ground_truth()["education/kindergarten_queue"]
    run = gt["run"]
    start, end = date.fromisoformat(run["start"]), date.fromisoformat(run["end"])
    edu02, edu03 = gt["effects"]["EDU-02"], gt["effects"]["EDU-03"]
    weights = {r["kato_prefix"]: int(r["population"]) for r in REGIONS}
    prefixes, pw = list(weights), list(weights.values())
    priorities, pp = list(gt["priority_p"]), list(gt["priority_p"].values())
    weekday = gt["weekday_factors_mon_to_sun"]
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    rng = random.Random(7)
    reg_days = rng.choices(days, weights=[weekday[d.weekday()] for d in days], k=200_000)
    regions = rng.choices(prefixes, weights=pw, k=len(reg_days))
    prios = rng.choices(priorities, weights=pp, k=len(reg_days))
    sigma, zmax, cap = 0.45, 2.0, 240  # the ground truth's distribution text: lognormal, cut +-2 sigma
    assert f"sigma {sigma}" in edu02["distribution"] and f"at most {cap}" in edu02["distribution"]
    placed_on = []
    for reg, region, prio in zip(reg_days, regions, prios, strict=True):
        if rng.random() >= edu03["placed_share"]:
            placed_on.append(None)
            continue
        z = rng.gauss(0, 1)
        while abs(z) > zmax:
            z = rng.gauss(0, 1)
        median = edu02["median_wait_days"][region] * (1 if prio == "none" else edu02["priority_wait_factor"])
        wait = min(max(round(median * math.exp(sigma * z)), 1), cap)
        placed_on.append(reg + timedelta(days=wait + rng.randint(*gt["enrol_days_after_referral"])))
    published = kpi_world.kpi_values("EDU-03")
    checked = 0
    for (place, month), row in published.items():
        if place != "KZ" or row["suppressed"]:
            continue
        last = _last_day(month)
        registered = [p for d, p in zip(reg_days, placed_on, strict=True) if d <= last]
        expected = sum(1 for p in registered if p is not None and p <= last) / len(registered)
        n = row["denominator"]
        assert abs(row["actual"] - expected) <= 4 * math.sqrt(expected * (1 - expected) / n), (
            month, row["actual"], expected, n)
        checked += 1
    assert checked >= 6


def test_health_kpis(kpi_world):
    expected = expected_health(kpi_world)
    published = {kpi: kpi_world.kpi_values(kpi) for kpi in expected}
    for kpi, exp in expected.items():
        assert_matches(kpi, exp, published[kpi])
        assert assert_baselines_and_status(kpi, published[kpi]) > 0 or kpi == "HLT-02"


def test_health_planted_effects(kpi_world):
    gt = kpi_world.ground_truth()["health/fhir_bulk"]
    effects, scale = gt["effects"], gt["run"]["scale"]
    change = date.fromisoformat(effects["HLT-01_online_share"]["change_date"])
    assert change.day == 1  # the change falls on a month boundary: whole months are before or after
    country = {kpi: {m: r for (p, m), r in kpi_world.kpi_values(kpi).items() if p == "KZ" and not r["suppressed"]}
               for kpi in ("HLT-01", "HLT-02", "HLT-03", "HLT-04")}
    # HLT-01 online share 0.45 before / 0.55 from the change date (by created date); HLT-03 no-show
    # rate 0.12 / 0.10 (by start date). Binomial SE sqrt(p(1-p)/n) per month, n ~ 10,000: 4 SE
    # ~ 0.02 (HLT-01), ~ 0.013 (HLT-03).
    for kpi, eff in (("HLT-01", effects["HLT-01_online_share"]),
                     ("HLT-03", {"before": effects["HLT-03_no_show_rate"]["before"],
                                 "after": effects["HLT-03_no_show_rate"]["after"]})):
        assert len(country[kpi]) >= 12
        for month, row in country[kpi].items():
            p = eff["after"] if month >= change else eff["before"]
            assert abs(row["actual"] - p) <= 4 * math.sqrt(p * (1 - p) / row["denominator"]), (kpi, month, row)
    # HLT-02: median 2 days; the lead-time cdf is 0.35 below it and 0.62 at it, so a sample median
    # of n ~ 10,000 (SE of the cdf at a point <= 0.005) is the true median in every month.
    lead = effects["HLT-02_booking_to_visit_days"]
    assert lead["cdf_at_median_minus_1"] < 0.5 - 0.05 and lead["cdf_at_median"] > 0.5 + 0.05
    for month, row in country["HLT-02"].items():
        assert row["denominator"] >= 1000 and row["actual"] == lead["median"], (month, row)
    # HLT-04: completed immunisations per 1,000 a month, the population being the register's x the
    # run's scale (so the world shows the realistic rate); a Poisson count n has SE sqrt(n):
    # 4 / sqrt(n) relative (~12% at n ~ 1,000).
    per_month = effects["HLT-04_immunizations"]["completed_per_1000_by_month_mean"]
    for month, row in country["HLT-04"].items():
        assert row["denominator"] == pytest.approx(POPULATION["KZ"] * scale, rel=1e-9)
        assert row["population_scale"] == pytest.approx(scale, rel=1e-12)
        mean = per_month[month.month - 1]
        assert abs(row["actual"] / mean - 1) <= 4 / math.sqrt(row["numerator"]), (month, row, mean)
