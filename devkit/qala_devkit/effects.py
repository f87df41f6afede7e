"""`qala effects`: do the KPIs recover the simulator's planted effects, and do the KPIs the
simulated world keeps constant stay quiet?

The simulator writes, beside the exports it lands, `simulator/ground_truth.json`: per feed, the
parameters of every effect it planted (the Sergek fall in Astana, the LED retrofit in Almaty, the
online shares, the queue's waits, ...) and the run (start, end, scale). This check turns each
planted effect into the value a KPI row should show (per place and period, over the KPI's window:
`window_start` .. the end of `period_start`'s month) and the change it should show against its
baseline (the same window a year earlier), and compares them with `marts.kpi_values` and its 95%
intervals (`actual_lower/upper`, `change_lower/upper`).

What fails (exit code 1):

* the latest period of a KPI (what the scorecard shows): an expectation outside its interval
  beyond chance. A 95% interval misses its truth 1 time in 20, and the latest period alone has
  a few hundred checks, so "outside the 95% interval" is reported for every check, and the
  exit code follows the family: an expectation outside the interval stretched to the
  family-wise 95% level (Bonferroni over the latest period's checks, the interval's half-width
  on that side read as 1.96 standard errors), or a KPI whose latest-period misses are more
  than 95% allows (one-sided binomial test, p < 0.001, against 5%).
* a KPI whose truth is constant (no planted change between a row's window and its baseline)
  and whose status is decided by the change (target_kind none or change_vs_baseline) claims a
  change (on-track, at-risk, off-track: the change interval excludes 0) in more of its decided
  rows than 95% allows (one-sided binomial test, p < 0.001, against 5%). Rolling 12-month rows
  are thinned to one row a year per place (overlapping windows are not independent).

Every period's checks are reported too (the misses of each KPI against the 5% chance allows,
listed), without failing the run: earlier months share the latest's inputs and the cumulative
KPIs (EDU-03) repeat one draw month after month.

Expected values come from the ground truth's numbers; where they also need a shape constant the
ground truth does not state (a holiday calendar, the weekend factor of the service desk), the
simulator module's constant is used and the derivation says so; where a KPI's value cannot be
derived exactly (which Sergek cameras are active, the project mix of Alatau's investment), the
output says so and the check uses what the ground truth states (with its stated tolerance, or as
information only).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from statistics import NormalDist

import numpy as np

from transforms import lake, settings

Z95 = 1.959963984540054
ALPHA = 0.05  # the intervals' level is 1 - ALPHA
TEST_LEVEL = 0.001  # one-sided binomial test of a miss (or claimed-change) rate against ALPHA
FAMILY_LEVEL = 0.05  # family-wise level of the latest period's checks
CLAIMS_CHANGE = ("on-track", "at-risk", "off-track")
DECIDED = CLAIMS_CHANGE + ("within-noise",)


# --- small helpers ---------------------------------------------------------------------------------


def _add_months(d: date, k: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 + k, 12)
    return date(y, m + 1, 1)


def _month_end(d: date) -> date:
    return _add_months(d, 1) - timedelta(days=1)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def _months_between(a: date, b: date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorised (erfc by W. J. Cody's rational fit via Numerical Recipes'
    erfcc: relative error < 1.2e-7, far below what a median or share here can resolve)."""
    x = np.asarray(x, dtype=float)
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = (-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277)))))))))
    erfc = t * np.exp(poly)
    return np.where(x >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)


