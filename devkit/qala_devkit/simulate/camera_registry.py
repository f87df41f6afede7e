"""Sergek camera register: a full CSV snapshot of every installed camera, once a day.

Sergek is the photo/video traffic-enforcement system run for the police by the city akimats
(Astana, Almaty, Shymkent) and, in the Smart Aqkol pilot, by the town of Aqkol. Its register
lists every enforcement camera ever installed; the daily export is the whole register as it
stands on the export day:

    landing/safety/camera_registry/<YYYY-MM-DD>/camera_registry_<YYYY-MM-DD>.csv

    camera_id, kato_code, city, address, lat, lon, camera_type, speed_limit_kmh,
    installed_on, decommissioned_on, status

- one row per camera installed on or before the export day (a camera installed later is not yet
  in the register); `decommissioned_on` is empty unless the camera was taken down on or before
  the export day; `status` is `active`, `maintenance` (offline that day: ~2% of cameras, drawn
  per day) or `decommissioned`; `camera_type` is speed, red_light, lane_control or multi;
- volumes at scale 1.0 (cameras, not records per day: the register is a snapshot): Astana
  1,800, Almaty 1,200, Shymkent 500, Aqkol 40 - about 3,500 enforcement units in all, the
  real network's order of magnitude: Astana's Sergek started in 2017 with ~6,000 traffic
  lenses at ~700 sites (400 crossroads, 300 road sections), i.e. ~1,800 enforcement units of
  2-4 lenses; Almaty switched on 400 cameras at 100 crossroads on 2020-01-01 and has kept
  adding; Shymkent's network is smaller; Smart Aqkol watches a town of 14,000. Counts are
  round(n x scale), at least 1 per city;
- the planted effect (shared with safety/road_accidents): Astana's cameras go live from the
  Sergek rollout date (`road_accidents.SERGEK_ROLLOUT`, overridable in `Params`): 60% on the
  rollout day, the rest over the following year. The other cities' networks date from their
  launches (Shymkent 2019, Almaty 2020, Aqkol 2021) and keep growing;
- the register is city-specific: rows are per city, not split by population.

`cameras()` (the whole register, every camera that will ever be installed) and `statuses()` (a
day's status of each) are what safety/sergek_violations draws its events from, so every event
names a camera active in that day's register.

Defects at the run's defect rate, each logged with file and line: duplicate rows, an empty
kato_code or installed_on, a longitude with its sign lost (outside Kazakhstan), and now and
then the column `lat` sent as `latitude`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate.base import DayContext, RowDefects, csv_bytes, write_atomic
from qala_devkit.simulate.road_accidents import SERGEK_ROLLOUT
from qala_devkit.simulate.world import KZ_LAT, KZ_LON, load_regions, load_towns, rng_for

FEED = "safety/camera_registry"
DOMAIN, NAME = FEED.split("/")

# Every draw about the cameras themselves (not about a day) comes from this fixed stream day.
CATALOGUE_DAY = date(2017, 1, 1)

CAMERA_TYPES = ("speed", "red_light", "lane_control", "multi")
CAMERA_TYPE_P = (0.35, 0.25, 0.15, 0.25)
SPEED_LIMITS = (40, 50, 60, 70, 80, 90, 100)
SPEED_LIMIT_P = (0.05, 0.07, 0.58, 0.15, 0.08, 0.05, 0.02)
STATUSES = ("active", "maintenance", "decommissioned")
MAINTENANCE_SHARE = 0.02  # of installed, not decommissioned cameras, each day
DECOMMISSIONED_SHARE = 0.02  # of all cameras, 180-1500 days after installation
DECOMMISSION_AFTER_DAYS = (180, 1500)
BUSYNESS_SHAPE = 2.0  # gamma shape of a camera's traffic relative to its city's mean (cv 0.71)


@dataclass(frozen=True)
class City:
    key: str
    code: str  # in camera_id
    name: str  # as the register writes it
    kato_prefix: str
    cameras: int  # at scale 1
    initial_share: float  # installed on the launch day
    growth_days: int  # the rest, uniformly over this many days after the launch
    launch: date | None  # None: the Sergek rollout date (Params)
    coord_sd_deg: float
    streets: tuple[str, ...]


CITIES = (
    City("astana", "AST", "Астана", "71", 1800, 0.60, 365, None, 0.045,
         ("проспект Мәңгілік Ел", "проспект Тұран", "проспект Қабанбай батыра", "улица Сығанақ",
          "проспект Республики", "проспект Абая", "улица Кенесары", "проспект Сарыарқа",
          "шоссе Қорғалжын", "улица Бөкейхана", "проспект Бауыржан Момышұлы", "улица Сейфуллина",
          "проспект Ұлы Дала", "улица Иманова")),
    City("almaty", "ALA", "Алматы", "75", 1200, 0.33, 2190, date(2020, 1, 1), 0.05,
         ("проспект Аль-Фараби", "проспект Абая", "проспект Достык", "улица Төле би",
          "проспект Райымбека", "улица Жандосова", "проспект Сейфуллина", "улица Тимирязева",
          "проспект Рыскулова", "улица Саина", "проспект Абылай хана", "Восточная объездная",
          "улица Жібек жолы", "проспект Желтоқсан")),
    City("shymkent", "SHY", "Шымкент", "79", 500, 0.50, 1825, date(2019, 7, 1), 0.04,
         ("проспект Тәуке хана", "проспект Республики", "улица Байтұрсынұлы", "проспект Қонаева",
          "улица Жібек жолы", "улица Рысқұлова", "проспект Абая", "улица Момышұлы",
          "трасса Шымкент — Ташкент")),
    City("aqkol", "AQK", "Акколь", "11", 40, 0.60, 1095, date(2021, 9, 1), 0.008,
         ("улица Нұрмағамбетова", "улица Сейфуллина", "улица Абая", "улица Ауэзова",
          "улица Бірлік", "трасса Астана — Щучинск")),
)  # fmt: skip
DISTRICTS = {"astana": 5, "almaty": 8, "shymkent": 5}  # real district counts; Aqkol: its own KATO code

COLUMNS = ("camera_id", "kato_code", "city", "address", "lat", "lon", "camera_type", "speed_limit_kmh",
           "installed_on", "decommissioned_on", "status")  # fmt: skip


@dataclass(frozen=True)
class Params:
    """The planted effect, overridable (e.g. by a test) without editing the module."""

    sergek_rollout: date = SERGEK_ROLLOUT


def generate_day(ctx: DayContext) -> int:
    """Write the register snapshot of ctx.day; return the cameras listed."""
    params = ctx.params or Params()
    cams = cameras(ctx.seed, ctx.scale, params)
    status = statuses(ctx.seed, ctx.day, ctx.scale, params)
    listed = status >= 0
    frame = _render(cams.filter(pl.Series(listed)), status[listed], ctx.day)
    path = ctx.folder() / f"{NAME}_{ctx.day.isoformat()}.csv"
    frame = _plant_defects(ctx, frame, path)
    write_atomic(path, csv_bytes(frame, float_precision=6))
    return frame.height


def ground_truth(params: Params = Params()) -> dict:
    return {
        "kind": "daily full snapshot of the register (cameras installed up to the export day)",
        "cameras_at_scale_1": {c.key: c.cameras for c in CITIES},
        "cameras_scaling": "round(cameras x scale), at least 1 per city",
        "allocation": "city-specific: Astana, Almaty, Shymkent and the town of Aqkol",
        "installation": {
            c.key: {"launch": (c.launch or params.sergek_rollout).isoformat(),
                    "installed_on_launch_day": c.initial_share,
                    "rest_uniform_over_days": c.growth_days}
            for c in CITIES
        },  # fmt: skip
        "effects": {
            "sergek_astana": {"kato_prefix": "71", "rollout_date": params.sergek_rollout.isoformat(),
                              "rule": "no Astana camera is installed before the rollout date"},
        },  # fmt: skip
        "camera_type_p": dict(zip(CAMERA_TYPES, CAMERA_TYPE_P, strict=True)),
        "speed_limit_p": dict(zip(map(str, SPEED_LIMITS), SPEED_LIMIT_P, strict=True)),
        "maintenance_share_per_day": MAINTENANCE_SHARE,
        "decommissioned_share": DECOMMISSIONED_SHARE,
        "decommissioned_after_days": list(DECOMMISSION_AFTER_DAYS),
        "status_values": list(STATUSES),
        "encoding": "utf-8",
        "defect_kinds": ["duplicate_record", "missing_required", "outside_kazakhstan", "renamed_column"],
    }


# --- the cameras -----------------------------------------------------------------------------


@lru_cache(maxsize=4)
def cameras(seed: int, scale: float, params: Params = Params()) -> pl.DataFrame:
    """Every camera the register will ever hold (installed or not yet), by city and serial.

    Columns: camera_id, city (index into CITIES), kato_code, address, lat, lon, camera_type
    (index into CAMERA_TYPES), speed_limit_kmh, installed (ordinal day), decommissioned (ordinal
    day, 0 if never) and busyness (the camera's traffic relative to its city's mean: gamma,
    normalised to mean 1 per city).
    """
    rng = rng_for(seed, FEED + ":cameras", CATALOGUE_DAY)
    parts = [_city_cameras(rng, i, city, scale, params) for i, city in enumerate(CITIES)]
    return pl.concat(parts)


def statuses(seed: int, day: date, scale: float, params: Params = Params()) -> np.ndarray:
    """Each camera's status on `day` as an index into STATUSES, -1 if not installed yet."""
    cams = cameras(seed, scale, params)
    installed = cams["installed"].to_numpy() <= day.toordinal()
    decommissioned = cams["decommissioned"].to_numpy()
    gone = (decommissioned > 0) & (decommissioned <= day.toordinal())
    maintenance = rng_for(seed, FEED + ":maintenance", day).random(cams.height) < MAINTENANCE_SHARE
    status = np.select([gone, maintenance], [STATUSES.index("decommissioned"), STATUSES.index("maintenance")],
                       STATUSES.index("active"))  # fmt: skip
    return np.where(installed, status, -1)


