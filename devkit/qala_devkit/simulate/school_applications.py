"""First-grade applications from egov.kz and school offices: one CSV per region per day.

Source system: the registry of applications to enrol a child in grade 1 ("Приём документов и
зачисление в организации образования"). Parents apply online on egov.kz (`channel` egov) or at
the school's office (`in_person`); each region's education administration exports its
applications nightly.

File layout: `landing/education/school_applications/<YYYY-MM-DD>/applications_<KK>_<YYYY-MM-DD>.csv`,
`KK` the region's 2-digit KATO prefix, one file per region every day (a header alone when
nothing changed), UTF-8, header
`application_id,child_iin,child_birth_date,child_name,parent_iin,parent_phone,kato_code,school_id,
submitted_at,channel,status`.

A file holds the applications created or changed that day: a new application as `submitted`,
and, in the export of the day the school decides, the same application again with its new status
(`accepted`, `rejected`) or `withdrawn` when the parent withdraws it. `submitted_at` is always the
original submission time (local, `YYYY-MM-DD HH:MM:SS`), so a status row carries an earlier date:
the latest row of an application_id is its state. 88% are accepted, 7% rejected, 5% withdrawn;
decisions come 1-14 days after the application reaches the registry (withdrawals 1-21 days).

Season: applications open on 1 April (parents wait for midnight: the first hours and days are a
big peak, ~30% of the season's applications in its first three days) and close on 31 August, with
a smaller rush from 15 August; nothing is submitted outside the season, only the last decisions
spill into early September. egov.kz runs around the clock (lighter at weekends); school offices
take applications Monday-Saturday, 9:00-18:00.

Volumes: ~400,000 applications a season at scale 1.0, about one per child of the first-grade
cohort (births were ~390,000-400,000 a year in 2017-2018 and nearly every child starts school at
6 or 7), split by region in proportion to population; ~800,000 rows a season with the decisions.
Children are 6 (85%) or 7 (15%) on 1 September of the season's year, with valid IINs matching
their birth dates (the same draw as the school roster's first graders). `school_id` is a school
org sourcedId of the education/oneroster feed (same seed and scale), in the child's region;
`kato_code` is that school's district.

Planted effect EDU-01: 90% of applications are submitted online nationally; each region's share
is 0.90 plus a regional offset (cities higher, rural regions lower; illustrative offsets of -0.06
to +0.06), the offsets centred so that the population-weighted national share is exactly 0.90:
Almaty and Astana 0.963, Turkistan 0.843 (see `egov_shares`, and ground_truth).

Realistic feature (logged at any defect rate): 1.5% of applications reach the registry 1-3 days
after they were submitted (a school office enters them late), in a later day's file
(`late_record`, column `submitted_at`).

Defects at the run's defect rate, each logged with its file and line: IINs with a wrong check
digit (`invalid_iin`, child or parent), an empty `child_iin` or `school_id` (`missing_required`),
a submission time a year ahead (`future_date`), rows sent twice (`duplicate_record`), and a
regional file written in Windows-1251 by an old regional system (`windows_1251`).

Everything per record is vectorised (numpy draws -> polars frame -> write_csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate.base import DayContext, RowDefects, by_region, to_windows_1251, write_atomic
from qala_devkit.simulate.oneroster import first_graders, schools
from qala_devkit.simulate.people import people
from qala_devkit.simulate.world import load_regions, population_shares, rng_for

FEED = "education/school_applications"
DOMAIN, NAME = FEED.split("/")
COLUMNS = ("application_id", "child_iin", "child_birth_date", "child_name", "parent_iin", "parent_phone",
           "kato_code", "school_id", "submitted_at", "channel", "status")  # fmt: skip

APPLICATIONS_AT_SCALE_1 = 400_000  # a season: about one first-grade cohort
SEASON_OPEN, SEASON_CLOSE = (4, 1), (8, 31)
CHANNELS = ("egov", "in_person")

# EDU-01: the national online share and each region's offset from it (before centring).
EGOV_SHARE = 0.90
EGOV_OFFSETS = (("10", -0.02), ("11", -0.03), ("15", 0.0), ("19", -0.02), ("23", 0.0), ("27", -0.02),
                ("31", -0.04), ("33", -0.04), ("35", 0.02), ("39", -0.01), ("43", -0.03), ("47", 0.01),
                ("55", 0.02), ("59", -0.03), ("61", -0.06), ("62", -0.03), ("63", 0.0), ("71", 0.06),
                ("75", 0.06), ("79", 0.02))  # fmt: skip

# The opening peak: day k of the season (0 = 1 April) weighs 1 + PEAK x exp(-k / DECAY).
OPENING_PEAK = {"egov": 25.0, "in_person": 10.0}
OPENING_DECAY_DAYS = 2.5
AUGUST_RUSH = (15, 0.5)  # from 15 August, 50% more
WEEKDAY_FACTORS = {"egov": (1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.6),
                   "in_person": (1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0)}  # fmt: skip
# Relative submissions by local hour; on opening day egov gets the midnight rush on top.
EGOV_HOURLY = (1.5, 0.8, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4.0, 5.0, 5.5, 5.5,
               5.0, 5.0, 5.2, 5.0, 4.8, 4.6, 4.8, 5.2, 5.5, 5.0, 3.8, 2.4)  # fmt: skip
OPENING_MIDNIGHT = (60.0, 25.0, 8.0)  # added to hours 0-2 of 1 April
OFFICE_HOURLY = (0, 0, 0, 0, 0, 0, 0, 0, 0, 4.0, 5.0, 5.0, 4.0, 1.5, 4.0, 4.5, 4.0, 3.0,
                 0, 0, 0, 0, 0, 0)  # fmt: skip

OUTCOMES = ("accepted", "rejected", "withdrawn")
OUTCOME_P = (0.88, 0.07, 0.05)
DECISION_DAYS = 14  # accepted/rejected: 1 + geometric, at most this many days after arrival
DECISION_P = 0.25
WITHDRAW_DAYS = 21  # withdrawn: 1..21 days after arrival
LATE_SHARE = 0.015
MAX_LATE_DAYS = 3
LOOKBACK = WITHDRAW_DAYS + MAX_LATE_DAYS
CP1251_SHARE = 1.0  # x the defect rate: the chance a regional file comes from the old system


@dataclass(frozen=True)
class Params:
    """EDU-01, overridable (e.g. by a test) without editing the module."""

    egov_share: float = EGOV_SHARE
    egov_offsets: tuple[tuple[str, float], ...] = EGOV_OFFSETS
    applications: int = APPLICATIONS_AT_SCALE_1


def egov_shares(params: Params = Params()) -> dict[str, float]:
    """Each region's online share (by KATO prefix): the offsets centred on the population-weighted
    mean, so that the national share is exactly params.egov_share."""
    offsets = dict(params.egov_offsets)
    prefixes = [r.kato_prefix for r in load_regions()]
    raw = np.array([offsets[p] for p in prefixes])
    centred = params.egov_share + raw - float(population_shares() @ raw)
    return dict(zip(prefixes, centred.tolist(), strict=True))


def generate_day(ctx: DayContext) -> int:
    """Write the day's regional files: the applications that reached the registry that day and the
    decisions made on earlier ones. Each submission day's applications come from that day's own
    stream, so any day regenerates alone."""
    params = ctx.params or Params()
    day = ctx.day
    days = [day - timedelta(days=k) for k in range(LOOKBACK, -1, -1)]
    drawn = pl.concat([_applications(ctx.seed, d, ctx.scale, params).lazy() for d in days])
    today = day.toordinal()
    arrived = drawn.filter(pl.col("delivered") == today).with_columns(status=pl.lit("submitted"),
                                                                      event=pl.col("submitted"))  # fmt: skip
    decided = drawn.filter(pl.col("decided") == today).with_columns(status=pl.col("outcome"),
                                                                    event=pl.col("decided_at"))  # fmt: skip
    prefixes = [r.kato_prefix for r in load_regions()]
    paths = [ctx.folder() / f"applications_{prefix}_{day.isoformat()}.csv" for prefix in prefixes]
    parts = by_region(_render(pl.concat([arrived, decided]).collect()), len(prefixes))
    if ctx.defect_rate > 0:
        parts = [_plant(ctx, part, path, prefix)
                 for part, path, prefix in zip(parts, paths, prefixes, strict=True)]  # fmt: skip
    whole = pl.concat(parts)
    late = (whole["status"] == "submitted") & (whole["submitted_at"].str.slice(0, 10) < day.isoformat())
    late = late.to_numpy()
    header, bodies = _split_csv(whole, [part.height for part in parts])
    first = 0
    for part, path, prefix, body in zip(parts, paths, prefixes, bodies, strict=True):
        for line in np.flatnonzero(late[first:first + part.height]) + 2:
            ctx.record(path, "late_record", int(line), column="submitted_at",
                       detail="the application reached the registry after the day it was submitted")
        first += part.height
        text = header + body
        old_system = ctx.defect_rate > 0 and part.height > 0 and (
            ctx.rng("file-defect:windows_1251:" + prefix).random() < ctx.defect_rate * CP1251_SHARE)
        if old_system:
            ctx.record(path, "windows_1251", detail="the region's old system wrote the file in Windows-1251")
            write_atomic(path, to_windows_1251(text.decode("utf-8")).encode("cp1251"))
        else:
            write_atomic(path, text)
    return whole.height


def ground_truth(params: Params = Params()) -> dict:
    """Every parameter of the simulated feed, for checking what the pipeline recovers."""
    return {
        "applications_per_season_at_scale_1": params.applications,
        "season": {"opens": list(SEASON_OPEN), "closes": list(SEASON_CLOSE),
                   "opening_peak": OPENING_PEAK, "opening_decay_days": OPENING_DECAY_DAYS,
                   "august_rush": {"from_day": AUGUST_RUSH[0], "relative_change": AUGUST_RUSH[1]},
                   "weekday_factors_mon_to_sun": {c: list(f) for c, f in WEEKDAY_FACTORS.items()}},
        "allocation": "Poisson counts per region and channel, mean proportional to population",
        "effects": {
            "EDU-01": {
                "metric": "share of a season's applications with channel egov",
                "national_share": params.egov_share,
                "weighting": "regions weighted by population (volumes are proportional to population)",
                "regional_share": {k: round(v, 6) for k, v in egov_shares(params).items()},
            },
        },
        "children": {"age_on_1_september": {"6": 0.85, "7": 0.15}, "iin": "valid, matching child_birth_date"},
        "outcomes": dict(zip(OUTCOMES, OUTCOME_P, strict=True)),
        "decision_days": {"accepted_rejected": [1, DECISION_DAYS], "withdrawn": [1, WITHDRAW_DAYS]},
        "late_share": LATE_SHARE,
        "late_days": [1, MAX_LATE_DAYS],
        "school_id": "education/oneroster school org sourcedId (same seed and scale)",
        "defect_kinds": ["invalid_iin", "missing_required", "future_date", "duplicate_record",
                         "windows_1251"],
        "realistic_features": ["late_record"],
    }


# --- drawing -----------------------------------------------------------------------------------


def in_season(day: date) -> bool:
    return SEASON_OPEN <= (day.month, day.day) <= SEASON_CLOSE


def _day_weight(day: date, channel: str) -> float:
    if not in_season(day):
        return 0.0
    k = (day - date(day.year, *SEASON_OPEN)).days
    weight = 1.0 + OPENING_PEAK[channel] * np.exp(-k / OPENING_DECAY_DAYS)
    weight *= WEEKDAY_FACTORS[channel][day.weekday()]
    if day.month == 8 and day.day >= AUGUST_RUSH[0]:
        weight *= 1.0 + AUGUST_RUSH[1]
    return float(weight)


@lru_cache(maxsize=8)
def _season_weight(year: int, channel: str) -> float:
    first, last = date(year, *SEASON_OPEN), date(year, *SEASON_CLOSE)
    return sum(_day_weight(first + timedelta(days=k), channel) for k in range((last - first).days + 1))


def expected(day: date, scale: float, params: Params = Params()) -> dict[str, np.ndarray]:
    """Expected submissions on `day` per channel, by region (load_regions() order)."""
    online = np.array(list(egov_shares(params).values()))
    base = params.applications * scale * population_shares()
    return {channel: base * share * _day_weight(day, channel) / _season_weight(day.year, channel)
            for channel, share in (("egov", online), ("in_person", 1.0 - online))}  # fmt: skip


@lru_cache(maxsize=4 * (LOOKBACK + 1))
def _applications(seed: int, day: date, scale: float, params: Params) -> pl.DataFrame:
    """The applications submitted on `day`, with the day each reaches the registry (`delivered`),
    its outcome and the day it is decided (`decided`)."""
    rng = rng_for(seed, FEED, day)
    means = expected(day, scale, params)
    counts = {channel: rng.poisson(mean) for channel, mean in means.items()}
    region = np.concatenate([np.repeat(np.arange(len(c)), c) for c in counts.values()])
    channel = np.repeat(np.arange(len(CHANNELS)), [int(c.sum()) for c in counts.values()])
    n = region.size
    shuffle = rng.permutation(n)  # first_graders() lists the 6-year-olds first
    region, channel = region[shuffle], channel[shuffle]
    if n == 0:
        return _EMPTY
    child = first_graders(rng, n, day.year)
    parent = people(rng, n, date(day.year - 50, 1, 1), date(day.year - 22, 12, 31))
    school = _pick_schools(rng, seed, scale, region)
    second = _seconds(rng, day, channel)
    submitted = (np.datetime64(day, "s") + second).astype("datetime64[ms]")
    late = rng.random(n) < LATE_SHARE
    delivered = day.toordinal() + np.where(late, rng.integers(1, MAX_LATE_DAYS + 1, n), 0)
    outcome = rng.choice(len(OUTCOMES), size=n, p=OUTCOME_P)
    delay = np.where(outcome == OUTCOMES.index("withdrawn"), rng.integers(1, WITHDRAW_DAYS + 1, n),
                     np.minimum(rng.geometric(DECISION_P, n), DECISION_DAYS))  # fmt: skip
    decided = delivered + delay
    decided_second = rng.integers(9 * 3600, 18 * 3600, n)
    decided_day = np.array(decided - date(1970, 1, 1).toordinal(), dtype="datetime64[D]")
    decided_at = (decided_day.astype("datetime64[s]") + decided_second).astype("datetime64[ms]")
    # Application number: the day, the region, a running number within the region's day.
    order = np.lexsort((second, region))
    counts = np.bincount(region, minlength=len(load_regions()))
    seq = np.empty(n, dtype=np.int64)
    seq[order] = np.arange(n) - (np.cumsum(counts) - counts)[region[order]] + 1
    catalogue = schools(seed, scale)
    prefixes = pl.Series([r.kato_prefix for r in load_regions()])
    return pl.DataFrame({
        "region": region.astype(np.int8), "seq": seq, "child_iin": _text(child["iin"]),
        "child_birth_date": child["birth_date"], "last": _text(child["last_name"]),
        "first": _text(child["first_name"]), "middle": _text(child["patronymic"]),
        "parent_iin": _text(parent["iin"]), "parent_phone": _text(parent["phone"]),
        "kato_code": catalogue["kato_code"].gather(school),
        "school_id": catalogue["sourced_id"].gather(school),
        "submitted": submitted, "channel": pl.Series(CHANNELS).gather(channel),
        "outcome": pl.Series(OUTCOMES).gather(outcome), "delivered": delivered.astype(np.int32),
        "decided": decided.astype(np.int32), "decided_at": decided_at,
    }).select(
        "region",
        application_id=pl.concat_str(pl.lit(f"ZP-{day:%Y%m%d}-"), pl.lit(prefixes).gather(pl.col("region")),
                                     pl.lit("-"), pl.col("seq").cast(pl.String).str.zfill(6)),
        child_iin="child_iin", child_birth_date="child_birth_date",
        child_name=pl.concat_str("last", "first", "middle", separator=" "),
        parent_iin="parent_iin", parent_phone="parent_phone", kato_code="kato_code", school_id="school_id",
        submitted="submitted", channel="channel", outcome="outcome", delivered="delivered", decided="decided",
        decided_at="decided_at",
    )  # fmt: skip


def _text(values: np.ndarray) -> pl.Series:
    """numpy unicode -> polars strings, through Python str objects: several times faster than
    polars' own conversion of numpy unicode arrays."""
    return pl.Series(values.tolist(), dtype=pl.String)


