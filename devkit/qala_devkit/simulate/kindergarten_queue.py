"""The electronic kindergarten queue: one CSV of queue events per region per day.

Source system: the regional registers of the queue for state kindergarten places. Parents
register a child (online or at the akimat), the register issues a referral (направление) to a
kindergarten when a place comes up, the kindergarten enrols the child a few days later; a child
can be withdrawn from the queue (moved away, found another place, or declined the referral).
Each region's register exports the day's events nightly.

File layout: `landing/education/kindergarten_queue/<YYYY-MM-DD>/queue_events_<KK>_<YYYY-MM-DD>.csv`,
`KK` the region's 2-digit KATO prefix, one file per region every day (a header alone when
nothing happened), header
`event_id,child_iin,child_birth_date,kato_code,event_type,priority_category,event_at,
kindergarten_id,queue_number,child_name`:
- `event_type`: registered, referred, enrolled, withdrawn; `event_at` local time
  (`YYYY-MM-DD HH:MM:SS`); `event_id` = the registration's number (`KQ-<day>-<KK>-<n>`) and a
  letter for the event (R, F, E, W), so a child's events share their stem;
- `priority_category`: none, large_family, low_income, disability, military_family, orphan,
  disabled_parent (priority queues are served first);
- `kindergarten_id` (`DO-<KK>-<n>`) on referred and enrolled events and on a withdrawal after a
  referral; empty otherwise;
- `queue_number`: the child's position in its region's queue when registered (registered events
  only); `child_name` (PII, like `child_iin`): surname, given name, patronymic, last so that the
  columns before it keep the contract's order (the register exports the name; it also makes the
  old registers' Windows-1251 files tell from UTF-8).

Flows: a child is registered aged 0-5 (55% in its first year, 30% aged 1-3, 15% aged 3-5) and
referred after a wait drawn from a lognormal (sigma 0.45, cut at +-2 sigma, so never more than
240 days) whose median depends on the region, halved for priority categories; 80% of registered
children are placed (referred, then enrolled 1-10 days later, never on a Sunday), 4% are referred
but decline (withdrawn 1-10 days after the referral), 16% are withdrawn before any referral
(at a uniform point of their wait). A child is at most ~5.7 years old at any event.

Cross-day entities: every event of a child comes from the stream of the day it was registered
(its whole history is drawn then), so the export of day d re-derives the registrations of the
previous 256 days (cached) and picks the events that happen, or arrive late, on d: any day
regenerates alone to the same bytes.

Volumes at scale 1.0: ~900 registrations on a weekday (about 300,000 a year: most of a birth
cohort of ~390,000 is registered), ~2,300 events a day, split by region in proportion to
population; ~11,000 kindergartens and pre-school mini-centres (state and private, 2023), at
least one per region.

Planted effects:
- EDU-02: the median wait from registration to referral, in days, for children without priority
  (`MEDIAN_WAIT_DAYS`: 25 in North Kazakhstan to 95 in Almaty city; illustrative values, longest
  where the cities grow fastest, not published figures); priority categories wait half as long;
- EDU-03: 80% of the children registered in the queue are placed (enrolled).

Realistic features (logged at any defect rate): the registers of West Kazakhstan, Kostanay and
North Kazakhstan regions are older systems writing Windows-1251 (Kazakh letters folded to Russian
ones) (`windows_1251`); 1.5% of events reach the export 1-5 days late (`late_record`, column
`event_at`).

Defects at the run's defect rate, each logged with its file and line: IINs with a wrong check
digit (`invalid_iin`), an empty `child_iin` or `kato_code` (`missing_required`), a birth date after
the event or 9 years before it (`impossible_value`), rows sent twice (`duplicate_record`), a
file cut off mid-row (`truncated_file`).

Everything per record is vectorised (numpy draws -> polars frames -> write_csv); the only loop is
over the days of the look-back window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate.base import DayContext, RowDefects, by_region, to_windows_1251, truncate, write_atomic
from qala_devkit.simulate.people import people
from qala_devkit.simulate.world import load_regions, population_shares, rng_for

FEED = "education/kindergarten_queue"
DOMAIN, NAME = FEED.split("/")
COLUMNS = ("event_id", "child_iin", "child_birth_date", "kato_code", "event_type", "priority_category",
           "event_at", "kindergarten_id", "queue_number", "child_name")  # fmt: skip
EVENT_TYPES = ("registered", "referred", "enrolled", "withdrawn")
EVENT_LETTERS = ("R", "F", "E", "W")

REGISTRATIONS_AT_SCALE_1 = 900.0  # a weekday, nationally
WEEKDAY_FACTORS = (1.0, 1.0, 1.0, 1.0, 0.95, 0.7, 0.55)  # online registration is lighter at weekends
KINDERGARTENS_AT_SCALE_1 = 11_000

# Age at registration, in days: (share, youngest, oldest).
AGE_BANDS = ((0.55, 14, 365), (0.30, 366, 3 * 365), (0.15, 3 * 365 + 1, 5 * 365))
PRIORITIES = ("none", "large_family", "low_income", "disability", "military_family", "orphan",
              "disabled_parent")  # fmt: skip
PRIORITY_P = (0.83, 0.10, 0.03, 0.02, 0.01, 0.005, 0.005)

# EDU-02: median days from registration to referral, children without priority, by KATO prefix.
MEDIAN_WAIT_DAYS = (("10", 40), ("11", 35), ("15", 50), ("19", 65), ("23", 55), ("27", 40), ("31", 45),
                    ("33", 45), ("35", 35), ("39", 30), ("43", 45), ("47", 60), ("55", 30), ("59", 25),
                    ("61", 70), ("62", 30), ("63", 35), ("71", 90), ("75", 95), ("79", 80))  # fmt: skip
PRIORITY_WAIT_FACTOR = 0.5
WAIT_SIGMA = 0.45
WAIT_Z_MAX = 2.0
MAX_WAIT_DAYS = 240  # 95 days x exp(0.45 x 2.0) = 234: the longest wait, in Almaty city
# EDU-03 and the other outcomes of a registration.
PLACED_SHARE = 0.80
DECLINED_SHARE = 0.04  # referred, then withdrawn; the rest are withdrawn before a referral
ENROL_DAYS = 10
LATE_SHARE = 0.015
MAX_LATE_DAYS = 5
LOOKBACK = MAX_WAIT_DAYS + ENROL_DAYS + 1 + MAX_LATE_DAYS
LEGACY_REGIONS = ("27", "39", "59")  # registers that write Windows-1251
QUEUE_DEPTH = 0.6  # a new registration's position ~ registrations a day x median wait x this
PRIORITY_QUEUE_DEPTH = 0.2

REGISTRATION_HOURLY = (0.6, 0.3, 0.2, 0.2, 0.2, 0.4, 1.0, 2.0, 3.5, 4.5, 5.0, 5.0,
                       4.6, 4.6, 4.8, 4.6, 4.4, 4.2, 4.0, 4.0, 3.8, 3.2, 2.2, 1.2)  # fmt: skip
OFFICE_HOURS = (9, 18)


@dataclass(frozen=True)
class Params:
    """The planted effects, overridable (e.g. by a test) without editing the module."""

    median_wait_days: tuple[tuple[str, int], ...] = MEDIAN_WAIT_DAYS
    priority_wait_factor: float = PRIORITY_WAIT_FACTOR
    placed_share: float = PLACED_SHARE
    declined_share: float = DECLINED_SHARE


def generate_day(ctx: DayContext) -> int:
    """Write the day's regional files: every event that happens, or arrives late, on the day."""
    params = ctx.params or Params()
    today = ctx.day.toordinal()
    batches = [_registrations(ctx.seed, ctx.day - timedelta(days=k), ctx.scale, params)
               for k in range(LOOKBACK, -1, -1)]  # fmt: skip
    events = _render(_events_on(batches, today).sort("event_at", "event_id"))
    prefixes = [r.kato_prefix for r in load_regions()]
    paths = [ctx.folder() / f"queue_events_{prefix}_{ctx.day.isoformat()}.csv" for prefix in prefixes]
    parts = by_region(events, len(prefixes))
    if ctx.defect_rate > 0:
        parts = [_plant(ctx, part, path, prefix)
                 for part, path, prefix in zip(parts, paths, prefixes, strict=True)]  # fmt: skip
    whole = pl.concat(parts)
    late = (whole["event_at"].str.slice(0, 10) < ctx.day.isoformat()).to_numpy()
    header, rows = _split_csv(whole, [part.height for part in parts])
    first = 0
    for part, path, prefix, body in zip(parts, paths, prefixes, rows, strict=True):
        for line in np.flatnonzero(late[first:first + part.height]) + 2:
            ctx.record(path, "late_record", int(line), column="event_at",
                       detail="the event reached the export after the day it happened")
        first += part.height
        _write(ctx, path, prefix, header + body, part.height)
    return whole.height