def _city_cameras(rng: np.random.Generator, index: int, city: City, scale: float,
                  params: Params) -> pl.DataFrame:  # fmt: skip
    n = max(1, round(city.cameras * scale))
    launch = (city.launch or params.sergek_rollout).toordinal()
    later = rng.random(n) >= city.initial_share
    installed = np.sort(np.where(later, launch + rng.integers(1, city.growth_days + 1, n), launch))
    life = rng.integers(DECOMMISSION_AFTER_DAYS[0], DECOMMISSION_AFTER_DAYS[1] + 1, n)
    decommissioned = np.where(rng.random(n) < DECOMMISSIONED_SHARE, installed + life, 0)
    centre_lat, centre_lon, kato = _centre(city)
    offset = rng.normal(0.0, city.coord_sd_deg, (2, n)).clip(-3 * city.coord_sd_deg, 3 * city.coord_sd_deg)
    lat = (centre_lat + offset[0]).clip(*KZ_LAT).round(6)
    lon = (centre_lon + offset[1]).clip(*KZ_LON).round(6)
    camera_type = rng.choice(len(CAMERA_TYPES), size=n, p=CAMERA_TYPE_P)
    speed_limit = np.asarray(SPEED_LIMITS)[rng.choice(len(SPEED_LIMITS), size=n, p=SPEED_LIMIT_P)]
    busyness = rng.gamma(BUSYNESS_SHAPE, 1.0, n)
    busyness /= busyness.mean()
    streets = np.asarray(city.streets)
    street = streets[rng.integers(0, streets.size, n)]
    cross = streets[rng.integers(0, streets.size, n)]
    house = rng.integers(1, 250, n).astype(str)
    # Red-light cameras stand at crossroads ("A / B"); the others on a road section ("A, 12").
    at_crossroads = (camera_type == CAMERA_TYPES.index("red_light")) & (street != cross)
    address = np.where(at_crossroads, np.char.add(np.char.add(street, " / "), cross),
                       np.char.add(np.char.add(street, ", "), house))  # fmt: skip
    if kato is None:
        district = 10 + rng.integers(0, DISTRICTS[city.key], n)
        kato_code = np.char.add(np.char.add(city.kato_prefix, district.astype(str)), "00000")
    else:
        kato_code = np.full(n, kato)
    return pl.DataFrame({
        "camera_id": np.char.add(f"SRG-{city.code}-", np.char.zfill(np.arange(1, n + 1).astype(str), 5)),
        "city": pl.Series(np.full(n, index), dtype=pl.UInt32),
        "kato_code": kato_code, "address": address, "lat": lat, "lon": lon,
        "camera_type": pl.Series(camera_type, dtype=pl.UInt32), "speed_limit_kmh": speed_limit,
        "installed": installed, "decommissioned": decommissioned, "busyness": busyness,
    })  # fmt: skip