def binomial_tail(k: int, n: int, p: float = ALPHA) -> float:
    """P(X >= k) for X ~ Binomial(n, p): the one-sided binomial test's p-value."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * math.log(p) + (n - i) * math.log1p(-p) for i in range(k, n + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    if x != 0 and (abs(x) >= 10 ** 5 or abs(x) < 10 ** -3):
        return f"{x:.3g}"
    return f"{x:.{digits}g}"


def _pct(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "+inf" if x > 0 else "-inf"
    return f"{x * 100:+.1f}%"


# --- what a KPI row should show ----------------------------------------------------------------------


@dataclass
class Expect:
    """The value and the change vs baseline a KPI row should show, by the ground truth."""

    value: float | None = None
    change: float | None = None
    value_tol: float = 0.0  # an approximation's stated tolerance (absolute, the KPI's unit)
    change_tol: float = 0.0
    planted_change: bool | None = None  # True: the truth differs between window and baseline
    gate: bool = True  # False: information only (the expectation is too rough to fail a run)
    note: str = ""


class World:
    """The ground truth and the places (regions, towns) of one warehouse, and its KPI rows."""

    def __init__(self, truth: dict, regions: dict[str, dict], towns: dict[str, dict], rows: list[dict]):
        self.truth = truth
        self.regions = regions  # kato_code -> {prefix, population, name}
        self.towns = towns
        self.code_of_prefix = {r["prefix"]: code for code, r in regions.items()}
        self.pop_total = float(sum(r["population"] for r in regions.values()))
        self.index = {(r["kpi_id"], r["region_code"], r["period_start"]): r for r in rows}
        self.extra: dict = {}  # what a derivation needs from the lake besides the KPI rows

    def feed(self, name: str) -> dict:
        gt = self.truth.get(name)
        if not gt:
            raise MissingTruth(name)
        return gt

    def run(self, name: str) -> tuple[date, date]:
        run = self.feed(name)["run"]
        return date.fromisoformat(run["start"]), date.fromisoformat(run["end"])

    def name(self, code: str) -> str:
        if code == "KZ":
            return "Kazakhstan"
        return (self.regions.get(code) or self.towns.get(code) or {}).get("name", code)

    def share_of(self, code: str) -> dict[str, float]:
        """Population weights of the regions behind a place: itself, or every region for KZ."""
        if code == "KZ":
            return {c: r["population"] / self.pop_total for c, r in self.regions.items()}
        return {code: 1.0} if code in self.regions else {}


class MissingTruth(Exception):
    """The ground truth has no entry for a feed a KPI needs (a run that simulated other feeds)."""


def _windows(row: dict) -> tuple[tuple[date, date], tuple[date, date]]:
    """The row's window (first day, last day) and its baseline's (the same window a year earlier)."""
    period = row["period_start"]
    first = row.get("window_start") or period
    window = (first, _month_end(period))
    return window, (_add_months(first, -12), _month_end(_add_months(period, -12)))


# --- safety ----------------------------------------------------------------------------------------


class _Accidents:
    """SAF-01/SAF-02: expected accidents (deaths) per 100,000 people over a window of days."""

    def __init__(self, world: World):
        gt = world.feed("safety/road_accidents")
        eff = gt["effects"]
        self.world = world
        self.per_day = gt["national_per_day_at_scale_1"]
        self.weekday = eff["weekday_factors_mon_to_sun"]
        self.winter_months = set(eff["winter"]["months"])
        self.winter = eff["winter"]["relative_change"]
        sergek = eff["sergek_astana"]
        self.rollout = date.fromisoformat(sergek["rollout_date"])
        self.multiplier = 1.0 + sergek["relative_change"]
        self.astana = world.code_of_prefix.get(sergek["kato_prefix"])
        self.late_share = gt.get("late_share", 0.0)
        self.late_days = gt.get("late_days", [1, 1])
        self.end = world.run("safety/road_accidents")[1]
        self.deaths = gt["deaths_per_accident"]

    def _loaded(self, day: date) -> float:
        """Share of a day's accidents in the exports up to the run's end (late ones come later)."""
        lag = (self.end - day).days
        lo, hi = self.late_days
        beyond = sum(1 for k in range(lo, hi + 1) if k > lag) / (hi - lo + 1)
        return 1.0 - self.late_share * beyond

    @lru_cache(maxsize=4096)  # noqa: B019 (one instance per check)
    def _sum(self, first: date, last: date, astana: bool) -> float:
        total = 0.0
        for d in _days(first, last):
            rate = self.weekday[d.weekday()] * (1.0 + self.winter if d.month in self.winter_months else 1.0)
            if astana and d >= self.rollout:
                rate *= self.multiplier
            total += rate * self._loaded(d)
        return total

    def per_100k(self, code: str, window: tuple[date, date]) -> float:
        """Expected accidents per 100,000 people: the region's share of the national rate over its
        share of the population, so the scale and the population cancel."""
        weights = self.world.share_of(code)
        astana = weights.get(self.astana, 0.0) / sum(weights.values())
        days = (1 - astana) * self._sum(*window, False) + astana * self._sum(*window, True)
        return self.per_day * days / self.world.pop_total * 100_000

    def after_share(self, window: tuple[date, date]) -> float:
        days = _days(*window)
        return sum(d >= self.rollout for d in days) / len(days)

    def expect(self, row: dict, deaths: bool) -> Expect | None:
        code = row["region_code"]
        if not self.world.share_of(code):
            return None
        window, base = _windows(row)
        value, baseline = self.per_100k(code, window), self.per_100k(code, base)
        factor = self.deaths if deaths else 1.0
        involved = code == "KZ" or code == self.astana
        planted = involved and self.after_share(window) != self.after_share(base)
        return Expect(value=value * factor, change=value / baseline - 1, planted_change=planted)


def _saf_01(world: World, row: dict) -> Expect | None:
    return _cached(world, _Accidents).expect(row, deaths=False)


def _saf_02(world: World, row: dict) -> Expect | None:
    return _cached(world, _Accidents).expect(row, deaths=True)


def _saf_03(world: World, row: dict) -> Expect | None:
    eff = world.feed("safety/sergek_violations")["effects"]
    rate, weekday = eff["saf_03_violations_per_active_camera_day"], eff["weekday_factors_mon_to_sun"]

    def mean(window):
        days = _days(*window)
        return rate * sum(weekday[d.weekday()] for d in days) / len(days)

    window, base = _windows(row)
    return Expect(value=mean(window), change=mean(window) / mean(base) - 1, planted_change=False, gate=False)


# --- housing ---------------------------------------------------------------------------------------


def _hcs_01(world: World, row: dict) -> Expect | None:
    eff = world.feed("housing/street_lighting")["effects"]["led_retrofit"]
    almaty = world.code_of_prefix.get(world.feed("housing/street_lighting").get("kato_prefix", "75"))
    if row["region_code"] not in (almaty, "KZ"):
        return None
    return Expect(change=eff["relative_change"], planted_change=True)


def _hcs_02(world: World, row: dict) -> Expect | None:
    gt = world.feed("housing/utility_payments")
    eff = gt["effects"]["automated_payments"]
    if row["region_code"] != eff["pilot_kato_code"]:
        return None
    anchor, target = date.fromisoformat(eff["anchor_date"]), date.fromisoformat(eff["target_date"])
    lo, hi = eff["pilot_share"]["at_anchor"], eff["pilot_share"]["at_target"]
    dom, weekday = gt["day_of_month_weights"], gt["weekday_factors_mon_to_sun"]

    def share(window):  # the linear share, weighted by the payments' day-of-month and weekday rhythm
        days = _days(*window)
        w = [dom[d.day - 1] * weekday[d.weekday()] for d in days]
        s = [lo + (hi - lo) * min(max((d - anchor).days / (target - anchor).days, 0.0), 1.0) for d in days]
        return sum(a * b for a, b in zip(w, s)) / sum(w)

    window, base = _windows(row)
    value, baseline = share(window), share(base)
    return Expect(value=value, change=value / baseline - 1, planted_change=abs(value - baseline) > 1e-12)


class _CloseTimes:
    """HCS-03: the median hours to close of the requests closed in a window: the services' clipped
    lognormals mixed by the requests each service creates on each day (month multipliers, weekend
    factor), counting a request where it closes. The same in every region (volumes follow
    population alike for every service)."""

    def __init__(self, world: World):
        gt = world.feed("housing/open311_requests")
        spec = gt["effects"]["time_to_close"]
        match = re.search(r"clipped to \[([\d.]+), ([\d.]+)\]", spec["distribution"])
        self.clip = (float(match.group(1)), float(match.group(2))) if match else (0.25, 720.0)
        weekend = re.search(r"([\d.]+) at weekends", gt.get("allocation", ""))
        self.weekend = float(weekend.group(1)) if weekend else _module_constant("open311_requests", "WEEKEND_FACTOR")
        services = gt["services"]
        self.codes = list(spec["by_service"])
        self.per_day = np.array([services[c]["per_day"] for c in self.codes], dtype=float)
        self.months = np.array([services[c]["month_multipliers"] for c in self.codes], dtype=float)
        by = spec["by_service"]
        self.mu = np.array([math.log(by[c]["median_hours"]) for c in self.codes])
        self.sigma = np.array([by[c]["sigma_log"] for c in self.codes])
        self.closed = np.array([1.0 - by[c]["never_closed_share"] for c in self.codes])

    def _cdf(self, hours: np.ndarray) -> np.ndarray:
        """CDF of each service's clipped close time (hours: days x services)."""
        lo, hi = self.clip
        h = np.maximum(hours, 1e-9)
        f = _norm_cdf((np.log(h) - self.mu) / self.sigma)
        return np.where(hours < lo, 0.0, np.where(hours >= hi, 1.0, f))

    @lru_cache(maxsize=512)  # noqa: B019
    def median(self, first: date, last: date) -> float:
        created = _days(first - timedelta(days=math.ceil(self.clip[1] / 24) + 1), last)
        volume = np.array([self.per_day * self.months[:, d.month - 1] * (self.weekend if d.weekday() >= 5 else 1.0)
                           for d in created]) * self.closed  # days x services
        # created at midday: hours from creation to the window's start and to its end
        start = np.array([((first - d).days - 0.5) * 24 for d in created])[:, None]
        stop = np.array([((last - d).days + 0.5) * 24 for d in created])[:, None]
        low = self._cdf(np.maximum(start, 0.0) * np.ones_like(volume))
        total = (volume * (self._cdf(stop * np.ones_like(volume)) - low)).sum()

        def share_below(x: float) -> float:
            upper = self._cdf(np.minimum(stop, x) * np.ones_like(volume))
            return float((volume * np.maximum(upper - low, 0.0)).sum() / total)

        lo, hi = self.clip
        for _ in range(80):
            mid = math.sqrt(lo * hi)
            lo, hi = (mid, hi) if share_below(mid) < 0.5 else (lo, mid)
        return math.sqrt(lo * hi)


