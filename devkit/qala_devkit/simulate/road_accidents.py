"""Police road-traffic accident register: one CSV export per day.

The shape follows transforms/contracts/safety/road_accidents.yaml. What makes the feed
realistic (and awkward) for the pipeline downstream:

- volumes: ~55 accidents a day nationally at scale 1.0, split by population, more in winter,
  fewer on Sundays, with a daily rush-hour profile;
- a planted effect to recover: Sergek cameras cut Astana's accident rate by 16% from 2025;
- late registrations: ~2% of accidents appear in the export of a later day (1-5 days late);
- encodings: ~10% of days are exported in Windows-1251, with Kazakh letters folded to the
  Russian alphabet as the old registers do;
- street names with commas and quotes, and sometimes no street at all.

- defects at the run's defect rate (see base.DEFECT_KINDS), each logged with file and line:
  duplicates, missing and impossible values, future times, swapped coordinates, unknown KATO
  regions, an added or a renamed column, a file cut off mid-record.

Everything is vectorised (numpy draws -> polars frame -> write_csv): no per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate.base import DayContext, RowDefects, csv_bytes, drift_schema, to_windows_1251, truncate, write_atomic
from qala_devkit.simulate.world import KZ_LAT, KZ_LON, load_regions, population_shares, rng_for

FEED = "safety/road_accidents"
DOMAIN, NAME = FEED.split("/")

# Kazakhstan registers ~20k injury accidents a year: ~55 a day (ordinary weekday, no winter).
NATIONAL_PER_DAY = 55.0

# The planted effect: Sergek traffic cameras in Astana.
SERGEK_ROLLOUT = date(2025, 1, 1)
ASTANA_EFFECT = -0.16
ASTANA_PREFIX = "71"

# Ice and short days: more accidents from December to February.
WINTER_MONTHS = (12, 1, 2)
WINTER_UPLIFT = 0.15
# Monday..Sunday: Friday evening traffic is heaviest, Sunday the lightest.
WEEKDAY_FACTORS = (1.0, 1.0, 1.0, 1.0, 1.05, 0.95, 0.85)

# Relative accident counts by local hour: commuter peaks at 8-9 and 17-19 on weekdays;
# weekends have no morning peak and busier nights.
HOURLY_WEEKDAY = (
    0.9, 0.6, 0.45, 0.35, 0.35, 0.5, 1.2, 2.6, 4.2, 4.0, 3.3, 3.3,
    3.6, 3.7, 3.8, 4.2, 4.8, 5.6, 5.9, 5.0, 3.8, 2.9, 2.1, 1.5,
)  # fmt: skip
HOURLY_WEEKEND = (
    1.6, 1.3, 1.0, 0.8, 0.6, 0.5, 0.7, 1.1, 1.7, 2.4, 3.2, 3.8,
    4.2, 4.4, 4.5, 4.6, 4.7, 4.8, 4.7, 4.3, 3.7, 3.0, 2.4, 2.0,
)  # fmt: skip

# The register is mostly injury accidents; damage-only ones are registered when police attend.
SEVERITIES = ("damage_only", "injury", "fatal")
SEVERITY_P = (0.10, 0.78, 0.12)
DEATHS_PER_ACCIDENT = 0.14
# A fatal accident kills 1 + Poisson(extra): the extra is set so deaths/accident averages 0.14.
EXTRA_KILLED = DEATHS_PER_ACCIDENT / SEVERITY_P[2] - 1.0
EXTRA_INJURED_INJURY = 0.4  # an injury accident injures 1 + Poisson(0.4)
INJURED_FATAL = 0.8  # a fatal accident also injures Poisson(0.8)
VEHICLES = (1, 2, 3, 4)
VEHICLES_P = (0.22, 0.62, 0.11, 0.05)

# Coordinates scatter around the region's centre: normal, clipped at +-0.3 degrees.
COORD_SD_DEG = 0.1
COORD_MAX_DEG = 0.3

LATE_SHARE = 0.02
MAX_LATE_DAYS = 5
CP1251_SHARE = 0.10
EMPTY_STREET_SHARE = 0.05

STREETS = (
    "проспект Абая",
    "көшесі Сәтпаева",
    "улица Жібек жолы",
    "трасса Алматы — Қапшағай",
    "проспект Аль-Фараби",
    "улица Төле би",
    "проспект Райымбека",
    "проспект Достык",
    "улица Фурманова",
    "улица Тимирязева",
    "проспект Сарыарқа",
    "проспект Мәңгілік Ел",
    "проспект Тұран",
    "улица Кенесары",
    "улица Сейфуллина",
    "проспект Республики",
    "шоссе Қорғалжын",
    "улица Бөкейхана",
    "проспект Қабанбай батыра",
    "улица Ғабита Мүсірепова",
    "улица Әйтеке би",
    "проспект Тәуке хана",
    "улица Байтұрсынұлы",
    "проспект Бауыржан Момышұлы",
    "улица Желтоксан",
    "улица Қонаева",
    "улица Күләш Байсейітова",
    "улица Ауэзова",
    "улица Шевченко",
    "проспект Гагарина",
    "трасса Астана — Қарағанды",
    "трасса Алматы — Бішкек",
    "трасса Шымкент — Түркістан",
    "трасса Самара — Шымкент, 1245 км",
    "объездная дорога, Павлодар",
    "улица Абылай хана, угол Жамбыла",
    'микрорайон "Самал-2"',
    'ТРЦ "Хан Шатыр", парковка',
    'улица "Ақ жол"',
    "проспект Нұрлы жол",
)

@dataclass(frozen=True)
class Params:
    """The planted effect, overridable (e.g. by a test) without editing the module."""

    sergek_rollout: date = SERGEK_ROLLOUT
    astana_effect: float = ASTANA_EFFECT


def generate_day(ctx: DayContext) -> int:
    """Write the register's export for ctx.day; return the records written.

    The export holds the accidents registered that day: those that occurred on the day and are
    not late, plus those of the previous MAX_LATE_DAYS days drawn to be late until the day.
    Each occurrence day's accidents come from that day's own random stream, so every accident
    lands in exactly one file and any day regenerates alone to the same bytes.
    """
    day, params = ctx.day, ctx.params or Params()
    days = [day - timedelta(days=k) for k in range(MAX_LATE_DAYS, -1, -1)]
    accidents = pl.concat([_occurrences(ctx.seed, d, ctx.scale, params).lazy() for d in days])
    registered = accidents.filter(pl.col("delivered") == day.toordinal())
    encoding = "cp1251" if _is_cp1251_day(ctx.seed, day) else "utf-8"
    frame = _render(registered, encoding)
    path = ctx.folder() / f"{NAME}_{day.isoformat()}.csv"
    frame = _plant_defects(ctx, frame, path)
    # After the defects: duplicates shift lines, and a future date is not a late row.
    late = frame["occurred_at"].str.slice(0, 10) < day.isoformat()
    data = csv_bytes(frame, encoding, float_precision=5)
    if encoding != "utf-8":
        ctx.record(path, "windows_1251", detail="the whole file is Windows-1251 (an old register)")
    # Late registrations: not an error of the file, but the ground truth lists them.
    for line in np.flatnonzero(late.to_numpy()) + 2:
        ctx.record(path, "late_record", int(line), column="occurred_at",
                   detail="registered after the day it occurred")
    if ctx.maybe("truncated_file") and frame.height > 1:
        data, line = truncate(data, ctx.rng("truncate"), encoding, b",")
        ctx.record(path, "truncated_file", line, detail="the transfer stopped inside this record")
    write_atomic(path, data)
    return frame.height


def _plant_defects(ctx: DayContext, frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Row defects (one per affected record) then schema drift; each logged with its line."""
    if ctx.defect_rate <= 0:
        return frame
    planter = RowDefects(ctx, frame)
    planter.blank("kato_code", share=0.3)
    planter.blank("severity", share=0.2)
    planter.replace("unknown_kato", "kato_code", lambda rng, old: ["99" + v[2:] if v else "991000000"
                                                                   for v in old], share=0.3)
    planter.replace("impossible_value", "injured", lambda rng, old: [-(v or 1) for v in old], share=0.3)
    planter.replace("future_date", "occurred_at",
                    lambda rng, old: [f"{int(v[:4]) + 1}{v[4:]}" for v in old], share=0.2)
    # The sign lost on the officer's tablet: a longitude west of Greenwich.
    planter.replace("outside_kazakhstan", "lon", lambda rng, old: [-v for v in old], share=0.2)
    planter.duplicate(share=0.5)
    frame = planter.finish(path)
    # The renamed column is one no row defect touches, so every logged row defect stays checkable.
    return drift_schema(ctx, frame, path, "register",
                        added=("recorded_by", lambda: pl.lit(f"ДПС-{ctx.rng('drift').integers(100, 999)}")),
                        renamed=("vehicles", "vehicles_count"))