def ground_truth(params: Params = Params()) -> dict:
    """Every parameter of the simulated feed, for checking what the pipeline recovers."""
    return {
        "registrations_per_weekday_at_scale_1": REGISTRATIONS_AT_SCALE_1,
        "weekday_factors_mon_to_sun": list(WEEKDAY_FACTORS),
        "kindergartens_at_scale_1": KINDERGARTENS_AT_SCALE_1,
        "allocation": "Poisson registrations per region, mean proportional to population",
        "age_at_registration_days": [{"share": s, "from": a, "to": b} for s, a, b in AGE_BANDS],
        "priority_p": dict(zip(PRIORITIES, PRIORITY_P, strict=True)),
        "effects": {
            "EDU-02": {
                "metric": "median days from a child's registered event to its referred event",
                "population": "children with priority_category none",
                "median_wait_days": dict(params.median_wait_days),
                "priority_wait_factor": params.priority_wait_factor,
                "distribution": f"lognormal, sigma {WAIT_SIGMA}, cut at +-{WAIT_Z_MAX} sigma "
                                f"(median kept), at most {MAX_WAIT_DAYS} days",
            },
            "EDU-03": {
                "metric": "share of registered children who are enrolled",
                "placed_share": params.placed_share,
                "referred_then_declined_share": params.declined_share,
                "withdrawn_before_referral_share": round(1 - params.placed_share - params.declined_share, 6),
            },
        },
        "enrol_days_after_referral": [1, ENROL_DAYS],
        "late_share": LATE_SHARE,
        "late_days": [1, MAX_LATE_DAYS],
        "windows_1251_regions": list(LEGACY_REGIONS),
        "defect_kinds": ["invalid_iin", "missing_required", "impossible_value", "duplicate_record",
                         "truncated_file"],
        "realistic_features": ["late_record", "windows_1251"],
    }


