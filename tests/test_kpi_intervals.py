"""The 95% intervals, evidence-based statuses and windows of marts.kpi_values (issue 21),
recomputed for every KPI, place and period of the KPI world straight from the landed files.

The values come from the independent recounts of test_kpi_safety_housing.py,
test_kpi_education_health.py and test_kpi_transport_programme.py (landing files, reference
seeds, the simulator's ground truth; never the lake); this module adds what the design says an
interval is made of, computed here with scipy where it offers the method and written out where it
does not:

- poisson (SAF-01/02/03, HLT-04): score interval of the count n, n + z^2/2 -+
  z sqrt(n + z^2/4), over the exposure x rate_per; the change from the rate ratio conditional on
  the total (Wilson interval of n1 of n1 + n0, scipy's binomtest; ratio = p / (1 - p) E0 / E1);
- wilson (shares): scipy's binomtest(k, n).proportion_ci(0.95, method='wilson');
- median (HCS-03, EDU-02, HLT-02): order statistics x(j), x(k) of the sorted observations
  (numpy), j = max(1, floor(n/2 - z sqrt(n)/2)), k = min(n, ceil(n/2 + 1 + z sqrt(n)/2));
- wilson and median changes: MOVER-R (Donner & Zou 2012) from the two values' intervals;
- ratio (HCS-01): no value interval; the change from the ratio estimator over the cabinets
  (delta method);
- cluster (TRN-01, TRN-02): TRN-01 the ratio estimator over the trip runs (each run's observed
  and on-time arrivals, from the archived FeedMessages), TRN-02 the count -+ z sqrt(sum over the
  landed card numbers of their taps squared); changes by MOVER-R;
- exact (ALA-02): zero-width intervals.

Then the statuses by the design's evidence rule (`evidence_status`, also used by the three
recount modules on each row's own intervals) and the structural rules: nothing of an interval on
a suppressed row, no change without a baseline, each value and change inside its interval, no
verdict from a missing or zero baseline, windows of 12 months for SAF-01/02 and HCS-03.
"""

from __future__ import annotations

import csv
import math
from datetime import date

import numpy as np
import pytest
from scipy import stats

from transforms import settings

Z = 1.959963984540054  # two-sided 95%
CONFIDENCE = 0.95
REL = 1e-9

# The design (issue 21), written out here rather than read from the catalogue, so that the
# catalogue's columns are checked too.
METHOD = {
    **dict.fromkeys(("SAF-01", "SAF-02", "SAF-03", "HLT-04"), "poisson"),
    **dict.fromkeys(("HCS-02", "EDU-01", "EDU-03", "HLT-01", "HLT-03", "GOV-01", "PRG-01", "ALA-01"),
                    "wilson"),
    **dict.fromkeys(("TRN-01", "TRN-02"), "cluster"),
    **dict.fromkeys(("HCS-03", "EDU-02", "HLT-02"), "median"),
    "HCS-01": "ratio",
    "ALA-02": "exact",
}
RATE_PER = {"SAF-01": 100000, "SAF-02": 100000, "HLT-04": 1000}
WINDOW_MONTHS = {"SAF-01": 12, "SAF-02": 12, "HCS-03": 12}
POPULATION_FEED = {"SAF-01": "safety/road_accidents", "SAF-02": "safety/road_accidents",
                   "HLT-04": "health/fhir_bulk", "TRN-02": "transport/fare_validations"}
KPIS = tuple(sorted(METHOD))
INTERVAL_COLUMNS = ("actual_lower", "actual_upper", "baseline_lower", "baseline_upper", "change_lower",
                    "change_upper", "gap_to_target", "gap_lower", "gap_upper")
CHANGE_COLUMNS = ("change_lower", "change_upper")
VERDICTS = {"on-track", "off-track", "at-risk"}


def _catalogue() -> dict[str, dict]:
    with open(settings.DBT_PROJECT_DIR / "seeds" / "kpi_catalogue.csv", encoding="utf-8", newline="") as f:
        return {r["kpi_id"]: r for r in csv.DictReader(f)}


CATALOGUE = _catalogue()