def write_rows(path: Path, day: date, n_rows: int, seed: int = 42,
               encoding: str = "utf-8") -> int:  # fmt: skip
    """Write one export of exactly `n_rows` accidents occurring on `day` (for benchmarks).

    Regions get rows in proportion to population; no late rows, no planted effect.
    """
    rng = rng_for(seed, FEED + ":bulk", day)
    counts = rng.multinomial(n_rows, _regions().shares)
    write_atomic(Path(path), csv_bytes(_render(_draw(rng, day, counts).lazy(), encoding), encoding, 5))
    return n_rows


def ground_truth(params: Params = Params()) -> dict:
    """Every parameter of the simulated feed, for checking what the pipeline recovers."""
    return {
        "national_per_day_at_scale_1": NATIONAL_PER_DAY,
        "allocation": "Poisson counts per region, mean proportional to population",
        "effects": {
            "sergek_astana": {
                "kato_prefix": ASTANA_PREFIX,
                "rollout_date": params.sergek_rollout.isoformat(),
                "relative_change": params.astana_effect,
                "rate_multiplier": 1.0 + params.astana_effect,
                "comparison": "Astana from the rollout vs the same months a year earlier",
            },
            "winter": {"months": list(WINTER_MONTHS), "relative_change": WINTER_UPLIFT},
            "weekday_factors_mon_to_sun": list(WEEKDAY_FACTORS),
            "hourly_weights_weekday": list(HOURLY_WEEKDAY),
            "hourly_weights_weekend": list(HOURLY_WEEKEND),
        },
        "severity_p": dict(zip(SEVERITIES, SEVERITY_P, strict=True)),
        "deaths_per_accident": DEATHS_PER_ACCIDENT,
        "injured": {"injury": f"1 + Poisson({EXTRA_INJURED_INJURY})",
                    "fatal": f"Poisson({INJURED_FATAL})", "damage_only": "0"},  # fmt: skip
        "vehicles_p": dict(zip(map(str, VEHICLES), VEHICLES_P, strict=True)),
        "coordinates": {"sd_deg": COORD_SD_DEG, "max_offset_deg": COORD_MAX_DEG,
                        "around": "region centre_lat/centre_lon"},  # fmt: skip
        "late_share": LATE_SHARE,
        "late_days": [1, MAX_LATE_DAYS],
        "cp1251_day_share": CP1251_SHARE,
        "empty_street_share": EMPTY_STREET_SHARE,
    }