def _hcs_03(world: World, row: dict) -> Expect | None:
    times = _cached(world, _CloseTimes)
    window, base = _windows(row)
    value, baseline = times.median(*window), times.median(*base)
    return Expect(value=value, change=value / baseline - 1, planted_change=False)


# --- education -------------------------------------------------------------------------------------


class _Applications:
    """EDU-01: a month's online share from the season's daily profile of each channel."""

    def __init__(self, world: World):
        gt = world.feed("education/school_applications")
        self.world = world
        self.shares = gt["effects"]["EDU-01"]["regional_share"]
        season = gt["season"]
        self.opens, self.closes = tuple(season["opens"]), tuple(season["closes"])
        self.peak, self.decay = season["opening_peak"], season["opening_decay_days"]
        self.rush_day, self.rush = season["august_rush"]["from_day"], season["august_rush"]["relative_change"]
        self.weekday = season["weekday_factors_mon_to_sun"]

    def _weight(self, d: date, channel: str) -> float:
        if not self.opens <= (d.month, d.day) <= self.closes:
            return 0.0
        k = (d - date(d.year, *self.opens)).days
        w = (1.0 + self.peak[channel] * math.exp(-k / self.decay)) * self.weekday[channel][d.weekday()]
        return w * (1.0 + self.rush if d.month == 8 and d.day >= self.rush_day else 1.0)

    @lru_cache(maxsize=64)  # noqa: B019
    def _season(self, year: int, channel: str) -> float:
        return sum(self._weight(d, channel) for d in _days(date(year, *self.opens), date(year, *self.closes)))

    def share(self, code: str, window: tuple[date, date]) -> float | None:
        online = other = 0.0
        for region, w in self.world.share_of(code).items():
            p = self.shares[self.world.regions[region]["prefix"]]
            for d in _days(*window):
                egov, in_person = self._weight(d, "egov"), self._weight(d, "in_person")
                if egov:
                    online += w * p * egov / self._season(d.year, "egov")
                if in_person:
                    other += w * (1 - p) * in_person / self._season(d.year, "in_person")
        return online / (online + other) if online + other > 0 else None


def _edu_01(world: World, row: dict) -> Expect | None:
    apps = _cached(world, _Applications)
    window, base = _windows(row)
    value, baseline = apps.share(row["region_code"], window), apps.share(row["region_code"], base)
    if value is None:
        return None
    return Expect(value=value, change=value / baseline - 1 if baseline else None, planted_change=False)


class _Queue:
    """EDU-02/EDU-03 from the queue's waits: lognormal around each region's median (halved for
    priority children), cut at +-zmax sigma, rounded to whole days, 1..cap; only children
    registered since the run's start are in the loaded history."""

    def __init__(self, world: World):
        gt = world.feed("education/kindergarten_queue")
        self.world = world
        eff = gt["effects"]
        self.medians = eff["EDU-02"]["median_wait_days"]
        self.priority_factor = eff["EDU-02"]["priority_wait_factor"]
        text = eff["EDU-02"]["distribution"]
        self.sigma = float(re.search(r"sigma ([\d.]+)", text).group(1))
        self.zmax = float(re.search(r"cut at \+-([\d.]+) sigma", text).group(1))
        self.cap = int(re.search(r"at most (\d+) days", text).group(1))
        self.placed = eff["EDU-03"]["placed_share"]
        self.priority_p = gt["priority_p"]
        self.weekday = gt["weekday_factors_mon_to_sun"]
        self.enrol = gt["enrol_days_after_referral"]
        self.start = world.run("education/kindergarten_queue")[0]

    @lru_cache(maxsize=256)  # noqa: B019
    def pmf(self, median: float) -> np.ndarray:
        """P(wait = w days), w = 0..cap (0 has none)."""
        w = np.arange(0, self.cap + 1, dtype=float)
        with np.errstate(divide="ignore"):
            lo = np.where(w <= 1, -np.inf, np.log(np.maximum(w - 0.5, 1e-12) / median) / self.sigma)
            hi = np.where(w >= self.cap, np.inf, np.log((w + 0.5) / median) / self.sigma)
        lo, hi = np.clip(lo, -self.zmax, self.zmax), np.clip(hi, -self.zmax, self.zmax)
        p = np.maximum(_norm_cdf(hi) - _norm_cdf(lo), 0.0)
        p[0] = 0.0
        return p / p.sum()

    @lru_cache(maxsize=64)  # noqa: B019
    def _reach(self, month: date) -> np.ndarray:
        """Registration weight (weekday factors) behind the month's referrals after w days, w = 0..cap:
        none before the run's start."""
        reach = np.zeros(self.cap + 1)
        for t in _days(month, _month_end(month)):
            for k in range(1, self.cap + 1):
                reg = t - timedelta(days=k)
                if reg >= self.start:
                    reach[k] += self.weekday[reg.weekday()]
        return reach

    def median_wait(self, code: str, month: date) -> float | None:
        """The median wait of the general queue's children referred in the month: waits longer
        than the time since the run's start have no registration in the loaded history."""
        reach = self._reach(month)
        mix = np.zeros(self.cap + 1)
        for region, share in self.world.share_of(code).items():
            mix += share * self.pmf(float(self.medians[self.world.regions[region]["prefix"]]))
        mix *= reach
        if mix.sum() <= 0:
            return None
        cdf = np.cumsum(mix) / mix.sum()
        return float(np.argmax(cdf >= 0.5))

    @lru_cache(maxsize=64)  # noqa: B019
    def _delay_cdf(self, median: float) -> np.ndarray:
        """CDF of registration -> enrolment in days: the wait, then 1..10 days (a Sunday moves
        to Monday: taken as 1 day more with probability 1/7)."""
        lo, hi = self.enrol
        e = np.zeros(hi + 2)
        e[lo:hi + 1] += 6 / 7 / (hi - lo + 1)
        e[lo + 1:hi + 2] += 1 / 7 / (hi - lo + 1)
        return np.cumsum(np.convolve(self.pmf(median), e))

    def placed_share(self, code: str, month: date) -> float | None:
        end = _month_end(month)
        regs = _days(self.start, end)
        if not regs:
            return None
        weights = np.array([self.weekday[d.weekday()] for d in regs])
        elapsed = np.array([(end - d).days for d in regs])
        total = 0.0
        for region, share in self.world.share_of(code).items():
            median = float(self.medians[self.world.regions[region]["prefix"]])
            for priority, p in self.priority_p.items():
                cdf = self._delay_cdf(median * (1.0 if priority == "none" else self.priority_factor))
                done = np.where(elapsed >= cdf.size, 1.0, cdf[np.minimum(elapsed, cdf.size - 1)])
                total += share * p * float((weights * done).sum())
        return self.placed * total / float(weights.sum())