# --- drawing -----------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _kindergartens(scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kindergarten ids, region by region, and each region's first index and count."""
    counts = np.maximum(1, np.rint(KINDERGARTENS_AT_SCALE_1 * scale * population_shares())).astype(int)
    prefixes = np.array([r.kato_prefix for r in load_regions()])
    # Numbered within the region, as the registers do.
    number = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    ids = np.char.add(np.char.add(np.char.add("DO-", np.repeat(prefixes, counts)), "-"),
                      np.char.zfill(number.astype("U5"), 5))  # fmt: skip
    return ids, np.cumsum(counts) - counts, counts


@dataclass(frozen=True)
class _Batch:
    """Every event of the children registered on one day, sorted by the (ordinal) day each event
    is exported on: numpy columns, so a day's export gathers its slices cheaply."""

    delivered: np.ndarray
    columns: dict[str, np.ndarray]

    def on(self, day: int) -> dict[str, np.ndarray] | None:
        lo, hi = np.searchsorted(self.delivered, (day, day + 1))
        return {name: values[lo:hi] for name, values in self.columns.items()} if hi > lo else None


@lru_cache(maxsize=2 * (LOOKBACK + 1))
def _registrations(seed: int, day: date, scale: float, params: Params) -> _Batch:
    """The children registered on `day` and all their later events (drawn now, from this day's stream)."""
    rng = rng_for(seed, FEED, day)
    regions = load_regions()
    daily = REGISTRATIONS_AT_SCALE_1 * scale * population_shares()
    counts = rng.poisson(daily * WEEKDAY_FACTORS[day.weekday()])
    n = int(counts.sum())
    if n == 0:
        return _Batch(np.zeros(0, dtype=np.int64), {})
    region = rng.permutation(np.repeat(np.arange(len(regions)), counts))  # _children() is ordered by age
    child = _children(rng, n, day)
    priority = rng.choice(len(PRIORITIES), size=n, p=PRIORITY_P)
    medians = np.array([dict(params.median_wait_days)[r.kato_prefix] for r in regions], dtype=float)
    median = medians[region] * np.where(priority > 0, params.priority_wait_factor, 1.0)
    wait = np.clip(np.rint(median * np.exp(WAIT_SIGMA * _cut_normal(rng, n))), 1, MAX_WAIT_DAYS).astype(int)
    outcome = rng.choice(3, size=n, p=(params.placed_share, params.declined_share,
                                       1 - params.placed_share - params.declined_share))  # fmt: skip
    registered = day.toordinal()
    referral = registered + wait
    enrolled = referral + rng.integers(1, ENROL_DAYS + 1, n)
    enrolled += enrolled % 7 == 0  # ordinal % 7 == 0 is a Sunday: the next Monday
    withdrawn = np.where(outcome == 1, referral + rng.integers(1, ENROL_DAYS + 1, n),
                         registered + np.maximum(1, (rng.random(n) * wait).astype(int)))  # fmt: skip
    ids, first, count = _kindergartens(scale)
    kindergarten = ids[first[region] + (rng.random(n) * count[region]).astype(int)]
    prefixes = np.array([r.kato_prefix for r in regions])
    districts = np.array([_district_count(r.kind, r.population) for r in regions])
    district = (10 + rng.integers(0, districts[region])).astype("U2")
    kato = np.char.add(np.char.add(prefixes[region], district), "00000")
    depth = np.where(priority > 0, PRIORITY_QUEUE_DEPTH, QUEUE_DEPTH)
    queue_number = 1 + rng.poisson(daily[region] * medians[region] * depth)
    second = rng.choice(24, size=n, p=_HOURLY) * 3600 + rng.integers(0, 3600, n)
    order = np.lexsort((second, region))
    seq = np.empty(n, dtype=np.int64)
    seq[order] = np.arange(n) - (np.cumsum(counts) - counts)[region[order]]
    stem = np.char.add(np.char.add(np.char.add(f"KQ-{day:%Y%m%d}-", prefixes[region]), "-"),
                       np.char.zfill((seq + 1).astype("U5"), 5))  # fmt: skip
    # The events (child, type, day): registration at its drawn second, withdrawals before a
    # referral online around the clock, the others in office hours.
    placed, declined, left = outcome == 0, outcome == 1, outcome == 2
    who = np.concatenate([np.arange(n), np.flatnonzero(~left), np.flatnonzero(placed),
                          np.flatnonzero(~placed)])  # fmt: skip
    kind = np.repeat(np.arange(4), [n, int((~left).sum()), int(placed.sum()), int((~placed).sum())])
    event_day = np.concatenate([np.full(n, registered), referral[~left], enrolled[placed],
                                withdrawn[~placed]])  # fmt: skip
    m = who.size
    online = (kind == 0) | ((kind == 3) & left[who])
    seconds = np.where(kind == 0, second[who],
                       np.where(online, rng.choice(24, size=m, p=_HOURLY) * 3600 + rng.integers(0, 3600, m),
                                rng.integers(OFFICE_HOURS[0] * 3600, OFFICE_HOURS[1] * 3600, m)))  # fmt: skip
    late = rng.random(m) < LATE_SHARE
    delivered = event_day + np.where(late, rng.integers(1, MAX_LATE_DAYS + 1, m), 0)
    epoch = date(1970, 1, 1).toordinal()
    event_at = (event_day - epoch).astype("datetime64[D]").astype("datetime64[s]") + seconds
    name = np.char.add(np.char.add(child["last_name"], " "),
                       np.char.add(np.char.add(child["first_name"], " "), child["patronymic"]))  # fmt: skip
    by_day = np.argsort(delivered, kind="stable")
    who, kind = who[by_day], kind[by_day]
    return _Batch(delivered[by_day], {
        "region": region[who],
        "event_id": np.char.add(np.char.add(stem[who], "-"), np.array(EVENT_LETTERS)[kind]),
        "child_iin": child["iin"][who], "child_birth_date": child["birth_date"][who], "kato_code": kato[who],
        "event_type": kind, "priority_category": priority[who], "event_at": event_at[by_day],
        "kindergarten_id": kindergarten[who],
        "with_kindergarten": (kind == 1) | (kind == 2) | ((kind == 3) & declined[who]),
        "queue_number": queue_number[who], "child_name": name[who],
    })  # fmt: skip