def _add_months(m: date, k: int) -> date:
    n = m.year * 12 + m.month - 1 + k
    return date(n // 12, n % 12 + 1, m.day)


# --- the status rule -----------------------------------------------------------------------------


def _lt(a, b) -> bool:
    """a < b, false when either is missing (SQL: a comparison with null is not true)."""
    return a is not None and b is not None and a < b


def _le(a, b) -> bool:
    return a is not None and b is not None and a <= b


def evidence_status(kpi: dict, row: dict) -> str | None:
    """The design's status of a kpi_values row from its own 95% intervals. `kpi` is the
    catalogue row (direction, target_kind, target); lib = lower is better, hib = higher.
    A level target compares the value's interval with the target (at-risk: short of it but the
    change's interval shows improvement); otherwise no verdict without a baseline > 0, and the
    change's interval decides (vs the target for change_vs_baseline, vs 0 for a direction only).
    """
    if row["suppressed"]:
        return None
    direction, kind = kpi["direction"], kpi["target_kind"]
    if direction == "monitoring":
        return "monitoring"
    lib = direction == "lower_is_better"
    lo, hi = row["actual_lower"], row["actual_upper"]
    cl, cu = row["change_lower"], row["change_upper"]
    if kind == "level":
        t = float(kpi["target"])
        if (not lib and _le(t, lo)) or (lib and _le(hi, t)):
            return "on-track"
        if (not lib and _lt(hi, t)) or (lib and _lt(t, lo)):
            improving = (not lib and _lt(0, cl)) or (lib and _lt(cu, 0))
            return "at-risk" if improving else "off-track"
        return "within-noise"
    if row["baseline"] is None or row["baseline"] <= 0:
        return "no-baseline"
    if kind == "change_vs_baseline":
        t = float(kpi["target"])
        if (lib and _le(cu, t)) or (not lib and _le(t, cl)):
            return "on-track"
        if (lib and _lt(0, cl)) or (not lib and _lt(cu, 0)):
            return "off-track"
        if (lib and _lt(cu, 0) and _lt(t, cl)) or (not lib and _lt(0, cl) and _lt(cu, t)):
            return "at-risk"
        return "within-noise"
    if (lib and _lt(cu, 0)) or (not lib and _lt(0, cl)):
        return "on-track"
    if (lib and _lt(0, cl)) or (not lib and _lt(cu, 0)):
        return "off-track"
    return "within-noise"


# --- the intervals, independently --------------------------------------------------------------


def poisson_value(n: int, exposure: float, rate_per: float) -> tuple[float, float]:
    """Score interval of a Poisson count n, as a rate per `rate_per` of the exposure."""
    half = Z * math.sqrt(n + Z * Z / 4)
    return (max(n + Z * Z / 2 - half, 0.0) / exposure * rate_per, (n + Z * Z / 2 + half) / exposure * rate_per)


def wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def median_interval(values: list[float]) -> tuple[float, float]:
    """Distribution-free interval of a median: order statistics x(j), x(k) (1-based)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    j = max(1, math.floor(n / 2 - Z * math.sqrt(n) / 2))
    k = min(n, math.ceil(n / 2 + 1 + Z * math.sqrt(n) / 2))
    return float(x[j - 1]), float(x[k - 1])


def poisson_ratio_change(n1: int, e1: float, n0: int, e0: float) -> tuple[float, float]:
    """Change of a rate (n1 / e1 vs n0 / e0) from the rate ratio conditional on n1 + n0: the
    binomial share of n1 in the total, its Wilson interval mapped to p / (1 - p) x e0 / e1."""
    pl, pu = wilson(n1, n1 + n0)
    upper = math.inf if pu >= 1 else pu / (1 - pu) * e0 / e1 - 1
    return pl / (1 - pl) * e0 / e1 - 1, upper


def mover_r_change(t1: float, l1: float, u1: float, t0: float, l0: float, u0: float) -> tuple[float, float]:
    """MOVER-R (Donner & Zou 2012): the ratio t1 / t0 from the two estimates' own intervals; as a
    change (ratio - 1)."""
    den_l = u0 * (2 * t0 - u0)
    if den_l <= 0:
        lower = 0.0
    else:
        lower = (t1 * t0 - math.sqrt(max((t1 * t0) ** 2 - l1 * u0 * (2 * t1 - l1) * (2 * t0 - u0), 0.0))) / den_l
    den_u = l0 * (2 * t0 - l0)
    if den_u <= 0:
        upper = math.inf
    else:
        upper = (t1 * t0 + math.sqrt(max((t1 * t0) ** 2 - u1 * l0 * (2 * t1 - u1) * (2 * t0 - l0), 0.0))) / den_u
    return lower - 1, upper - 1


def ratio_estimator_change(pairs: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    """HCS-01: R = sum y / sum x over the cabinets (y the month's kWh, x its pre-retrofit
    equivalent); V = sum (y - R x)^2 / (n (n - 1)) / mean(x)^2; R -+ z sqrt(V), as a change."""
    n = len(pairs)
    if n < 2:
        return None, None
    y = np.array([p[0] for p in pairs])
    x = np.array([p[1] for p in pairs])
    r = y.sum() / x.sum()
    v = float(((y - r * x) ** 2).sum()) / (n * (n - 1)) / (x.sum() / n) ** 2
    return float(r - Z * math.sqrt(v)) - 1, float(r + Z * math.sqrt(v)) - 1


def value_interval(kpi: str, exp: dict) -> tuple[float | None, float | None]:
    method = METHOD[kpi]
    if method == "poisson":
        return poisson_value(exp["numerator"], exp["denominator"], RATE_PER.get(kpi, 1))
    if method == "wilson":
        return wilson(exp["numerator"], exp["denominator"])
    if method == "median":
        return median_interval(exp["values"])
    if method == "exact":
        return exp["actual"], exp["actual"]
    if kpi == "TRN-01":  # ratio estimator over the trip runs
        x = np.array([a for a, _ in exp["runs"]], dtype=float)
        y = np.array([b for _, b in exp["runs"]], dtype=float)
        n = len(x)
        if n < 2:
            return None, None
        r = y.sum() / x.sum()
        se = math.sqrt(float(((y - r * x) ** 2).sum()) / (n * (n - 1))) / (x.sum() / n)
        return max(r - Z * se, 0.0), min(r + Z * se, 1.0)
    if kpi == "TRN-02":  # compound Poisson over the cards: Var(N) = sum of taps^2
        half = Z * math.sqrt(exp["sumsq"])
        return max(exp["numerator"] - half, 0.0) / exp["denominator"], (exp["numerator"] + half) / exp["denominator"]
    return None, None  # ratio: the kWh is measured, not estimated


def change_interval(kpi: str, exp: dict, base: dict | None, baseline: float) -> tuple[float | None, float | None]:
    method = METHOD[kpi]
    if method == "poisson":
        return poisson_ratio_change(exp["numerator"], exp["denominator"], base["numerator"], base["denominator"])
    if method in ("wilson", "median", "cluster"):
        return mover_r_change(exp["actual"], *value_interval(kpi, exp), base["actual"], *value_interval(kpi, base))
    if method == "exact":
        return exp["actual"] / baseline - 1, exp["actual"] / baseline - 1
    return ratio_estimator_change(exp["pairs"])


def expected_row(kpi: str, key: tuple, rows: dict, published: dict, own_baselines: dict) -> dict:
    """The interval columns of a kpi_values row, from the expected rows of its KPI (the recounts)
    and which rows kpi_values suppressed (checked against the small-cell rule by the recount
    modules)."""
    out = dict.fromkeys(INTERVAL_COLUMNS)
    place, month = key
    before = (place, _add_months(month, -12))
    if published[key]["suppressed"]:
        # the baseline and its interval stay on a suppressed row: they are published in their own row
        if kpi not in own_baselines and before in published and not published[before]["suppressed"]:
            out["baseline_lower"], out["baseline_upper"] = value_interval(kpi, rows[before])
        return out
    exp, cat = rows[key], CATALOGUE[kpi]
    out["actual_lower"], out["actual_upper"] = value_interval(kpi, exp)
    base = None
    if kpi in own_baselines:
        baseline = own_baselines[kpi][key]
    elif before in published and not published[before]["suppressed"]:
        base = rows[before]
        baseline = base["actual"]
        out["baseline_lower"], out["baseline_upper"] = value_interval(kpi, base)
    else:
        baseline = None
    has_baseline = baseline is not None and baseline > 0
    if has_baseline:
        out["change_lower"], out["change_upper"] = change_interval(kpi, exp, base, baseline)
    target = float(cat["target"]) if cat["target"] else None
    if cat["target_kind"] == "level":
        # the gap of a level target is the value's, whatever the baseline
        out["gap_to_target"] = exp["actual"] - target
        out["gap_lower"], out["gap_upper"] = out["actual_lower"] - target, out["actual_upper"] - target
    elif cat["target_kind"] == "change_vs_baseline" and has_baseline:
        out["gap_to_target"] = exp["actual"] / baseline - 1 - target
        out["gap_lower"] = None if out["change_lower"] is None else out["change_lower"] - target
        out["gap_upper"] = None if out["change_upper"] is None else out["change_upper"] - target
    return out


# --- the recounts, from the three modules -----------------------------------------------------


def _as_rows(expected: dict) -> dict:
    """{key: (numerator, denominator, actual)} -> {key: {numerator, denominator, actual}}."""
    return {k: {"numerator": n, "denominator": d, "actual": a} for k, (n, d, a) in expected.items()}


@pytest.fixture(scope="module")
def recounted(kpi_world) -> tuple[dict, dict]:
    """Every KPI's expected rows (the recount modules' functions, cached there), and the model
    baselines (HCS-01)."""
    import test_kpi_education_health as eh
    import test_kpi_safety_housing as sh
    import test_kpi_transport_programme as tp

    truth = kpi_world.ground_truth()
    saf01, saf02, _ = sh.expected_saf_01_02(kpi_world)
    saf03, _ = sh.expected_saf_03(
        kpi_world, tuple(truth["safety/sergek_violations"]["effects"]["weekday_factors_mon_to_sun"]))
    hcs01, hcs01_baselines, _ = sh.expected_hcs_01(kpi_world)
    edu02, edu03 = eh.expected_edu02_03(kpi_world)
    rows = {
        "SAF-01": saf01, "SAF-02": saf02, "SAF-03": saf03, "HCS-01": hcs01,
        "HCS-02": sh.expected_hcs_02(kpi_world)[0], "HCS-03": sh.expected_hcs_03(kpi_world)[0],
        "EDU-01": eh.expected_edu01(kpi_world), "EDU-02": edu02, "EDU-03": edu03,
        **eh.expected_health(kpi_world),
        "TRN-01": _as_rows(tp.expected_trn01(kpi_world)), "TRN-02": _as_rows(tp.expected_trn02(kpi_world)[0]),
        "GOV-01": _as_rows(tp.expected_gov01(kpi_world)), "PRG-01": _as_rows(tp.expected_prg01(kpi_world)),
        "ALA-01": _as_rows(tp.expected_ala01(kpi_world)[0]), "ALA-02": _as_rows(tp.expected_ala02(kpi_world)),
    }
    runs, squares = tp.trn01_runs(kpi_world), tp.trn02_card_squares(kpi_world)
    for key, row in rows["TRN-01"].items():
        row["runs"] = runs[key]
    for key, row in rows["TRN-02"].items():
        row["sumsq"] = squares.get(key, 0)
    assert set(rows) == set(KPIS)
    return rows, {"HCS-01": hcs01_baselines}


@pytest.fixture(scope="module")
def published(kpi_world) -> dict:
    return {kpi: kpi_world.kpi_values(kpi) for kpi in KPIS}


def _close(got, want) -> bool:
    if want is None or got is None:
        return got is None and want is None
    if math.isinf(want):
        return got == want
    return got == pytest.approx(want, rel=REL, abs=1e-12 * max(1.0, abs(want)))


# --- tests ---------------------------------------------------------------------------------------


def test_the_catalogue_carries_the_design():
    for kpi in KPIS:
        cat = CATALOGUE[kpi]
        assert cat["interval_method"] == METHOD[kpi], kpi
        assert float(cat["rate_per"]) == RATE_PER.get(kpi, 1), kpi
        assert int(cat["window_months"]) == WINDOW_MONTHS.get(kpi, 1), kpi
        assert (cat["population_feed"] or None) == POPULATION_FEED.get(kpi), kpi
    assert set(CATALOGUE) == set(KPIS)


def test_the_methods_agree_with_their_textbook_forms():
    """The scipy-based helpers against the design's closed forms (so a scipy change of method
    would show), and the order statistics on a small sample worked by hand."""
    for k, n in ((0, 7), (3, 10), (10, 10), (412, 1000)):
        p, z2 = k / n, Z * Z
        centre, half = (k + z2 / 2) / (n + z2), Z * math.sqrt(k * (n - k) / n + z2 / 4) / (n + z2)
        assert wilson(k, n) == pytest.approx((centre - half, centre + half), rel=1e-12, abs=1e-15)
        assert wilson(k, n)[0] <= p <= wilson(k, n)[1]
    # n = 0 accidents: lower 0; upper z^2 = 3.84 accidents over the exposure
    assert poisson_value(0, 1000.0, 1000) == pytest.approx((0.0, Z * Z), abs=1e-12)
    # n = 10: j = floor(5 - 3.099) = 1, k = ceil(6 + 3.099) = 10
    assert median_interval([5, 3, 9, 1, 7, 2, 8, 4, 6, 10]) == (1.0, 10.0)
    # n = 100: j = floor(50 - 9.8) = 40, k = ceil(51 + 9.8) = 61
    assert median_interval(list(range(1, 101))) == (40.0, 61.0)
    # the same rate twice: the change's interval holds 0, symmetric on the log scale
    lo, hi = poisson_ratio_change(100, 1.0, 100, 1.0)
    assert lo < 0 < hi and math.log(1 + lo) == pytest.approx(-math.log(1 + hi), rel=1e-9)
    # MOVER-R with exact estimates (zero-width intervals) is the ratio itself
    assert mover_r_change(0.6, 0.6, 0.6, 0.5, 0.5, 0.5) == pytest.approx((0.2, 0.2), rel=1e-12)


@pytest.mark.parametrize("kpi", KPIS)
def test_intervals_match_an_independent_computation(kpi, recounted, published):
    """Every row of the KPI (every place, every period): the value's, baseline's, change's and
    gap's 95% intervals as recomputed from the landed files, within 1e-9 relative."""
    rows, own = recounted
    got = published[kpi]
    assert set(got) == set(rows[kpi]), (kpi, sorted(set(got) ^ set(rows[kpi]))[:6])
    with_change = 0
    for key, row in got.items():
        want = expected_row(kpi, key, rows[kpi], got, own)
        bad = {c: (row[c], want[c]) for c in INTERVAL_COLUMNS if not _close(row[c], want[c])}
        assert not bad, (kpi, key, bad)
        with_change += want["change_lower"] is not None
    if kpi in ("SAF-01", "SAF-02", "HCS-03", "HLT-01", "HLT-03", "TRN-01", "GOV-01"):
        assert with_change > 0, f"{kpi}: no row with a change interval in the world"