def _edu_02(world: World, row: dict) -> Expect | None:
    queue = _cached(world, _Queue)
    if not world.share_of(row["region_code"]):
        return None
    period = row["period_start"]
    value = queue.median_wait(row["region_code"], period)
    baseline = queue.median_wait(row["region_code"], _add_months(period, -12))
    if value is None:
        return None
    change = value / baseline - 1 if baseline else None
    # the same planted medians every month: only the loaded history's start (waits longer than
    # the time since it are not seen) can make a month's expected median differ from its baseline's
    return Expect(value=value, change=change, planted_change=baseline is None or value != baseline)


def _edu_03(world: World, row: dict) -> Expect | None:
    queue = _cached(world, _Queue)
    if not world.share_of(row["region_code"]):
        return None
    period = row["period_start"]
    value = queue.placed_share(row["region_code"], period)
    baseline = queue.placed_share(row["region_code"], _add_months(period, -12))
    if value is None:
        return None
    return Expect(value=value, change=value / baseline - 1 if baseline else None, planted_change=True)


# --- health ----------------------------------------------------------------------------------------


def _hlt_share(key: str):
    def expect(world: World, row: dict) -> Expect | None:
        eff = world.feed("health/fhir_bulk")["effects"][key]
        change_day = date.fromisoformat(eff["change_date"])

        def share(window):  # before/after the change date, by the share of the window's days
            days = _days(*window)
            after = sum(d >= change_day for d in days) / len(days)
            return eff["before"] * (1 - after) + eff["after"] * after

        window, base = _windows(row)
        value, baseline = share(window), share(base)
        return Expect(value=value, change=value / baseline - 1, planted_change=value != baseline)

    return expect


def _hlt_02(world: World, row: dict) -> Expect | None:
    lead = world.feed("health/fhir_bulk")["effects"]["HLT-02_booking_to_visit_days"]
    return Expect(value=float(lead["median"]), change=0.0, planted_change=False)


def _hlt_04(world: World, row: dict) -> Expect | None:
    eff = world.feed("health/fhir_bulk")["effects"]["HLT-04_immunizations"]
    weekday = np.asarray(eff["weekday_factors_mon_to_sun"], dtype=float)
    weekday /= weekday.mean()
    month = np.asarray(eff["month_factors"], dtype=float)
    month /= month.mean()

    def per_1000(window):  # the register population cancels: it is the regions seed's
        return eff["completed_per_1000_per_year"] / 365.25 * float(sum(
            weekday[d.weekday()] * month[d.month - 1] for d in _days(*window)))

    window, base = _windows(row)
    value, baseline = per_1000(window), per_1000(base)
    return Expect(value=value, change=value / baseline - 1, planted_change=False)


# --- transport -------------------------------------------------------------------------------------

_OPERATOR_PREFIX = {"almaty": "75", "astana": "71", "shymkent": "79"}


def _operator_codes(world: World) -> dict[str, str]:
    """Operator key -> region code (the fare feed states each operator's KATO prefix)."""
    operators = (world.truth.get("transport/fare_validations") or {}).get("operators") or {}
    prefixes = {k: v["kato_prefix"] for k, v in operators.items()} or _OPERATOR_PREFIX
    return {k: world.code_of_prefix[p] for k, p in prefixes.items() if p in world.code_of_prefix}


def _trn_01(world: World, row: dict) -> Expect | None:
    operators = world.feed("transport/gtfs_rt_trip_updates")["effects"]["on_time_performance"]["operators"]
    codes = _operator_codes(world)
    share = {codes[k]: v["on_time_share"] for k, v in operators.items() if k in codes}
    code = row["region_code"]
    if code in share:
        return Expect(value=share[code], change=0.0, planted_change=False)
    if code != "KZ":
        return None

    def pooled(period):  # the cities' shares weighted by their observed arrivals
        rows = [world.index.get(("TRN-01", c, period)) for c in share]
        if any(r is None or not r["denominator"] for r in rows):
            return None
        return sum(share[r["region_code"]] * r["denominator"] for r in rows) / sum(r["denominator"] for r in rows)

    value, baseline = pooled(row["period_start"]), pooled(_add_months(row["period_start"], -12))
    if value is None:
        return None
    return Expect(value=value, change=value / baseline - 1 if baseline else None, planted_change=False)


def _trn_02(world: World, row: dict) -> Expect | None:
    gt = world.feed("transport/fare_validations")
    rule = gt["effects"]["boardings_per_capita"]
    factors, growth = rule["day_factors"], rule["growth_per_year"]
    reference = date.fromisoformat(rule["reference_date"])
    is_holiday = _module_constant("_transit", "is_holiday")
    codes = _operator_codes(world)
    served = {codes[k]: v["taps_per_weekday_at_scale_1"] for k, v in gt["operators"].items() if k in codes}
    code = row["region_code"]
    places = list(served) if code == "KZ" else [code] if code in served else []
    if not places:
        return None

    def per_capita(window):  # taps over the population: the run's scale cancels
        days = 0.0
        for d in _days(*window):
            f = factors["sunday_and_holidays"] if d.weekday() == 6 or is_holiday(d) else (
                factors["saturday"] if d.weekday() == 5 else factors["weekday"])
            days += f * (1.0 + growth) ** ((d - reference).days / 365.25)
        return days * sum(served[p] for p in places) / sum(world.regions[p]["population"] for p in places)

    window, base = _windows(row)
    value, baseline = per_capita(window), per_capita(base)
    return Expect(value=value, change=value / baseline - 1, planted_change=True)


# --- programme -------------------------------------------------------------------------------------