def _events_on(batches: list[_Batch], day: int) -> pl.DataFrame:
    """The events of these registration days exported on `day`, as one frame."""
    parts = [part for batch in batches if (part := batch.on(day)) is not None]
    if not parts:
        return _EMPTY
    column = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    kind = column["event_type"]
    return pl.DataFrame({
        "region": column["region"].astype(np.int8), "event_id": _text(column["event_id"]),
        "child_iin": _text(column["child_iin"]), "child_birth_date": column["child_birth_date"],
        "kato_code": _text(column["kato_code"]), "event_type": pl.Series(EVENT_TYPES).gather(kind),
        "priority_category": pl.Series(PRIORITIES).gather(column["priority_category"]),
        "event_at": column["event_at"].astype("datetime64[ms]"),
        "kindergarten_id": _text(column["kindergarten_id"]),
        "queue_number": column["queue_number"], "child_name": _text(column["child_name"]),
    }).with_columns(
        kindergarten_id=pl.when(pl.Series(column["with_kindergarten"])).then("kindergarten_id"),
        queue_number=pl.when(pl.Series(kind == 0)).then("queue_number"),
    )  # fmt: skip


def _text(values: np.ndarray) -> pl.Series:
    """numpy unicode -> polars strings, through Python str objects: several times faster than
    polars' own conversion of numpy unicode arrays."""
    return pl.Series(values.tolist(), dtype=pl.String)