def _centre(city: City) -> tuple[float, float, str | None]:
    if city.key == "aqkol":
        town = load_towns()["aqkol"]
        return town.centre_lat, town.centre_lon, town.kato_code
    region = next(r for r in load_regions() if r.kato_prefix == city.kato_prefix)
    return region.centre_lat, region.centre_lon, None


# --- writing ---------------------------------------------------------------------------------


def _render(cams: pl.DataFrame, status: np.ndarray, day: date) -> pl.DataFrame:
    epoch = date(1970, 1, 1).toordinal()

    def as_date(column: str) -> pl.Expr:
        return (pl.col(column) - epoch).cast(pl.Int32).cast(pl.Date).dt.strftime("%Y-%m-%d")

    decommissioned = pl.col("decommissioned")
    return cams.with_columns(status=pl.Series(status, dtype=pl.UInt32)).select(
        "camera_id", "kato_code",
        city=pl.lit(pl.Series([c.name for c in CITIES])).gather(pl.col("city")),
        address="address", lat="lat", lon="lon",
        camera_type=pl.lit(pl.Series(CAMERA_TYPES)).gather(pl.col("camera_type")),
        speed_limit_kmh="speed_limit_kmh",
        installed_on=as_date("installed"),
        decommissioned_on=pl.when((decommissioned > 0) & (decommissioned <= day.toordinal()))
        .then(as_date("decommissioned")),
        status=pl.lit(pl.Series(STATUSES)).gather(pl.col("status")),
    )  # fmt: skip


def _plant_defects(ctx: DayContext, frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    if ctx.defect_rate <= 0:
        return frame
    planter = RowDefects(ctx, frame)
    planter.blank("kato_code", share=0.5)
    planter.blank("installed_on", share=0.5)
    # The sign lost in a hand-edited row: a longitude west of Greenwich.
    planter.replace("outside_kazakhstan", "lon", lambda rng, old: [-v for v in old], share=0.5)
    planter.duplicate()
    frame = planter.finish(path)
    if ctx.maybe("renamed_column"):
        frame = frame.rename({"lat": "latitude"})
        ctx.record(path, "renamed_column", None, column="lat", detail="sent as 'latitude'")
    return frame