def _gov_01(world: World, row: dict) -> Expect | None:
    gt = world.feed("programme/public_services")
    rule = gt["effects"]["gov_01_share_automated"]
    services = gt["services"]
    anchor = date.fromisoformat(rule["anchor_date"])
    cap = round(rule["ceiling"] * services)
    since = re.search(r"evenly from (\d{4}-\d{2}-\d{2})", rule["rule"])

    def share(month):
        m = _months_between(anchor, month)
        at = rule["services_automated_at_anchor"]
        if m >= 0:
            return min(at + rule["services_automated_per_month_after_anchor"] * m, cap) / services
        first = date.fromisoformat(since.group(1)) if since else date(2016, 1, 1)
        return at * ((_month_end(month) - first).days + 1) / ((_month_end(anchor) - first).days + 1) / services

    period = row["period_start"]
    value, baseline = share(period), share(_add_months(period, -12))
    note = "" if _months_between(anchor, period) >= 12 else "~ baseline before the anchor: automations even by day"
    return Expect(value=value, change=value / baseline - 1 if baseline else None, planted_change=value != baseline,
                  note=note)


def _prg_01(world: World, row: dict) -> Expect | None:
    share = world.feed("programme/events")["effects"]["prg_01_on_schedule"]["on_schedule_share"]
    return Expect(value=share, change=0.0, planted_change=False)


def _alatau(world: World) -> str | None:
    return next((code for code, t in world.towns.items() if t["name"] == "Alatau City"), None)


def _ala_01(world: World, row: dict) -> Expect | None:
    if row["region_code"] != _alatau(world):
        return None
    eff = world.feed("programme/alatau_workforce")["effects"]["ala_01_citizens_in_top_jobs"]
    anchor = date.fromisoformat(eff["anchor_date"])

    def share(month):
        end = _month_end(month)
        stated = eff.get("values_at_month_ends", {}).get(end.isoformat())
        if stated is not None:
            return stated
        return min(eff["share_at_anchor"] + eff["monthly_gain"] * (end - anchor).days / (365.25 / 12), eff["cap"])

    period = row["period_start"]
    value, baseline = share(period), share(_add_months(period, -12))
    return Expect(value=value, change=value / baseline - 1, planted_change=True)


def _ala_02(world: World, row: dict) -> Expect | None:
    """The share, give or take the running projects' mix: a month's value is the plan-to-date
    weighted mean of share x (1 + d) over the projects running, d ~ Uniform(-a, a) centred over
    all of them, so it strays from the share by share x sd(d) / sqrt(n_eff) (one SE), n_eff =
    (sum w)^2 / sum w^2 of the month-end snapshot's plan-to-date weights; the 95% band is 1.96 SE.
    Without the snapshot's weights: the ground truth's tolerance_note (~0.03)."""
    if row["region_code"] != _alatau(world):
        return None
    rule = world.feed("programme/alatau_projects")["effects"]["ala_02_disbursed_vs_plan"]
    spread = re.search(r"Uniform\(-([\d.]+), ", rule.get("project_factor", ""))
    n_eff = world.extra.get("ala_02_n_eff", {}).get(row["period_start"])
    if spread and n_eff:
        tol = Z95 * rule["share"] * 2 * float(spread.group(1)) / math.sqrt(12) / math.sqrt(n_eff)
        note = f"n_eff {n_eff:.1f}"
    else:
        stated = re.search(r"within ~([\d.]+)", rule.get("tolerance_note", ""))
        tol, note = float(stated.group(1)) if stated else 0.03, "the ground truth's tolerance_note"
    return Expect(value=rule["share"], value_tol=tol, planted_change=False, note=note)


# --- the KPIs and how each follows from the ground truth -------------------------------------------

EXPECT = {
    "SAF-01": _saf_01, "SAF-02": _saf_02, "SAF-03": _saf_03,
    "HCS-01": _hcs_01, "HCS-02": _hcs_02, "HCS-03": _hcs_03,
    "EDU-01": _edu_01, "EDU-02": _edu_02, "EDU-03": _edu_03,
    "HLT-01": _hlt_share("HLT-01_online_share"), "HLT-02": _hlt_02,
    "HLT-03": _hlt_share("HLT-03_no_show_rate"), "HLT-04": _hlt_04,
    "TRN-01": _trn_01, "TRN-02": _trn_02,
    "GOV-01": _gov_01, "PRG-01": _prg_01, "ALA-01": _ala_01, "ALA-02": _ala_02,
}  # fmt: skip

FEED_OF = {
    "SAF-01": "safety/road_accidents", "SAF-02": "safety/road_accidents", "SAF-03": "safety/sergek_violations",
    "HCS-01": "housing/street_lighting", "HCS-02": "housing/utility_payments", "HCS-03": "housing/open311_requests",
    "EDU-01": "education/school_applications", "EDU-02": "education/kindergarten_queue",
    "EDU-03": "education/kindergarten_queue", "HLT-01": "health/fhir_bulk", "HLT-02": "health/fhir_bulk",
    "HLT-03": "health/fhir_bulk", "HLT-04": "health/fhir_bulk", "TRN-01": "transport/gtfs_rt_trip_updates",
    "TRN-02": "transport/fare_validations", "GOV-01": "programme/public_services", "PRG-01": "programme/events",
    "ALA-01": "programme/alatau_workforce", "ALA-02": "programme/alatau_projects",
}  # fmt: skip

