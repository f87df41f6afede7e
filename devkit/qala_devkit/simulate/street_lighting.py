"""Almaty smart street lighting: hourly energy per lighting control cabinet, one CSV per day.

The source system is the head-end of Almaty city's outdoor-lighting control network: every
control cabinet (ШУНО, шкаф управления наружным освещением) switches a group of lamps and carries
a metering modem that reports interval energy. Almaty only (KATO prefix 75): the system is the
city's, not national.

File layout: `landing/housing/street_lighting/<YYYY-MM-DD>/street_lighting_<YYYY-MM-DD>.csv`, UTF-8,
header `cabinet_id,kato_code,interval_start,interval_minutes,energy_kwh,lamps,burning_hours`, one
row per cabinet and interval, sorted by interval then cabinet.

- `interval_start` is local time with its UTC offset (`2025-01-15T18:00:00+05:00`): Almaty moved
  from UTC+6 to UTC+5 on 2024-03-01, so 2024-02-29 has 25 intervals and its 23:00 appears twice
  (+06:00 then +05:00). The offset keeps every interval unambiguous.
- `interval_minutes` = 60: Kazakhstan's electricity market settles by the hour, so metering of
  budget consumers (ASKUE) is read in hourly profiles; the column is there because the same
  head-end can export 15- or 30-minute profiles.
- `burning_hours`: the hours (0..1) the lamps burned within the interval, from the controller's
  switching log; `energy_kwh` the metered active energy (3 decimals); `lamps` the lamps switched.

Volumes: ~150,000 light points in Almaty, ~100 per cabinet -> ~1,500 cabinets at scale 1.0
(an estimate of the network's size, not a published register), 24 hourly rows each: ~36,000
rows a day. The cabinet count is proportional to scale (cabinet i is the same cabinet at every
scale: its attributes come from per-attribute streams that do not depend on the count).

Realism: lamps burn from dusk to dawn. Sunset and sunrise are computed for Almaty (43.24 N,
76.89 E) per date with NOAA's solar equations (vectorised), the photo-relays switching on 10
minutes after sunset and off 10 minutes before sunrise: ~14.7 burning hours a day in late
December, ~8.3 in late June. No dimming schedule (the old sodium lamps cannot dim).

Planted effect HCS-01: cabinets are retrofitted from sodium (HPS) lamps to LED in four waves;
from 00:00 local of its wave's date a cabinet's energy per burning hour is 40% below its own
pre-retrofit baseline (same lamps, same hours of darkness). The wave of a cabinet follows from
its number alone (see `cabinet_wave`), so the ground truth states it without the seed.

Realistic feature (logged, at any defect rate): a cabinet whose modem is offline for a day
(1% of cabinet-days) delivers that day's 24 readings 1-3 days late, in a later day's file
(`late_record`, column `interval_start`).

Defects at the run's defect rate, each logged with its line: negative energy
(`impossible_value`), empty energy or cabinet id (`missing_required`), duplicated rows, a file
cut off mid-row (`truncated_file`), an added column `voltage_v` or `energy_kwh` sent as
`active_energy_kwh` (schema drift).

Everything per row is vectorised (numpy draws -> polars frame -> write_csv).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from transforms.settings import LOCAL_TZ
from qala_devkit.simulate.base import DayContext, Defect, RowDefects, csv_bytes, drift_schema, truncate, write_atomic
from qala_devkit.simulate.world import rng_for

FEED = "housing/street_lighting"
DOMAIN, NAME = FEED.split("/")

ALMATY_PREFIX = "75"
LATITUDE, LONGITUDE = 43.24, 76.89
CABINETS_AT_SCALE_1 = 1_500
INTERVAL_MINUTES = 60
COLUMNS = ("cabinet_id", "kato_code", "interval_start", "interval_minutes", "energy_kwh", "lamps",
           "burning_hours")  # fmt: skip

# Almaty's eight districts: KATO district digits and each one's share of the cabinets.
DISTRICTS = ("Алатауский", "Алмалинский", "Ауэзовский", "Бостандыкский", "Жетысуский", "Медеуский",
             "Наурызбайский", "Турксибский")  # fmt: skip
DISTRICT_CODES = tuple(str(10 + i) for i in range(len(DISTRICTS)))
DISTRICT_SHARES = (0.14, 0.11, 0.15, 0.15, 0.10, 0.12, 0.08, 0.15)

# Lamps per cabinet: lognormal around 90, 12..400. Power per lamp including ballast losses:
# 150 W sodium lamps on ordinary streets, 250 W on arterial roads.
LAMPS_MEDIAN, LAMPS_SIGMA, LAMPS_RANGE = 90, 0.45, (12, 400)
LAMP_KW = (0.168, 0.280)
LAMP_KW_P = (0.65, 0.35)
READING_NOISE_SD = 0.03  # multiplicative: mains voltage and lamp ageing

# Dusk to dawn: the relays switch on after sunset and off before sunrise.
ZENITH_DEG = 90.833  # sunrise/sunset: the solar disc's upper limb, with refraction
SWITCH_ON_AFTER_SUNSET_MIN = 10
SWITCH_OFF_BEFORE_SUNRISE_MIN = 10

# The planted effect HCS-01: LED retrofit waves.
WAVE_DATES = (date(2024, 4, 1), date(2024, 9, 2), date(2025, 4, 1), date(2025, 9, 1))
WAVE_SHARES = (0.15, 0.20, 0.25, 0.20)  # the remaining 20% are not retrofitted
LED_CHANGE = -0.40
WAVE_MULTIPLIER = 37  # u = (37 * n) mod 100: 37 is coprime to 100, so u runs over all residues

OFFLINE_SHARE = 0.01
MAX_LATE_DAYS = 3
CATALOGUE_DAY = date(2020, 1, 1)  # the cabinet register's streams are not tied to an export day


@dataclass(frozen=True)
class Params:
    """The planted effect, overridable (e.g. by a test) without editing the module.

    Shares are fractions of the cabinets in whole percent (the wave rule works in percent)."""

    wave_dates: tuple[date, ...] = WAVE_DATES
    wave_shares: tuple[float, ...] = WAVE_SHARES
    led_change: float = LED_CHANGE


def cabinet_wave(numbers: np.ndarray, params: Params = Params()) -> np.ndarray:
    """The retrofit wave (1-based; 0 = not retrofitted) of the cabinets numbered `numbers`."""
    thresholds = np.rint(np.cumsum(params.wave_shares) * 100).astype(np.int64)
    if len(thresholds) != len(params.wave_dates) or (thresholds.size and thresholds[-1] > 100):
        raise ValueError("one share per wave date, summing to at most 1")
    u = (np.asarray(numbers, dtype=np.int64) * WAVE_MULTIPLIER) % 100
    wave = np.searchsorted(thresholds, u, side="right") + 1
    return np.where(wave > len(thresholds), 0, wave)


def generate_day(ctx: DayContext) -> int:
    """Write the head-end's export for ctx.day; return the rows written.

    The export holds the day's readings of every cabinet whose modem was online, plus the
    buffered readings of the previous MAX_LATE_DAYS days of cabinets that were offline and
    reconnected today. Each day's readings come from that day's own streams (cached), so every
    reading lands in exactly one file and any day regenerates alone to the same bytes.
    """
    day, params = ctx.day, ctx.params or Params()
    readings = _delivered(ctx.seed, day, ctx.scale, params)
    frame = _render(readings, ctx.seed, ctx.scale)
    path = ctx.folder() / f"{NAME}_{day.isoformat()}.csv"
    frame, late_lines = _plant_defects(ctx, frame, readings["late"].to_numpy(), path)
    data = csv_bytes(frame, float_precision=3)
    # Late readings are ~1% of rows: the Defect records are built directly (ctx.record per line
    # would resolve the path again for each).
    file = ctx.relative(path)
    ctx.defects += [Defect(file, "late_record", int(line), column="interval_start",
                           detail="the cabinet's modem was offline: reading delivered days late")
                    for line in late_lines]  # fmt: skip
    if ctx.maybe("truncated_file") and frame.height > 1:
        data, line = truncate(data, ctx.rng("truncate"), delimiter=b",")
        ctx.record(path, "truncated_file", line, detail="the transfer stopped inside this row")
    write_atomic(path, data)
    return frame.height


def _plant_defects(ctx: DayContext, frame: pl.DataFrame, late: np.ndarray,
                   path: Path) -> tuple[pl.DataFrame, np.ndarray]:  # fmt: skip
    """Row defects (never on late rows nor on the last row), then schema drift. Returns the frame
    to write and the lines of the late rows (duplicates shift them: found after planting)."""
    frame = frame.with_columns(_late=pl.Series(late), _row=pl.int_range(pl.len()))
    if ctx.defect_rate > 0 and frame.height > 1:
        on_time = ~late
        planter = RowDefects(ctx, frame)
        planter.taken[-1] = True  # the last row is the one a truncation cuts: no row defect on it
        burning = frame["energy_kwh"].to_numpy() > 0
        planter.replace("impossible_value", "energy_kwh", lambda rng, old: [-v for v in old], share=0.3,
                        eligible=on_time & burning)  # fmt: skip
        planter.blank("energy_kwh", share=0.2, eligible=on_time)
        planter.blank("cabinet_id", share=0.2, eligible=on_time)
        planter.duplicate(share=0.3)
        frame = planter.finish(path)
    # The first copy of a late row is the late record; a duplicate of it is logged as duplicate.
    late_lines = np.flatnonzero((frame["_late"] & frame["_row"].is_first_distinct()).to_numpy()) + 2
    row = frame["_row"].to_numpy()
    frame = frame.drop("_late", "_row")
    # One voltage per reading: a duplicated row keeps its copy's value.
    frame = drift_schema(ctx, frame, path, "head-end",
                         added=("voltage_v", lambda: pl.Series(ctx.rng("drift").normal(228.0, 3.0, late.size)
                                                               .round(1)[row])),
                         renamed=("energy_kwh", "active_energy_kwh"))
    return frame, late_lines


def ground_truth(params: Params = Params()) -> dict:
    """Every parameter of the simulated feed, for checking what the pipeline recovers."""
    thresholds = np.rint(np.cumsum(params.wave_shares) * 100).astype(int).tolist()
    return {
        "system": "Almaty outdoor-lighting control network (city-specific, not national)",
        "kato_prefix": ALMATY_PREFIX,
        "cabinets_at_scale_1": CABINETS_AT_SCALE_1,
        "cabinets": "round(1500 * scale), numbered 1..N: cabinet_id ALM-SL-<n, 6 digits>",
        "interval_minutes": INTERVAL_MINUTES,
        "records_per_day_at_scale_1": CABINETS_AT_SCALE_1 * 24 * 60 // INTERVAL_MINUTES,
        "districts": {f"75{code}00000": name for code, name in zip(DISTRICT_CODES, DISTRICTS, strict=True)},
        "district_shares": dict(zip(DISTRICT_CODES, DISTRICT_SHARES, strict=True)),
        "lamps_per_cabinet": {"distribution": "lognormal", "median": LAMPS_MEDIAN, "sigma_log": LAMPS_SIGMA,
                              "clipped_to": list(LAMPS_RANGE)},  # fmt: skip
        "lamp_kw_before_retrofit": dict(zip(map(str, LAMP_KW), LAMP_KW_P, strict=True)),
        "reading_noise_sd": READING_NOISE_SD,
        "energy_kwh": "lamps * lamp_kw * burning_hours * (1 + noise) * (1 + led_change if retrofitted)",
        "darkness": {
            "latitude": LATITUDE,
            "longitude": LONGITUDE,
            "algorithm": "NOAA solar equations (fractional year, equation of time, declination)",
            "zenith_deg": ZENITH_DEG,
            "switch_on_minutes_after_sunset": SWITCH_ON_AFTER_SUNSET_MIN,
            "switch_off_minutes_before_sunrise": SWITCH_OFF_BEFORE_SUNRISE_MIN,
            "dimming": None,
        },
        "effects": {
            "led_retrofit": {
                "id": "HCS-01",
                "relative_change": params.led_change,
                "energy_multiplier": 1.0 + params.led_change,
                "waves": [{"wave": i + 1, "date": d.isoformat(), "share": s,
                           "u_range": [([0] + thresholds)[i], thresholds[i]]}
                          for i, (d, s) in enumerate(zip(params.wave_dates, params.wave_shares,
                                                         strict=True))],  # fmt: skip
                "not_retrofitted_share": round(1.0 - sum(params.wave_shares), 4),
                "cabinet_wave_rule": (f"n = the number in cabinet_id (ALM-SL-000123 -> 123); "
                                      f"u = ({WAVE_MULTIPLIER} * n) mod 100; the cabinet's wave is the "
                                      f"one whose u_range [lo, hi) holds u; no wave: never retrofitted"),
                "starts": "00:00 local on the wave date: every interval starting on or after it",
                "comparison": "a cabinet's kWh per lamp burning hour after vs before its retrofit",
            },
        },
        "late": {"offline_cabinet_day_share": OFFLINE_SHARE, "late_days": [1, MAX_LATE_DAYS],
                 "what": "all of an offline cabinet's readings of a day arrive in one later file"},
        "encoding": "utf-8",
        "defect_kinds": ["impossible_value", "missing_required", "duplicate_record", "truncated_file",
                         "added_column", "renamed_column", "late_record"],  # fmt: skip
    }


# --- the cabinet register --------------------------------------------------------------------


@dataclass(frozen=True)
class _Cabinets:
    ids: pl.Series
    kato: pl.Series
    lamps: np.ndarray
    kw: np.ndarray


@lru_cache(maxsize=4)
def _cabinets(seed: int, scale: float) -> _Cabinets:
    """The cabinets at this scale, numbered 1..N: one stream per attribute, so cabinet i keeps
    its attributes whatever the count."""
    n = max(1, round(CABINETS_AT_SCALE_1 * scale))

    def stream(name: str) -> np.random.Generator:
        return rng_for(seed, f"{FEED}:cabinets:{name}", CATALOGUE_DAY)

    district = stream("district").choice(len(DISTRICTS), size=n, p=DISTRICT_SHARES)
    lamps = np.rint(stream("lamps").lognormal(np.log(LAMPS_MEDIAN), LAMPS_SIGMA, n)).clip(*LAMPS_RANGE)
    kw = np.asarray(LAMP_KW)[stream("power").choice(len(LAMP_KW), size=n, p=LAMP_KW_P)]
    ids = np.char.add("ALM-SL-", np.char.zfill(np.arange(1, n + 1).astype("U6"), 6))
    kato = np.char.add(np.char.add(ALMATY_PREFIX, np.asarray(DISTRICT_CODES)[district]), "00000")
    return _Cabinets(ids=pl.Series("cabinet_id", ids), kato=pl.Series("kato_code", kato),
                     lamps=lamps.astype(np.int64), kw=kw)  # fmt: skip


# --- astronomy -------------------------------------------------------------------------------


def sun_times(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sunrise and sunset at Almaty on each date (datetime64[D]), as UTC epoch seconds.

    NOAA's solar equations (accurate to a minute or two at this latitude): fractional year,
    equation of time, declination, then the hour angle at the zenith 90.833 degrees.
    """
    days = np.asarray(days, dtype="datetime64[D]")
    year = days.astype("datetime64[Y]")
    day_of_year = (days - year.astype("datetime64[D]")).astype(np.int64) + 1
    year_length = ((year + 1).astype("datetime64[D]") - year.astype("datetime64[D]")).astype(np.int64)
    g = 2 * np.pi / year_length * (day_of_year - 1)
    eqtime = 229.18 * (0.000075 + 0.001868 * np.cos(g) - 0.032077 * np.sin(g) - 0.014615 * np.cos(2 * g)
                       - 0.040849 * np.sin(2 * g))  # fmt: skip
    decl = (0.006918 - 0.399912 * np.cos(g) + 0.070257 * np.sin(g) - 0.006758 * np.cos(2 * g)
            + 0.000907 * np.sin(2 * g) - 0.002697 * np.cos(3 * g) + 0.00148 * np.sin(3 * g))  # fmt: skip
    lat = np.radians(LATITUDE)
    cos_ha = np.cos(np.radians(ZENITH_DEG)) / (np.cos(lat) * np.cos(decl)) - np.tan(lat) * np.tan(decl)
    ha = np.degrees(np.arccos(cos_ha))
    midnight = days.astype("datetime64[s]").astype(np.int64)
    sunrise = midnight + np.rint((720 - 4 * (LONGITUDE + ha) - eqtime) * 60).astype(np.int64)
    sunset = midnight + np.rint((720 - 4 * (LONGITUDE - ha) - eqtime) * 60).astype(np.int64)
    return sunrise, sunset