@pytest.mark.parametrize("kpi", KPIS)
def test_status_from_the_independent_intervals(kpi, recounted, published):
    """The status is the evidence rule applied to the intervals recomputed here (and the rule
    itself to the row's own intervals, in the recount modules)."""
    rows, own = recounted
    got = published[kpi]
    for key, row in got.items():
        mine = {**expected_row(kpi, key, rows[kpi], got, own), "suppressed": row["suppressed"],
                "baseline": row["baseline"]}
        assert row["status"] == evidence_status(CATALOGUE[kpi], mine), (kpi, key, row["status"], mine)


@pytest.mark.parametrize("kpi", KPIS)
def test_structural_rules(kpi, published, kpi_world):
    """Columns that must hold whatever the numbers: method, confidence, windows and population
    scale; nothing of an interval on a suppressed row; no change or gap without a baseline (a
    level target's gap is the value's); each value and change inside its interval; no verdict
    from a missing or zero baseline unless a level target decides it; the baseline's interval is
    the baseline row's."""
    cat, got = CATALOGUE[kpi], published[kpi]
    months = WINDOW_MONTHS.get(kpi, 1)
    feed = POPULATION_FEED.get(kpi)
    scale = float(kpi_world.ground_truth()[feed]["run"]["scale"]) if feed else None
    for key, row in got.items():
        where = (kpi, key)
        assert row["interval_method"] == METHOD[kpi] and float(row["confidence"]) == CONFIDENCE, where
        assert row["window_months"] == months, where
        assert row["window_start"] == _add_months(row["period_start"], -(months - 1)), where
        assert row["period_grain"] == ("rolling_12_months" if months == 12 else "month"), where
        if scale is None:
            assert row["population_scale"] is None, where
        else:
            assert row["population_scale"] == pytest.approx(scale, rel=1e-12), where
        if row["suppressed"]:
            # nothing of the row's own count; the baseline's interval is its published row's
            assert all(row[c] is None for c in INTERVAL_COLUMNS if not c.startswith("baseline_")), where
            assert row["status"] is None, where
            continue
        if row["baseline"] is None or row["baseline"] <= 0:
            assert row["change_vs_baseline"] is None and row["change_lower"] is None, where
            assert row["change_upper"] is None, where
            if cat["target_kind"] != "level":
                assert row["gap_to_target"] is None and row["gap_lower"] is None and row["gap_upper"] is None, where
            if cat["target_kind"] != "level" and cat["direction"] != "monitoring":
                assert row["status"] == "no-baseline", where
        assert row["status"] not in VERDICTS or row["baseline"] or cat["target_kind"] == "level", where
        if METHOD[kpi] == "ratio":
            assert row["actual_lower"] is None and row["actual_upper"] is None, where
        else:
            assert row["actual_lower"] <= row["actual"] <= row["actual_upper"], where
        if METHOD[kpi] == "exact":
            assert row["actual_lower"] == row["actual_upper"] == row["actual"], where
        if row["change_vs_baseline"] is not None and row["change_lower"] is not None:
            tol = 1e-12 * max(1.0, abs(row["change_vs_baseline"]))
            assert row["change_lower"] - tol <= row["change_vs_baseline"] <= row["change_upper"] + tol, where
        before = got.get((key[0], _add_months(key[1], -12)))
        if cat["baseline_source"] != "model" and before is not None and not before["suppressed"]:
            assert row["baseline_lower"] == before["actual_lower"], where
            assert row["baseline_upper"] == before["actual_upper"], where
        elif cat["baseline_source"] != "model":
            assert row["baseline_lower"] is None and row["baseline_upper"] is None, where
        if cat["target"] and row["gap_to_target"] is not None:
            if cat["target_kind"] == "level":
                assert row["gap_to_target"] == pytest.approx(row["actual"] - float(cat["target"]), rel=REL, abs=1e-12)
            else:
                assert row["gap_to_target"] == pytest.approx(row["change_vs_baseline"] - float(cat["target"]),
                                                             rel=REL, abs=1e-12)
        elif not cat["target"]:
            assert row["gap_to_target"] is None and row["gap_lower"] is None and row["gap_upper"] is None, where


def test_the_world_has_every_kind_of_row(published):
    """The world exercises the rules: suppressed rows, rows without a baseline and with one, at
    least three different statuses, and rolling windows with a baseline."""
    rows = [r for kpi in KPIS for r in published[kpi].values()]
    assert any(r["suppressed"] for r in rows)
    assert any(r["baseline"] is None and not r["suppressed"] for r in rows)
    assert sum(r["change_lower"] is not None for r in rows) > 100
    assert len({r["status"] for r in rows} - {None}) >= 3
    for kpi in WINDOW_MONTHS:
        assert any(r["change_lower"] is not None for r in published[kpi].values()), kpi