# How each expectation is derived; "~" marks what is approximate, and how far.
DERIVATION = {
    "SAF-01": "sergek_astana (rollout_date, relative_change) x winter uplift x weekday factors, summed over the "
              "window's days (a window partly before the rollout mixes its days); national_per_day / the regions' "
              "population x 100,000 (the run's scale cancels); less the late records not delivered by the run's "
              "end. Exact.",
    "SAF-02": "SAF-01's accidents x deaths_per_accident. Exact in expectation; ~ deaths are 1 + Poisson per fatal "
              "accident (variance ~1.3 x a Poisson count's), so the Poisson interval is ~13% too narrow.",
    "SAF-03": "~ saf_03_violations_per_active_camera_day x the month's mean weekday factor: which cameras are active "
              "(and how busy each is: gamma per camera) is not in the ground truth. Information only.",
    "HCS-01": "led_retrofit.relative_change for every retrofitted cabinet's month (the baseline is the model's "
              "pre-retrofit kWh at this month's burning hours). The kWh level needs each cabinet's lamps: "
              "not derivable, change only.",
    "HCS-02": "automated_payments: the pilot share's line from anchor to target, averaged over the month's "
              "payment days (day-of-month weights x weekday factors). Exact.",
    "HCS-03": "time_to_close.by_service: median of the clipped lognormals mixed by the requests each service "
              "creates (per_day x month multiplier x weekend factor, never-closed left out), counted where they "
              "close in the window. Exact up to the day: a request is taken as created at midday.",
    "EDU-01": "EDU-01.regional_share (the season's share, national 0.9 by population), split over the season by "
              "each channel's day profile (opening peak, weekday factors, August rush): a month's share moves with "
              "it. Exact.",
    "EDU-02": "EDU-02.median_wait_days (the general queue), the wait's discrete law (lognormal, cut, rounded, "
              "capped, as stated) mixed by population for KZ; referrals whose registration precedes the run's "
              "start are not in the loaded history, so early months see only the shorter waits. Exact.",
    "EDU-03": "EDU-03.placed_share x P(wait + enrolment delay <= the time left to the month's end), over every "
              "registration day since the run's start (cumulative), by region and priority. Exact up to the "
              "Sunday rule (taken as 1 day more with probability 1/7).",
    "HLT-01": "HLT-01_online_share: before / after the change date. Exact (the change falls on a month's first day).",
    "HLT-02": "HLT-02_booking_to_visit_days.median (the lead-time law's cdf is 0.35 below it and 0.62 at it). Exact.",
    "HLT-03": "HLT-03_no_show_rate: before / after the change date. Exact.",
    "HLT-04": "HLT-04_immunizations: completed_per_1000_per_year / 365.25 x weekday x month factors (both "
              "normalised to mean 1), summed over the month. Exact.",
    "TRN-01": "on_time_performance.operators[city].on_time_share; KZ: the cities' shares weighted by the mart's "
              "arrivals. Exact in expectation; ~ arrivals within a trip are correlated (a random walk of delays), "
              "so the Wilson interval, which counts them as independent, is too narrow (rms z below says how far).",
    "TRN-02": "operators[city].taps_per_weekday_at_scale_1 x day factors (weekday, Saturday, Sunday and holidays) "
              "x growth_per_year from reference_date / the city's population (the scale cancels). Holidays: the "
              "simulator's fixed-date calendar (_transit.HOLIDAYS: not in the ground truth). ~ a card taps "
              "1 + Poisson(1.2) times, so taps vary ~2.7x a Poisson count: the Poisson interval is ~40% too narrow.",
    "GOV-01": "gov_01_share_automated: (services_automated_at_anchor + per_month x months since the anchor) / "
              "services, capped at the ceiling. Exact.",
    "PRG-01": "prg_01_on_schedule.on_schedule_share: which events run late is random, so among the events due the "
              "on-time count is hypergeometric around it (the Wilson interval is conservative).",
    "ALA-01": "ala_01_citizens_in_top_jobs.values_at_month_ends (the rule beyond them). Exact in expectation.",
    "ALA-02": "ala_02_disbursed_vs_plan.share, give or take the running projects' mix: each project's factor is "
              "share x (1 + d), d ~ the stated Uniform, so a month's value strays from the share by share x sd(d) / "
              "sqrt(n_eff) (n_eff from the month-end snapshot's plan-to-date weights); the interval is exact (zero "
              "width), so the check is |actual - share| <= 1.96 of those. No change is planted; none checked.",
}  # fmt: skip


def _module_constant(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(f"qala_devkit.simulate.{module}"), name)


def _cached(world: World, cls):
    cache = world.__dict__.setdefault("_models", {})
    if cls not in cache:
        cache[cls] = cls(world)
    return cache[cls]


# --- the comparison --------------------------------------------------------------------------------


@dataclass
class Check:
    kpi: str
    place: str
    period: date
    what: str  # "value" or "change"
    expected: float
    tol: float
    estimate: float
    lower: float
    upper: float
    gate: bool
    latest: bool

    @property
    def inside(self) -> bool:
        return self.lower - 1e-12 <= self.expected + self.tol and self.expected - self.tol <= self.upper + 1e-12

    @property
    def deviation(self) -> float | None:
        """(mart - expected) in standard errors, the half-width toward the expectation read as
        1.96 of them: about N(0, 1) over many checks when the intervals are calibrated."""
        if self.upper - self.lower <= 0:
            return Z95 * (self.estimate - self.expected) / self.tol if self.tol > 0 else None
        half = self.upper - self.estimate if self.expected >= self.estimate else self.estimate - self.lower
        return Z95 * (self.estimate - self.expected) / half if 0 < half < math.inf else None

    @property
    def z(self) -> float:
        """How far outside, in standard errors: the interval's half-width on that side is 1.96."""
        if self.inside:
            return 0.0
        if self.upper - self.lower <= 0 and self.tol > 0:  # an exact value: the tolerance is the 95% band
            return Z95 * abs(self.estimate - self.expected) / self.tol
        if self.expected - self.tol > self.upper:
            gap, half = self.expected - self.tol - self.estimate, self.upper - self.estimate
        else:
            gap, half = self.estimate - (self.expected + self.tol), self.estimate - self.lower
        return Z95 * gap / half if half > 0 else math.inf


@dataclass
class Result:
    checks: list[Check]
    rows: dict  # (kpi, place, period) -> (row, Expect)
    constant: dict  # kpi -> (decided rows, rows claiming a change)
    failures: list[str]
    unmapped: dict  # kpi -> why
    family_z: float


def compare(world: World, rows: list[dict]) -> Result:
    latest = {}
    for r in rows:
        key = (r["kpi_id"], r["region_code"])
        latest[key] = max(latest.get(key, r["period_start"]), r["period_start"])
    checks, expected, unmapped = [], {}, {}
    for r in sorted(rows, key=lambda r: (r["kpi_id"], r["region_code"], r["period_start"])):
        kpi = r["kpi_id"]
        if kpi not in EXPECT:
            unmapped[kpi] = "no planted effect in the ground truth maps to this KPI"
            continue
        try:
            e = EXPECT[kpi](world, r)
        except MissingTruth as missing:
            unmapped[kpi] = f"the ground truth has no {missing.args[0]}"
            continue
        if e is None:
            continue
        expected[(kpi, r["region_code"], r["period_start"])] = (r, e)
        if r["suppressed"]:
            continue
        is_latest = r["period_start"] == latest[(kpi, r["region_code"])]
        if e.value is not None and r.get("actual_lower") is not None and r.get("actual") is not None:
            checks.append(Check(kpi, r["region_code"], r["period_start"], "value", e.value, e.value_tol,
                                r["actual"], r["actual_lower"], r["actual_upper"], e.gate, is_latest))
        if (e.change is not None and r.get("change_lower") is not None and r.get("change_vs_baseline") is not None
                and not math.isnan(r["change_lower"])):
            checks.append(Check(kpi, r["region_code"], r["period_start"], "change", e.change, e.change_tol,
                                r["change_vs_baseline"], r["change_lower"], r["change_upper"], e.gate, is_latest))
    for kpi in sorted({r["kpi_id"] for r in rows}):
        if kpi in EXPECT and kpi not in unmapped and not any(k[0] == kpi for k in expected):
            unmapped[kpi] = "no row of a place the ground truth plants an effect in"
    gated = [c for c in checks if c.gate and c.latest]
    family_z = NormalDist().inv_cdf(1 - FAMILY_LEVEL / (2 * max(1, len(gated))))
    failures = []
    for c in gated:
        if c.z > family_z:
            failures.append(f"{c.kpi} {world.name(c.place)} {c.period:%Y-%m}: the planted {c.what} "
                            f"{_show(c.kpi, c.what, c.expected)} lies {c.z:.1f} standard errors outside "
                            f"[{_show(c.kpi, c.what, c.lower)}, {_show(c.kpi, c.what, c.upper)}] "
                            f"(family-wise bound {family_z:.2f})")
    for kpi, group in _by_kpi(gated).items():
        misses = sum(not c.inside for c in group)
        p = binomial_tail(misses, len(group))
        if p < TEST_LEVEL:
            failures.append(f"{kpi}: {misses} of its {len(group)} latest-period checks outside their 95% "
                            f"intervals (P = {p:.2g} at 95% coverage)")
    constant = constant_rates(world, rows, expected)
    for kpi, (decided, claims) in constant.items():
        p = binomial_tail(len(claims), len(decided))
        if decided and p < TEST_LEVEL:
            failures.append(f"{kpi}: constant truth, yet {len(claims)} of {len(decided)} decided rows claim a "
                            f"change (on-track/at-risk/off-track) (P = {p:.2g} at 5%)")
    return Result(checks, expected, constant, failures, unmapped, family_z)