def local_day_bounds(day: date) -> tuple[int, int]:
    """The UTC epoch seconds of 00:00 local on `day` and on the next day (23-25 h apart)."""
    zone = ZoneInfo(LOCAL_TZ)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start.replace(tzinfo=None) + timedelta(days=1)
    return int(start.timestamp()), int(end.replace(tzinfo=zone).timestamp())


def burning_hours(day: date) -> tuple[np.ndarray, np.ndarray]:
    """The day's interval starts (UTC epoch seconds) and the hours the lamps burn in each."""
    start, end = local_day_bounds(day)
    starts = np.arange(start, end, INTERVAL_MINUTES * 60, dtype=np.int64)
    days = np.datetime64(day, "D") + np.arange(-1, 2)
    sunrise, sunset = sun_times(days)
    on = sunset[:2] + SWITCH_ON_AFTER_SUNSET_MIN * 60  # the evenings of the day before and the day
    off = sunrise[1:] - SWITCH_OFF_BEFORE_SUNRISE_MIN * 60  # the mornings after them
    ends = starts + INTERVAL_MINUTES * 60
    lit = np.clip(np.minimum(ends[:, None], off) - np.maximum(starts[:, None], on), 0, None).sum(axis=1)
    return starts, lit / 3600.0


# --- the readings ----------------------------------------------------------------------------