_HOURLY = np.array(REGISTRATION_HOURLY) / sum(REGISTRATION_HOURLY)
_EMPTY = pl.DataFrame(schema={
    "region": pl.Int8, "event_id": pl.String, "child_iin": pl.String, "child_birth_date": pl.Date,
    "kato_code": pl.String, "event_type": pl.String, "priority_category": pl.String,
    "event_at": pl.Datetime("ms"), "kindergarten_id": pl.String, "queue_number": pl.Int64,
    "child_name": pl.String,
})  # fmt: skip
def _children(rng: np.random.Generator, n: int, day: date) -> dict[str, np.ndarray]:
    """n children registered on `day`, their ages at registration from AGE_BANDS, youngest band
    first (pair them with shuffled attributes)."""
    sizes = rng.multinomial(n, [share for share, _, _ in AGE_BANDS])
    bands = [people(rng, int(k), day - timedelta(days=oldest), day - timedelta(days=youngest))
             for k, (_, youngest, oldest) in zip(sizes, AGE_BANDS, strict=True)]
    return {key: np.concatenate([band[key] for band in bands]) for key in bands[0]}


def _cut_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    """Standard normal draws cut at +-WAIT_Z_MAX (redrawn): symmetric, so the median stays 0."""
    z = rng.standard_normal(n)
    while (outside := np.abs(z) > WAIT_Z_MAX).any():
        z[outside] = rng.standard_normal(int(outside.sum()))
    return z