_EMPTY = pl.DataFrame(schema={
    "region": pl.Int8, "application_id": pl.String, "child_iin": pl.String, "child_birth_date": pl.Date,
    "child_name": pl.String, "parent_iin": pl.String, "parent_phone": pl.String, "kato_code": pl.String,
    "school_id": pl.String, "submitted": pl.Datetime("ms"), "channel": pl.String, "outcome": pl.String,
    "delivered": pl.Int32, "decided": pl.Int32, "decided_at": pl.Datetime("ms"),
})  # fmt: skip


def _pick_schools(rng: np.random.Generator, seed: int, scale: float, region: np.ndarray) -> np.ndarray:
    """A school (catalogue index) in each child's region, in proportion to the school's share of
    the region's pupils.

    The catalogue lists schools region by region and a region's weights sum to 1, so region r's
    schools cover [r, r + 1) of the cumulative weights."""
    catalogue = schools(seed, scale)
    school_region = catalogue["region"].to_numpy()
    cumulative = np.cumsum(catalogue["weight"].to_numpy())
    first = np.searchsorted(school_region, region, side="left")
    last = np.searchsorted(school_region, region, side="right") - 1
    return np.clip(np.searchsorted(cumulative, region + rng.random(region.size)), first, last)


def _seconds(rng: np.random.Generator, day: date, channel: np.ndarray) -> np.ndarray:
    """Local second of the day of each submission, from its channel's hourly profile."""
    egov = np.array(EGOV_HOURLY)
    if (day.month, day.day) == SEASON_OPEN:
        egov[: len(OPENING_MIDNIGHT)] += OPENING_MIDNIGHT
    office = np.array(OFFICE_HOURLY)
    hour = np.where(channel == 0, rng.choice(24, size=channel.size, p=egov / egov.sum()),
                    rng.choice(24, size=channel.size, p=office / office.sum()))  # fmt: skip
    return hour * 3600 + rng.integers(0, 3600, channel.size)


# --- writing ---------------------------------------------------------------------------------


def _render(rows: pl.DataFrame) -> pl.DataFrame:
    """Drawn rows -> the export's columns, in time order (submission or decision time)."""
    return rows.sort("event", "application_id").with_columns(
        child_birth_date=pl.col("child_birth_date").cast(pl.String),
        submitted_at=pl.col("submitted").dt.strftime("%Y-%m-%d %H:%M:%S"),
    ).select("region", *COLUMNS)



def _plant(ctx: DayContext, frame: pl.DataFrame, path: Path, prefix: str) -> pl.DataFrame:
    """One regional file's record defects, logged with their lines."""
    if frame.height == 0:
        return frame
    planter = RowDefects(ctx, frame, stream="row-defects:" + prefix)
    planter.break_iin("child_iin", share=0.3)
    planter.break_iin("parent_iin", share=0.2)
    planter.blank("child_iin", share=0.2)
    planter.blank("school_id", share=0.2)
    planter.replace("future_date", "submitted_at", lambda rng, old: [f"{int(v[:4]) + 1}{v[4:]}" for v in old],
                    share=0.2)  # fmt: skip
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