@lru_cache(maxsize=2 * (MAX_LATE_DAYS + 1))
def _readings(seed: int, day: date, scale: float, params: Params) -> dict[str, np.ndarray]:
    """Every cabinet's readings of `day` (energy (cabinets, intervals)), and which cabinets were
    offline and how many days late their readings arrive. Cached: the next days re-read them."""
    cabinets = _cabinets(seed, scale)
    n = cabinets.lamps.size
    starts, hours = burning_hours(day)
    wave = cabinet_wave(np.arange(1, n + 1), params)
    retrofitted = np.array([False, *(day >= d for d in params.wave_dates)])[wave]
    power = cabinets.lamps * cabinets.kw * np.where(retrofitted, 1.0 + params.led_change, 1.0)
    noise = 1.0 + rng_for(seed, FEED, day).normal(0.0, READING_NOISE_SD, (n, starts.size))
    energy = np.round(power[:, None] * hours[None, :] * noise, 3)
    outage = rng_for(seed, FEED + ":offline", day)
    offline = outage.random(n) < OFFLINE_SHARE
    delay = np.where(offline, outage.integers(1, MAX_LATE_DAYS + 1, n), 0)
    return {"starts": starts, "hours": np.round(hours, 3), "energy": energy, "delay": delay}


def _delivered(seed: int, day: date, scale: float, params: Params) -> pl.DataFrame:
    """The readings delivered in day's file: numeric columns, sorted by interval then cabinet."""
    parts = []
    for k in range(MAX_LATE_DAYS, -1, -1):
        r = _readings(seed, day - timedelta(days=k), scale, params)
        cabinets = np.flatnonzero(r["delay"] == k)
        n_int = r["starts"].size
        parts.append(pl.DataFrame({
            "cabinet": np.repeat(cabinets, n_int).astype(np.uint32),
            "start": np.tile(r["starts"], cabinets.size),
            "energy_kwh": r["energy"][cabinets].ravel(),
            "burning_hours": np.tile(r["hours"], cabinets.size),
            "late": np.full(cabinets.size * n_int, k > 0),
        }))  # fmt: skip
    return pl.concat(parts).sort("start", "cabinet")


def _render(readings: pl.DataFrame, seed: int, scale: float) -> pl.DataFrame:
    """Numeric readings -> the export's columns in order."""
    cabinets = _cabinets(seed, scale)
    starts = readings["start"].unique(maintain_order=True)  # sorted: readings are
    labels = (pl.from_epoch(starts, time_unit="s").dt.replace_time_zone("UTC")
              .dt.convert_time_zone(LOCAL_TZ).dt.strftime("%Y-%m-%dT%H:%M:%S%:z"))  # fmt: skip
    index = readings["cabinet"]
    return pl.DataFrame({
        "cabinet_id": cabinets.ids.gather(index),
        "kato_code": cabinets.kato.gather(index),
        "interval_start": labels.gather(starts.search_sorted(readings["start"])),
        "interval_minutes": pl.repeat(INTERVAL_MINUTES, readings.height, eager=True, dtype=pl.Int64),
        "energy_kwh": readings["energy_kwh"],
        "lamps": pl.Series(cabinets.lamps).gather(index),
        "burning_hours": readings["burning_hours"],
    }).select(COLUMNS)  # fmt: skip