def _district_count(kind: str, population: int) -> int:
    """Districts per region for the KATO codes (the rule of the road-accident register)."""
    if kind == "city":
        return min(max(population // 300_000, 3), 8)
    return min(max(population // 90_000, 4), 18)


# --- writing ---------------------------------------------------------------------------------


def _render(events: pl.DataFrame) -> pl.DataFrame:
    return events.with_columns(
        child_birth_date=pl.col("child_birth_date").cast(pl.String),
        event_at=pl.col("event_at").dt.strftime("%Y-%m-%d %H:%M:%S"),
    ).select("region", *COLUMNS)



def _plant(ctx: DayContext, frame: pl.DataFrame, path: Path, prefix: str) -> pl.DataFrame:
    """One regional file's record defects, logged with their lines."""
    if frame.height == 0:
        return frame
    planter = RowDefects(ctx, frame, stream="row-defects:" + prefix)
    planter.break_iin("child_iin", share=0.3)
    planter.blank("child_iin", share=0.15)
    planter.blank("kato_code", share=0.15)
    # Born 8 years later: after the event. Born 9 years earlier: 9 or older at the event.
    planter.replace("impossible_value", "child_birth_date", _years_shifted(8), share=0.15)
    planter.replace("impossible_value", "child_birth_date", _years_shifted(-9), share=0.1)
    planter.duplicate(share=0.5)
    return planter.finish(path)


def _split_csv(frame: pl.DataFrame, heights: list[int]) -> tuple[bytes, list[bytes]]:
    """The CSV header line and the lines of each consecutive block of `heights` rows: one CSV
    writer call for all the regional files (no field holds a line break)."""
    data = frame.write_csv().encode("utf-8")
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")) + 1
    assert ends.size == frame.height + 1
    bounds = ends[np.concatenate([[0], np.cumsum(heights)])]
    return data[: ends[0]], [data[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _write(ctx: DayContext, path: Path, prefix: str, data: bytes, rows: int) -> None:
    """Write one regional file: Windows-1251 from the old registers, maybe cut off mid-row."""
    legacy = prefix in LEGACY_REGIONS and rows > 0
    if legacy:
        data = to_windows_1251(data.decode("utf-8")).encode("cp1251")
        ctx.record(path, "windows_1251", detail="the region's older register writes Windows-1251")
    cut = ctx.defect_rate > 0 and rows > 1 and (
        ctx.rng("file-defect:truncated_file:" + prefix).random() < ctx.defect_rate / 2)
    if cut:
        data, line = truncate(data, ctx.rng("truncate:" + prefix), "cp1251" if legacy else "utf-8", b",")
        # The cut line is no longer a record: whatever else was logged on it cannot be checked there.
        relative = ctx.relative(path)
        ctx.defects[:] = [d for d in ctx.defects if not (d.file == relative and d.line == line)]
        ctx.record(path, "truncated_file", line, detail="the export stopped inside this row")
    write_atomic(path, data)





def _years_shifted(years: int):
    """A defect maker moving ISO dates by whole years (29 February becomes the 28th)."""

    def make(rng: np.random.Generator, old: list) -> list:
        return [f"{int(v[:4]) + years}{v[4:].replace('-02-29', '-02-28')}" for v in old]

    return make