# --- drawing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Regions:
    """Per-region constants as arrays indexed like `load_regions()`."""

    prefixes: tuple[str, ...]
    shares: np.ndarray
    is_astana: np.ndarray
    n_districts: np.ndarray
    centre_lat: np.ndarray
    centre_lon: np.ndarray


@lru_cache(maxsize=1)
def _regions() -> _Regions:
    regions = load_regions()
    return _Regions(
        prefixes=tuple(r.kato_prefix for r in regions),
        shares=population_shares(),
        is_astana=np.array([r.kato_prefix == ASTANA_PREFIX for r in regions]),
        n_districts=np.array([_district_count(r.kind, r.population) for r in regions]),
        centre_lat=np.array([r.centre_lat for r in regions]),
        centre_lon=np.array([r.centre_lon for r in regions]),
    )


def _district_count(kind: str, population: int) -> int:
    """Districts per region for the KATO codes: cities have few, big regions up to 18."""
    if kind == "city":
        return min(max(population // 300_000, 3), 8)
    return min(max(population // 90_000, 4), 18)


@lru_cache(maxsize=4 * (MAX_LATE_DAYS + 1))
def _occurrences(seed: int, day: date, scale: float, params: Params) -> pl.DataFrame:
    """The accidents that occurred on `day`, with the day each is delivered (registered).

    Cached: each day's export re-reads the previous MAX_LATE_DAYS days for their late rows.
    """
    rng = rng_for(seed, FEED, day)
    counts = rng.poisson(_expected_by_region(day, scale, params))
    frame = _draw(rng, day, counts)
    n = frame.height
    delay = np.where(rng.random(n) < LATE_SHARE, rng.integers(1, MAX_LATE_DAYS + 1, n), 0)
    return frame.with_columns(delivered=pl.Series(day.toordinal() + delay, dtype=pl.Int32))


def _expected_by_region(day: date, scale: float, params: Params) -> np.ndarray:
    regions = _regions()
    expected = NATIONAL_PER_DAY * scale * regions.shares * WEEKDAY_FACTORS[day.weekday()]
    if day.month in WINTER_MONTHS:
        expected *= 1.0 + WINTER_UPLIFT
    if day >= params.sergek_rollout:
        expected[regions.is_astana] *= 1.0 + params.astana_effect
    return expected


def _draw(rng: np.random.Generator, day: date, counts: np.ndarray) -> pl.DataFrame:
    """Draw the attributes of counts[i] accidents in region i on `day` (numeric columns)."""
    regions = _regions()
    region = np.repeat(np.arange(len(counts)), counts)
    n = region.size
    # Register number: running count within the region and day, from 1.
    seq = np.arange(1, n + 1) - np.repeat(np.cumsum(counts) - counts, counts)
    hourly = np.array(HOURLY_WEEKEND if day.weekday() >= 5 else HOURLY_WEEKDAY)
    hour = rng.choice(24, size=n, p=hourly / hourly.sum())
    second = hour * 3600 + rng.integers(0, 3600, n)
    # Naive local (Asia/Almaty) wall time; polars takes millisecond, not second, resolution.
    occurred = (np.datetime64(day, "s") + second).astype("datetime64[ms]")
    district = 10 + rng.integers(0, regions.n_districts[region])
    severity = rng.choice(len(SEVERITIES), size=n, p=SEVERITY_P)
    fatal = severity == SEVERITIES.index("fatal")
    injury = severity == SEVERITIES.index("injury")
    killed = np.where(fatal, 1 + rng.poisson(EXTRA_KILLED, n), 0)
    injured_if_injury = 1 + rng.poisson(EXTRA_INJURED_INJURY, n)
    injured_if_fatal = rng.poisson(INJURED_FATAL, n)
    injured = np.select([injury, fatal], [injured_if_injury, injured_if_fatal], 0)
    vehicles = rng.choice(VEHICLES, size=n, p=VEHICLES_P)
    # Index len(STREETS) stands for "no street recorded".
    no_street = rng.random(n) < EMPTY_STREET_SHARE
    street = np.where(no_street, len(STREETS), rng.integers(0, len(STREETS), n))
    offset = rng.normal(0.0, COORD_SD_DEG, (2, n)).clip(-COORD_MAX_DEG, COORD_MAX_DEG)
    lat = (regions.centre_lat[region] + offset[0]).clip(*KZ_LAT).round(5)
    lon = (regions.centre_lon[region] + offset[1]).clip(*KZ_LON).round(5)
    return pl.DataFrame(
        {
            "region": pl.Series(region, dtype=pl.UInt32),
            "seq": seq, "occurred": occurred, "district": district, "severity": severity,
            "injured": injured, "killed": killed, "vehicles": vehicles,
            "street": pl.Series(street, dtype=pl.UInt32), "lat": lat, "lon": lon,
        }  # fmt: skip
    )


def _is_cp1251_day(seed: int, day: date) -> bool:
    """Whether the day's export comes from an old Windows-1251 register.

    Its own stream, so the choice does not depend on scale or on the day's volume.
    """
    return bool(rng_for(seed, FEED + ":encoding", day).random() < CP1251_SHARE)


# --- writing ---------------------------------------------------------------------------------


def _render(accidents: pl.LazyFrame, encoding: str) -> pl.DataFrame:
    """Numeric draws -> the export's columns, in contract order, sorted by time."""
    prefix = pl.lit(pl.Series(_regions().prefixes)).gather(pl.col("region"))
    severity = pl.lit(pl.Series(SEVERITIES)).gather(pl.col("severity"))
    streets = pl.Series([*_street_names(encoding), None], dtype=pl.String)
    occurred = pl.col("occurred")
    return (
        # Stable sort: equal timestamps keep draw order (region, seq): repeatable bytes.
        accidents.sort("occurred", maintain_order=True)
        .select(
            accident_id=pl.concat_str(
                pl.lit("RA-"), occurred.dt.strftime("%Y%m%d"), pl.lit("-"), prefix,
                pl.lit("-"), pl.col("seq").cast(pl.String).str.zfill(6),
            ),  # fmt: skip
            occurred_at=occurred.dt.strftime("%Y-%m-%d %H:%M:%S"),
            kato_code=pl.concat_str(prefix, pl.col("district").cast(pl.String), pl.lit("00000")),
            severity=severity,
            injured="injured",
            killed="killed",
            vehicles="vehicles",
            street=pl.lit(streets).gather(pl.col("street")),
            lat="lat",
            lon="lon",
        )
        .collect()
    )


def _street_names(encoding: str) -> tuple[str, ...]:
    """Street names as a register with this encoding can write them."""
    try:
        for name in STREETS:
            name.encode(encoding)
        return STREETS
    except UnicodeEncodeError:
        return tuple(to_windows_1251(name) for name in STREETS)