def _by_kpi(checks: list[Check]) -> dict[str, list[Check]]:
    out = defaultdict(list)
    for c in checks:
        out[c.kpi].append(c)
    return dict(sorted(out.items()))


def constant_rates(world: World, rows: list[dict], expected: dict) -> dict[str, tuple[list, list]]:
    """Per KPI whose status is decided by the change vs baseline: its decided rows whose truth is
    constant (thinned to a row a year for rolling windows), and those that claim a change."""
    latest = {}
    for r in rows:
        latest[r["kpi_id"]] = max(latest.get(r["kpi_id"], r["period_start"]), r["period_start"])
    out = {}
    for (kpi, place, period), (r, e) in sorted(expected.items()):
        if r.get("target_kind") not in ("none", "change_vs_baseline") or r.get("direction") == "monitoring":
            continue
        if e.planted_change is not False:
            continue
        window = r.get("window_months") or 1
        if window > 1 and _months_between(period, latest[kpi]) % window:
            continue
        decided, claims = out.setdefault(kpi, ([], []))
        if r["status"] in DECIDED:
            decided.append(r)
            if r["status"] in CLAIMS_CHANGE:
                claims.append(r)
    return out


def _show(kpi: str, what: str, x: float | None) -> str:
    return _pct(x) if what == "change" else _fmt(x)


# --- reading the warehouse -------------------------------------------------------------------------


def load(root: Path, truth_path: Path | None = None) -> tuple[World, list[dict]]:
    truth_path = truth_path or settings.simulator_dir(root) / "ground_truth.json"
    truth = json.loads(Path(truth_path).read_text(encoding="utf-8"))
    con = lake.connect(root, read_only=True)
    try:
        rows = lake.rows(con, """
            select v.*, c.target_kind as catalogue_target_kind, c.direction as catalogue_direction,
                   c.interval_method as catalogue_interval_method
            from marts.kpi_values as v join reference.kpi_catalogue as c using (kpi_id)""")
        places = "select kato_code, kato_prefix, population, name_en from reference."
        regions = {r["kato_code"]: _place(r) for r in lake.rows(con, places + "regions where kind in ('region', 'city')")}
        towns = {r["kato_code"]: _place(r) for r in lake.rows(con, places + "towns")}
        n_eff = _ala_02_weights(con)
    finally:
        con.close()
    for r in rows:
        r["target_kind"] = r.get("catalogue_target_kind")
        r["direction"] = r.get("catalogue_direction")
        r.setdefault("window_start", None)
    world = World(truth, regions, towns, rows)
    world.extra["ala_02_n_eff"] = n_eff
    return world, rows


def _place(r: dict) -> dict:
    return {"prefix": r["kato_prefix"], "population": int(r["population"]), "name": r["name_en"]}


def _ala_02_weights(con) -> dict[date, float]:
    """Month -> n_eff of the month-end project snapshot's plan-to-date weights (ALA-02's spread)."""
    try:
        found = lake.rows(con, """
            with days as (select date_trunc('month', _landing_date)::date as month, max(_landing_date) as day
                          from staging.stg_programme__alatau_projects group by 1)
            select d.month, sum(p.planned_to_date_kzt)::double ^ 2 / sum(p.planned_to_date_kzt::double ^ 2) as n_eff
            from days as d join staging.stg_programme__alatau_projects as p on p._landing_date = d.day
            where p.planned_to_date_kzt > 0 group by d.month""")
    except Exception:  # noqa: BLE001 (a warehouse without the feed: the stated tolerance is used)
        return {}
    return {r["month"]: r["n_eff"] for r in found}


# --- the report ------------------------------------------------------------------------------------


def _flatten(value, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict) and value and not all(isinstance(v, (int, float, str, bool, type(None)))
                                                      for v in value.values()):
        out = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    text = json.dumps(value, ensure_ascii=False)
    if prefix.startswith("effects."):  # the planted effects in full
        return [(prefix, text)]
    if isinstance(value, list) and len(value) > 8:
        text = "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in value[:6]) + f", ... ({len(value)} values)]"
    if len(text) > 150:
        text = text[:147] + "..."
    return [(prefix, text)]


def report_truth(truth: dict) -> list[str]:
    lines = []
    for feed in sorted(truth):
        gt = truth[feed]
        run = gt.get("run", {})
        lines.append(f"{feed}  (run {run.get('start')} .. {run.get('end')}, scale {run.get('scale')}, "
                     f"seed {run.get('seed')})")
        for key, text in _flatten({k: v for k, v in gt.items() if k not in ("run", "defects")}):
            lines.append(f"    {key} = {text}")
    return lines


def _row_line(world: World, kpi: str, place: str, period: date, r: dict, e: Expect) -> str:
    window = (f"{r['window_start']:%Y-%m}..{period:%Y-%m}" if r.get("window_start") and r["window_start"] != period
              else f"{period:%Y-%m}")
    if r["suppressed"]:
        return f"{kpi:7}{world.name(place)[:18]:19}{window:17} suppressed (small count)"
    value = "-"
    if e.value is not None:
        tol = f"±{_fmt(e.value_tol)}" if e.value_tol else ""
        lo, hi = r.get("actual_lower"), r.get("actual_upper")
        inside = "" if lo is None else " in " if (lo - 1e-12 <= e.value + e.value_tol
                                                 and e.value - e.value_tol <= hi + 1e-12) else " OUT"
        value = f"{_fmt(e.value)}{tol} vs {_fmt(r['actual'])} [{_fmt(lo)}, {_fmt(hi)}]{inside}"
    change = "-"
    if e.change is not None and r.get("change_vs_baseline") is not None:
        lo, hi = r.get("change_lower"), r.get("change_upper")
        inside = "" if lo is None else " in " if lo - 1e-12 <= e.change <= hi + 1e-12 else " OUT"
        change = f"{_pct(e.change)} vs {_pct(r['change_vs_baseline'])} [{_pct(lo)}, {_pct(hi)}]{inside}"
    status = r.get("status") or "-"
    info = ("" if e.gate else "  (information only)") + (f"  ({e.note})" if e.note else "")
    return f"{kpi:7}{world.name(place)[:18]:19}{window:17} {value:52} {change:40} {status}{info}"


def report(world: World, result: Result, show_all: bool = False) -> list[str]:
    lines = ["", "== KPI <- planted effect (how the expected value follows from the ground truth; ~ = approximate)"]
    kpis = sorted({k for k, _, _ in result.rows} | set(result.unmapped))
    for kpi in kpis:
        if kpi in result.unmapped:
            lines.append(f"{kpi:7}not checked: {result.unmapped[kpi]}")
        else:
            lines.append(f"{kpi:7}{FEED_OF[kpi]}: {DERIVATION[kpi]}")
    header = (f"{'KPI':7}{'place':19}{'window':17} {'value: expected vs mart [95% interval]':52} "
              f"{'change: expected vs mart [95% interval]':40} status")
    latest = {}
    for kpi, place, period in result.rows:
        latest[(kpi, place)] = max(latest.get((kpi, place), period), period)
    lines += ["", "== latest period of each KPI and place (what the scorecard shows)", header]
    for (kpi, place), period in sorted(latest.items(), key=lambda kv: (kv[0][0], kv[0][1] != "KZ", kv[0][1])):
        r, e = result.rows[(kpi, place, period)]
        lines.append(_row_line(world, kpi, place, period, r, e))
    if show_all:
        lines += ["", "== every period", header]
        for (kpi, place, period), (r, e) in sorted(result.rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "KZ",
                                                                                        kv[0][1], kv[0][2])):
            lines.append(_row_line(world, kpi, place, period, r, e))
    lines += ["", "== every period: expectations outside their 95% intervals (about 5% by chance)",
              "(rms z: root mean square of (mart - expected) in standard errors, ~1 when the intervals are calibrated)",
              f"{'KPI':7}{'checks':>7}{'outside':>8}{'by chance':>10}{'P(X>=k)':>10}{'rms z':>7}   "
              "latest period: checks, outside"]
    by_kpi = _by_kpi(result.checks)
    for kpi, group in by_kpi.items():
        gated = [c for c in group if c.gate]
        misses = [c for c in gated if not c.inside]
        now = [c for c in gated if c.latest]
        p = binomial_tail(len(misses), len(gated)) if gated else 1.0
        flag = "  <- more than chance" if gated and p < TEST_LEVEL else ""
        info = "  (information only)" if not gated else ""
        zs = [z for z in (c.deviation for c in group) if z is not None]
        rms = f"{math.sqrt(sum(z * z for z in zs) / len(zs)):7.2f}" if zs else f"{'-':>7}"
        lines.append(f"{kpi:7}{len(gated):7}{len(misses):8}{ALPHA * len(gated):10.1f}{p:10.2g}{rms}   "
                     f"{len(now)}, {sum(not c.inside for c in now)}{flag}{info}")
    outside = [c for c in result.checks if not c.inside]
    if outside:
        lines.append("  outside:")
        for c in sorted(outside, key=lambda c: (c.kpi, c.place, c.period, c.what)):
            lines.append(f"    {c.kpi} {world.name(c.place)} {c.period:%Y-%m} {c.what}: expected "
                         f"{_show(c.kpi, c.what, c.expected)}{f' ±{_fmt(c.tol)}' if c.tol else ''}, mart "
                         f"{_show(c.kpi, c.what, c.estimate)} [{_show(c.kpi, c.what, c.lower)}, "
                         f"{_show(c.kpi, c.what, c.upper)}] ({c.z:.1f} SE){'' if c.gate else ' (information only)'}"
                         f"{'  latest' if c.latest else ''}")
    lines += ["", "== constant truth (no planted change between window and baseline): rows whose status claims a "
                  "change (on-track, at-risk, off-track) among the decided rows; 95% allows 5%",
              f"{'KPI':7}{'decided':>8}{'claims':>7}{'rate':>7}{'P(X>=k)':>10}"]
    for kpi, (decided, claims) in sorted(result.constant.items()):
        p = binomial_tail(len(claims), len(decided))
        rate = len(claims) / len(decided) if decided else 0.0
        flag = "  <- more than 95% allows" if decided and p < TEST_LEVEL else ""
        lines.append(f"{kpi:7}{len(decided):8}{len(claims):7}{rate:7.1%}{p:10.2g}{flag}")
        for r in claims:
            lines.append(f"    {world.name(r['region_code'])} {r['period_start']:%Y-%m}: {r['status']} (change "
                         f"{_pct(r['change_vs_baseline'])} [{_pct(r['change_lower'])}, {_pct(r['change_upper'])}])")
    gated_latest = [c for c in result.checks if c.gate and c.latest]
    lines += ["", f"== verdict: {len(gated_latest)} latest-period checks, "
                  f"{sum(not c.inside for c in gated_latest)} outside their 95% intervals "
                  f"({ALPHA * len(gated_latest):.1f} expected by chance); family-wise bound "
                  f"{result.family_z:.2f} standard errors"]
    if result.failures:
        lines += [f"FAIL  {f}" for f in result.failures]
    else:
        lines.append("OK: every planted effect of the latest period is within its interval (family-wise), and no "
                     "constant KPI claims a change more often than 95% allows")
    return lines


def check(root: Path, truth_path: Path | None = None) -> tuple[World, Result]:
    world, rows = load(root, truth_path)
    return world, compare(world, rows)


def main(root: Path | None = None, truth_path: Path | None = None, show_all: bool = False) -> int:
    """`qala effects`: print the ground truth, the expectations against the mart; exit 1 on a failure."""
    root = Path(root or settings.warehouse_root())
    truth_path = Path(truth_path) if truth_path else settings.simulator_dir(root) / "ground_truth.json"
    if not truth_path.exists():
        print(f"no ground truth at {truth_path}: `qala effects` checks a simulated warehouse (make run)")
        return 2
    import duckdb

    try:
        with lake.explained(root):
            world, result = check(root, truth_path)
    except duckdb.CatalogException as missing:
        print(f"no KPI tables to check in {root} ({str(missing).splitlines()[0]}): build the KPIs first (make run)")
        return 2
    print(f"qala effects: the simulator's planted effects against marts.kpi_values, warehouse {root}")
    print(f"ground truth: {truth_path}\n\n== the ground truth: every feed module's ground_truth()")
    print("\n".join(report_truth(world.truth)))
    print("\n".join(report(world, result, show_all)))
    return 1 if result.failures else 0
