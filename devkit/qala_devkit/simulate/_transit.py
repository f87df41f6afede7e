"""The public-transport networks the three transport feeds share (private: no FEED here).

One network per city operator (Almaty, Astana, Shymkent): stops, routes, the weekday and the
weekend timetable, the vehicles. It depends only on (seed, operator, scale), never on the day,
so the GTFS static zip of any day, the GTFS-Realtime snapshots and the smart-card validations
all speak of the same route_id / trip_id / stop_id / vehicle_id.

Geometry: each city's box is cut into a grid of ~450 m cells; a bus or trolleybus route is an
L-shaped walk over the grid (a stop in every cell it crosses, 15-41 stops), so routes that
cross share a stop, as real ones do. The rail lines are fixed: Almaty metro line 1 (11
stations, approximate coordinates) and the Astana LRT (18 stations on an approximate
airport - Nurly Zhol alignment). Network size grows with scale: bus and trolleybus routes
≈ round(routes_at_scale_1 · scale), at least one of each mode the city has; the rail lines are
one each at any scale (a fixed-size part of the network).

Timetable: departures follow a headway that shortens in the weekday rush hours (07-10,
17-20) and lengthens in the evening; weekends and public holidays run the weekend service.
Trip times are whole minutes; some routes run their last trips after 23:30, so their times
pass 24:00:00 (GTFS service-day time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from transforms.settings import LOCAL_TZ
from qala_devkit.simulate.base import DayContext
from qala_devkit.simulate.world import rng_for

TZ = ZoneInfo(LOCAL_TZ)
CELL_M = 450.0  # grid cell = spacing of bus stops
KM_PER_DEG_LAT = 111.32

WEEKDAY, WEEKEND = 0, 1
SERVICE_IDS = ("WD", "WE")
# Fixed-date public holidays (month, day): the weekend service runs on those that fall on a
# weekday. Kurban Ait (lunar) and the government's transfers of days off are not modelled.
HOLIDAYS = ((1, 1), (1, 2), (1, 7), (3, 8), (3, 21), (3, 22), (3, 23), (5, 1), (5, 7), (5, 9),
            (7, 6), (8, 30), (10, 25), (12, 16))  # fmt: skip
# Weekday rush hours (service-day hours) for frequencies, running times and lateness.
RUSH_HOURS = (7, 8, 9, 17, 18, 19)


@dataclass(frozen=True)
class Mode:
    name: str  # bus, trolleybus, metro, lrt
    route_type: int  # GTFS route_type
    letter: str  # in route_id and vehicle_id
    speed_kmh: float  # commercial speed, stops included
    color: str
    agency: int  # index into the operator's agencies


BUS = Mode("bus", 3, "B", 16.0, "0A6EBD", 0)
TROLLEYBUS = Mode("trolleybus", 11, "T", 14.0, "2E7D32", 0)
METRO = Mode("metro", 1, "M", 38.0, "D32F2F", 1)
LRT = Mode("lrt", 0, "L", 30.0, "7B1FA2", 1)
MODES = (BUS, TROLLEYBUS, METRO, LRT)


@dataclass(frozen=True)
class Agency:
    agency_id: str
    name: str
    url: str
    phone: str


@dataclass(frozen=True)
class RailLine:
    mode: Mode
    short_name: str
    waypoints: tuple[tuple[float, float], ...]  # (lat, lon) polyline the stations lie on
    stations_ru: tuple[str, ...]
    stations_kk: tuple[str, ...]
    headway_min: float  # midday


@dataclass(frozen=True)
class Operator:
    key: str  # almaty, astana, shymkent
    code: str  # ALA, AST, SHY: prefix of the ids
    name_ru: str
    kato_prefix: str
    bbox: tuple[float, float, float, float]  # lat_min, lat_max, lon_min, lon_max: "the city"
    centre: tuple[float, float]
    agencies: tuple[Agency, ...]
    bus_routes: int  # at scale 1
    trolleybus_routes: int  # at scale 1
    rail: RailLine | None
    streets_ew: tuple[tuple[str, str], ...]  # (ru, kk), one per band of grid rows
    streets_ns: tuple[tuple[str, str], ...]  # one per band of grid columns
    termini: tuple[str, ...]  # neighbourhoods for route names and headsigns


ALMATY_METRO = RailLine(
    METRO, "1",
    ((43.2710, 76.9440), (43.2513, 76.9453), (43.2428, 76.9496), (43.2404, 76.9278),
     (43.2362, 76.8770), (43.2270, 76.8303)),
    ("Райымбек батыр", "Жибек Жолы", "Алмалы", "Абай", "Байконур", "Театр им. М. Ауэзова", "Алатау",
     "Сайран", "Москва", "Сарыарка", "Бауыржан Момышулы"),
    ("Райымбек батыр", "Жібек жолы", "Алмалы", "Абай", "Байқоңыр", "М. Әуезов атындағы театр", "Алатау",
     "Сайран", "Мәскеу", "Сарыарқа", "Бауыржан Момышұлы"),
    10.0,
)  # fmt: skip
ASTANA_LRT = RailLine(
    LRT, "LRT",
    ((51.0310, 71.4660), (51.0890, 71.4190), (51.1200, 71.4370), (51.1280, 71.4700),
     (51.1120, 71.5310)),
    ("Аэропорт", "Кабанбай батыра", "Туран", "ЭКСПО", "Улы Дала", "Мангилик Ел", "Орынбор", "Хан Шатыр",
     "Сыганак", "Байтерек", "Керуен", "Достык", "Кунаева", "Акорда", "Жубанова", "Тауелсиздик",
     "Бейбитшилик", "Нурлы жол"),
    ("Әуежай", "Қабанбай батыр", "Тұран", "EXPO", "Ұлы Дала", "Мәңгілік Ел", "Орынбор", "Хан Шатыр",
     "Сығанақ", "Бәйтерек", "Керуен", "Достық", "Қонаев", "Ақорда", "Жұбанов", "Тәуелсіздік",
     "Бейбітшілік", "Нұрлы жол"),
    8.0,
)  # fmt: skip

OPERATORS = (
    Operator(
        "almaty", "ALA", "Алматы", "75", (43.15, 43.35, 76.74, 77.05), (43.24, 76.89),
        (Agency("ALA-TH", "ТОО «Транспортный холдинг города Алматы»", "https://alatransit.kz",
                "+7 727 300 30 30"),
         Agency("ALA-METRO", "КГП «Метрополитен» города Алматы", "https://metroalmaty.kz",
                "+7 727 274 40 00")),
        139, 10, ALMATY_METRO,
        (("проспект Райымбека", "Райымбек даңғылы"), ("улица Жибек жолы", "Жібек жолы көшесі"),
         ("улица Толе би", "Төле би көшесі"), ("улица Кабанбай батыра", "Қабанбай батыр көшесі"),
         ("проспект Абая", "Абай даңғылы"), ("улица Тимирязева", "Тимирязев көшесі"),
         ("проспект Аль-Фараби", "Әл-Фараби даңғылы"), ("улица Сатпаева", "Сәтбаев көшесі"),
         ("улица Жандосова", "Жандосов көшесі"), ("улица Богенбай батыра", "Бөгенбай батыр көшесі")),
        (("улица Момышулы", "Момышұлы көшесі"), ("проспект Саина", "Саин даңғылы"),
         ("проспект Гагарина", "Гагарин даңғылы"), ("улица Розыбакиева", "Розыбакиев көшесі"),
         ("улица Ауэзова", "Әуезов көшесі"), ("улица Байзакова", "Байзақов көшесі"),
         ("улица Желтоксан", "Желтоқсан көшесі"), ("проспект Абылай хана", "Абылай хан даңғылы"),
         ("проспект Назарбаева", "Назарбаев даңғылы"), ("проспект Достык", "Достық даңғылы")),
        ("мкр. Алмагуль", "мкр. Шанырак", "мкр. Калкаман", "мкр. Орбита", "мкр. Айнабулак",
         "мкр. Аксай-4", "мкр. Самал-2", "Сайран", "Алматы-2", "Алматы-1", "Барахолка",
         "мкр. Жетысу", "мкр. Таугуль", "мкр. Каргалы", "мкр. Кок-Тобе", "Медеу"),
    ),  # fmt: skip
    Operator(
        "astana", "AST", "Астана", "71", (51.02, 51.26, 71.25, 71.62), (51.15, 71.43),
        (Agency("AST-CTS", "ТОО «City Transportation Systems»", "https://cts.astana.kz",
                "+7 7172 55 50 50"),
         Agency("AST-LRT", "ТОО «Astana LRT»", "https://astanalrt.kz", "+7 7172 55 00 55")),
        119, 0, ASTANA_LRT,
        (("проспект Республики", "Республика даңғылы"), ("улица Кенесары", "Кенесары көшесі"),
         ("проспект Абая", "Абай даңғылы"), ("проспект Сарыарка", "Сарыарқа даңғылы"),
         ("проспект Богенбай батыра", "Бөгенбай батыр даңғылы"), ("улица Бейбитшилик", "Бейбітшілік көшесі"),
         ("проспект Мангилик Ел", "Мәңгілік Ел даңғылы"), ("проспект Туран", "Тұран даңғылы"),
         ("проспект Кабанбай батыра", "Қабанбай батыр даңғылы"), ("улица Сыганак", "Сығанақ көшесі")),
        (("шоссе Коргалжын", "Қорғалжын тас жолы"), ("улица Иманова", "Иманов көшесі"),
         ("улица Сейфуллина", "Сейфуллин көшесі"), ("проспект Кошкарбаева", "Қошқарбаев даңғылы"),
         ("улица Жубанова", "Жұбанов көшесі"), ("улица Ауэзова", "Әуезов көшесі"),
         ("проспект Тауелсиздик", "Тәуелсіздік даңғылы"), ("улица Акмешит", "Ақмешіт көшесі"),
         ("улица Достык", "Достық көшесі"), ("улица Алматы", "Алматы көшесі")),
        ("ж/д вокзал Нурлы жол", "Аэропорт", "мкр. Юго-Восток", "Железнодорожный", "ЭКСПО",
         "мкр. Кошкарбаева", "пос. Интернациональный", "мкр. Жагалау", "ТРЦ «Хан Шатыр»",
         "ТРЦ «Керуен»", "Старый вокзал", "мкр. Целинный", "пос. Ондирис", "мкр. Акбулак"),
    ),  # fmt: skip
    Operator(
        "shymkent", "SHY", "Шымкент", "79", (42.22, 42.42, 69.45, 69.75), (42.32, 69.59),
        (Agency("SHY-BUS", "ТОО «Shymkent Bus»", "https://shymkentbus.kz", "+7 7252 33 33 33"),),
        70, 0, None,
        (("проспект Тауке хана", "Тәуке хан даңғылы"), ("проспект Республики", "Республика даңғылы"),
         ("улица Байтурсынова", "Байтұрсынов көшесі"), ("улица Толе би", "Төле би көшесі"),
         ("проспект Кунаева", "Қонаев даңғылы"), ("улица Жибек жолы", "Жібек жолы көшесі"),
         ("проспект Абая", "Абай даңғылы"), ("улица Момышулы", "Момышұлы көшесі")),
        (("улица Аль-Фараби", "Әл-Фараби көшесі"), ("улица Байдибек би", "Байдібек би көшесі"),
         ("улица Елшибек батыра", "Елшібек батыр көшесі"), ("улица Казыбек би", "Қазыбек би көшесі"),
         ("Тамерлановское шоссе", "Тамерлан тас жолы"), ("улица Адырбекова", "Адырбеков көшесі"),
         ("улица Желтоксан", "Желтоқсан көшесі"), ("проспект Назарбаева", "Назарбаев даңғылы")),
        ("мкр. Нурсат", "мкр. Самал", "мкр. Туран", "Рынок Айна", "ж/д вокзал", "Автовокзал",
         "мкр. Кайтпас", "мкр. Асар", "мкр. Тассай", "мкр. Северо-Запад", "ТРЦ «Мега»"),
    ),  # fmt: skip
)
OPERATOR_KEYS = tuple(op.key for op in OPERATORS)
BY_KEY = {op.key: op for op in OPERATORS}


def operator(key: str) -> Operator:
    return BY_KEY[key]


# --- calendar --------------------------------------------------------------------------------


def is_holiday(day: date) -> bool:
    return (day.month, day.day) in HOLIDAYS


def service_of(day: date) -> int:
    """WEEKDAY or WEEKEND: which timetable runs on `day` (holidays run the weekend one)."""
    return WEEKEND if day.weekday() >= 5 or is_holiday(day) else WEEKDAY


def midnight_posix(day: date) -> int:
    """POSIX seconds of local midnight starting `day` (the GTFS service day's zero: no DST in KZ).

    UTC+6 until 2024-03-01, UTC+5 after: zoneinfo knows.
    """
    return int(datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp())


def hhmmss(seconds: np.ndarray) -> pl.Series:
    """Seconds since the service day's start -> GTFS time HH:MM:SS (hours may pass 24).

    Timetables have a few thousand distinct times: format those, then gather.
    """
    values, inverse = np.unique(seconds, return_inverse=True)
    text = [f"{v // 3600:02d}:{v // 60 % 60:02d}:{v % 60:02d}" for v in values.tolist()]
    return pl.Series(text, dtype=pl.String).gather(inverse)


def maybe_file(ctx: DayContext, kind: str, key: str, share: float = 1.0) -> bool:
    """Whole-file defect `kind` for operator `key`'s file of the day: probability defect_rate x
    share, from its own stream per operator (like DayContext.maybe, per file)."""
    return bool(ctx.rng(f"file-defect:{kind}:{key}").random() < ctx.defect_rate * share)


# --- the network -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Network:
    """An operator's network and both timetables, as arrays (indices refer to the tables here).

    stop_times are ordered by trip, then stop_sequence; `trip_first[t]` is trip t's first row.
    """

    operator: Operator
    stop_id: np.ndarray
    stop_name_ru: np.ndarray
    stop_name_kk: np.ndarray
    stop_lat: np.ndarray
    stop_lon: np.ndarray
    stop_weight: np.ndarray  # how busy a stop is (boardings), mean ~1
    route_id: np.ndarray
    route_short: np.ndarray
    route_long: np.ndarray
    route_mode: np.ndarray  # index into MODES
    route_termini: np.ndarray  # (n_routes, 2) terminus names
    trip_id: np.ndarray
    trip_route: np.ndarray
    trip_service: np.ndarray  # WEEKDAY / WEEKEND
    trip_dir: np.ndarray
    trip_vehicle: np.ndarray  # index into vehicle_id
    trip_first: np.ndarray
    trip_count: np.ndarray  # stops of the trip
    vehicle_id: np.ndarray
    st_trip: np.ndarray
    st_seq: np.ndarray  # 1-based stop_sequence
    st_stop: np.ndarray
    st_time: np.ndarray  # seconds since the service day's start (arrival = departure)
    shape_stops: tuple[np.ndarray, ...]  # per (route, direction): stop indices in order

    @property
    def st_last(self) -> np.ndarray:
        """Whether each stop_times row is its trip's last stop (nobody boards there)."""
        return self.st_seq == self.trip_count[self.st_trip]


@lru_cache(maxsize=8)
def network(seed: int, key: str, scale: float) -> Network:
    """The operator's network at this scale (cached: every feed and every day reuses it)."""
    op = BY_KEY[key]
    rng = rng_for(seed, f"transport/_network:{key}", date(2020, 1, 1))
    grid = _Grid(op)
    n_bus = max(1, round(op.bus_routes * scale))
    n_trolley = max(1, round(op.trolleybus_routes * scale)) if op.trolleybus_routes else 0
    # Route stop lists (direction 0), as grid cells; rail stations get cells after the grid's.
    paths = [_grid_path(rng, grid, spread=0.28) for _ in range(n_bus)]
    paths += [_grid_path(rng, grid, spread=0.16) for _ in range(n_trolley)]
    modes = [MODES.index(BUS)] * n_bus + [MODES.index(TROLLEYBUS)] * n_trolley
    shorts = list(np.sort(rng.choice(np.arange(1, 300), n_bus, replace=False)).astype(str))
    shorts += list(np.sort(rng.choice(np.arange(1, 25), n_trolley, replace=False)).astype(str))
    cells = np.unique(np.concatenate(paths)) if paths else np.empty(0, dtype=np.int64)
    lat, lon = grid.position(cells, rng_for(seed, f"transport/_stops:{key}", date(2020, 1, 1)))
    ru, kk = grid.names(cells)
    stop_id = np.char.add(op.code, np.char.zfill((cells + 10001).astype(str), 5))
    index_of = {int(c): i for i, c in enumerate(cells)}
    stop_paths = [np.array([index_of[int(c)] for c in p]) for p in paths]
    if op.rail is not None:
        rail = op.rail
        base = cells.size
        r_lat, r_lon = _along(rail.waypoints, len(rail.stations_ru))
        lat, lon = np.concatenate([lat, r_lat]), np.concatenate([lon, r_lon])
        ru = np.concatenate([ru, np.array(rail.stations_ru, dtype=object)])
        kk = np.concatenate([kk, np.array(rail.stations_kk, dtype=object)])
        rail_ids = [f"{op.code}{rail.mode.letter}{k + 1:02d}" for k in range(len(rail.stations_ru))]
        stop_id = np.concatenate([stop_id.astype(object), np.array(rail_ids, dtype=object)])
        stop_paths.append(base + np.arange(len(rail.stations_ru)))
        modes.append(MODES.index(rail.mode))
        shorts.append(rail.short_name)
    n_routes = len(stop_paths)
    modes_arr = np.array(modes)
    # Busier stops near the centre; rail stations busiest.
    dist_km = _distance_km(lat, lon, *op.centre)
    weight = (1.0 + 2.5 * np.exp(-((dist_km / 5.0) ** 2))) * rng.lognormal(0.0, 0.5, lat.size)
    if op.rail is not None:
        weight[-len(op.rail.stations_ru):] *= 6.0
    weight /= weight.mean()
    termini = np.array(op.termini, dtype=object)
    ends = np.array([rng.choice(len(termini), 2, replace=False) for _ in range(n_routes)])
    route_termini = termini[ends]
    if op.rail is not None:
        route_termini[-1] = [op.rail.stations_ru[0], op.rail.stations_ru[-1]]
    route_id = np.array([f"{op.code}-{MODES[m].letter}-{s}" for m, s in zip(modes, shorts, strict=True)],
                        dtype=object)  # fmt: skip
    route_long = np.array([f"{a} — {b}" for a, b in route_termini], dtype=object)
    timetable = _timetable(rng, op, stop_paths, modes_arr, lat, lon, route_id)
    return Network(
        operator=op,
        stop_id=np.asarray(stop_id, dtype=object),
        stop_name_ru=np.asarray(ru, dtype=object),
        stop_name_kk=np.asarray(kk, dtype=object),
        stop_lat=np.round(lat, 6),
        stop_lon=np.round(lon, 6),
        stop_weight=weight,
        route_id=route_id,
        route_short=np.array(shorts, dtype=object),
        route_long=route_long,
        route_mode=modes_arr,
        route_termini=route_termini,
        shape_stops=tuple(p for path in stop_paths for p in (path, path[::-1])),
        **timetable,
    )


# Headways (minutes, midday) a bus or trolleybus route may have, and how often.
BUS_HEADWAYS = (8.0, 10.0, 12.0, 15.0, 20.0)
BUS_HEADWAY_P = (0.15, 0.30, 0.30, 0.15, 0.10)
TROLLEYBUS_HEADWAYS = (10.0, 12.0, 15.0)
# Headway multipliers: rush hours, early morning, late evening, weekend (all day).
RUSH_HEADWAY, EARLY_HEADWAY, EVENING_HEADWAY, WEEKEND_HEADWAY = 0.7, 1.3, 1.6, 1.25
RUSH_RUNNING_TIME = 1.15  # trips leaving in a weekday rush hour are scheduled 15% slower
LATE_ROUTE_SHARE = 0.2  # routes whose last trips leave after 23:30 and end after midnight
LAYOVER_MIN = 10.0
MINUTES = 24 * 60


class _Grid:
    """The city's box cut into CELL_M cells; cell = row * n_cols + col (row 0 in the south)."""

    LANDMARKS = (("поликлиника", "емхана"), ("школа", "мектеп"), ("рынок", "базар"),
                 ("ЦОН", "ХҚКО"), ("акимат района", "аудан әкімдігі"), ("парк", "саябақ"))  # fmt: skip

    def __init__(self, op: Operator):
        self.op = op
        lat_min, lat_max, lon_min, lon_max = op.bbox
        self.dlat = CELL_M / 1000 / KM_PER_DEG_LAT
        self.dlon = CELL_M / 1000 / (KM_PER_DEG_LAT * math.cos(math.radians(op.centre[0])))
        self.rows = int((lat_max - lat_min) / self.dlat)
        self.cols = int((lon_max - lon_min) / self.dlon)

    def position(self, cells: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres, each moved by a fixed jitter (drawn for every cell, so a cell's stop
        is at the same place whichever routes use it)."""
        jitter = rng.uniform(-0.2, 0.2, (2, self.rows * self.cols))
        row, col = cells // self.cols, cells % self.cols
        lat = self.op.bbox[0] + (row + 0.5 + jitter[0, cells]) * self.dlat
        lon = self.op.bbox[2] + (col + 0.5 + jitter[1, cells]) * self.dlon
        return lat, lon

    def names(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stop names in Russian and Kazakh: the crossing streets (each street spans a band of
        cells), or a street and a landmark ("проспект Абая, рынок")."""
        ew, ns = self.op.streets_ew, self.op.streets_ns
        row, col = cells // self.cols, cells % self.cols
        street_ew = row * len(ew) // self.rows
        street_ns = col * len(ns) // self.cols
        landmark = (cells * 7919) % 23  # a fixed pseudo-random pick per cell
        ru, kk = [], []
        for a, b, m in zip(street_ew, street_ns, landmark, strict=True):
            if m < len(self.LANDMARKS):
                ru.append(f"{ew[a][0]}, {self.LANDMARKS[m][0]}")
                kk.append(f"{ew[a][1]}, {self.LANDMARKS[m][1]}")
            else:
                ru.append(f"{ns[b][0]} / {ew[a][0]}")
                kk.append(f"{ns[b][1]} / {ew[a][1]}")
        return np.array(ru, dtype=object), np.array(kk, dtype=object)


def _grid_path(rng: np.random.Generator, grid: _Grid, spread: float) -> np.ndarray:
    """An L-shaped route over the grid with 15-41 stops, its ends scattered around the centre."""
    centre = np.array([grid.rows / 2, grid.cols / 2])
    size = np.array([grid.rows, grid.cols])
    while True:
        ends = np.round(rng.normal(centre, spread * size, (2, 2))).astype(int)
        ends = np.clip(ends, 0, size - 1)
        (r0, c0), (r1, c1) = ends
        if 14 <= abs(r1 - r0) + abs(c1 - c0) <= 40:
            break
    step_r, step_c = (1 if r1 >= r0 else -1), (1 if c1 >= c0 else -1)
    rows_first = rng.random() < 0.5
    if rows_first:
        leg1 = [(r, c0) for r in range(r0, r1 + step_r, step_r)]
        leg2 = [(r1, c) for c in range(c0 + step_c, c1 + step_c, step_c)] if c1 != c0 else []
    else:
        leg1 = [(r0, c) for c in range(c0, c1 + step_c, step_c)]
        leg2 = [(r, c1) for r in range(r0 + step_r, r1 + step_r, step_r)] if r1 != r0 else []
    return np.array([r * grid.cols + c for r, c in leg1 + leg2], dtype=np.int64)


def _along(waypoints: tuple[tuple[float, float], ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    """n points evenly spaced along a polyline (the rail stations)."""
    points = np.array(waypoints)
    seg = np.hypot(np.diff(points[:, 0]), np.diff(points[:, 1]) * math.cos(math.radians(points[0, 0])))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    at = np.linspace(0.0, cum[-1], n)
    return np.interp(at, cum, points[:, 0]), np.interp(at, cum, points[:, 1])


def _distance_km(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    """Flat-earth distance: fine within a city."""
    dy = (lat - lat0) * KM_PER_DEG_LAT
    dx = (lon - lon0) * KM_PER_DEG_LAT * np.cos(np.radians(lat0))
    return np.hypot(dx, dy)


def _timetable(rng: np.random.Generator, op: Operator, stop_paths: list[np.ndarray], modes: np.ndarray,
               lat: np.ndarray, lon: np.ndarray, route_id: np.ndarray) -> dict[str, np.ndarray]:  # fmt: skip
    """Both services' trips and stop_times, vectorised over routes x minutes of the day.

    Patterns p = (route, service, direction), in that order. A pattern's departures: the
    running sum of 1/headway over the minutes of its service span crosses an integer.
    """
    n_routes = len(stop_paths)
    is_rail = np.isin(modes, [MODES.index(METRO), MODES.index(LRT)])
    headway = np.where(
        modes == MODES.index(TROLLEYBUS),
        rng.choice(TROLLEYBUS_HEADWAYS, n_routes),
        rng.choice(BUS_HEADWAYS, n_routes, p=BUS_HEADWAY_P),
    )
    if op.rail is not None:
        headway[is_rail] = op.rail.headway_min
    first = np.where(is_rail, 360, 345 + rng.integers(0, 46, n_routes))
    # Running times per direction: flat arrays of cumulative seconds from the first stop.
    dir_paths = [p for path in stop_paths for p in (path, path[::-1])]
    speed = np.array([MODES[m].speed_kmh for m in modes])
    km_lon = KM_PER_DEG_LAT * math.cos(math.radians(op.centre[0]))
    cum_parts = []
    for k, path in enumerate(dir_paths):
        seg = np.hypot(np.diff(lat[path]) * KM_PER_DEG_LAT, np.diff(lon[path]) * km_lon)
        cum_parts.append(np.concatenate([[0.0], np.cumsum(seg / speed[k // 2] * 3600.0)]))
    dir_len = np.array([p.size for p in dir_paths])
    dir_off = np.concatenate([[0], np.cumsum(dir_len)[:-1]])
    dir_cum = np.concatenate(cum_parts)
    dir_stops = np.concatenate(dir_paths)
    runtime_min = dir_cum[dir_off + dir_len - 1] / 60.0  # per (route, direction)
    # Last departures: 21:30-23:00, or, on "late" routes (always the first, so every scale has
    # one), a last trip leaving 30-70% of a run before midnight, so it ends after 24:00:00.
    late = (rng.random(n_routes) < LATE_ROUTE_SHARE) | (np.arange(n_routes) == 0)
    before_midnight = np.ceil(runtime_min[0::2] * rng.uniform(0.3, 0.7, n_routes)).astype(int)
    last = np.where(late, MINUTES - before_midnight, 1290 + rng.integers(0, 91, n_routes))
    last = np.where(is_rail, 1410, last)
    fleet = np.ceil(2 * (runtime_min.reshape(-1, 2).max(axis=1) * RUSH_RUNNING_TIME + LAYOVER_MIN)
                    / (headway * RUSH_HEADWAY)).astype(int)  # fmt: skip
    # Minute-by-minute intensity (departures per minute) of every pattern.
    minute = np.arange(MINUTES)
    hour = minute // 60
    rush = np.isin(hour, RUSH_HOURS)
    factor = np.stack([
        np.select([rush, hour < 7, hour >= 21], [RUSH_HEADWAY, EARLY_HEADWAY, EVENING_HEADWAY], 1.0),
        np.where(hour >= 21, EVENING_HEADWAY, 1.0) * WEEKEND_HEADWAY,
    ])  # fmt: skip
    pat_route = np.repeat(np.arange(n_routes), 4)
    pat_service = np.tile(np.repeat([WEEKDAY, WEEKEND], 2), n_routes)
    pat_dir = np.tile([0, 1], 2 * n_routes)
    shift = np.where(pat_dir == 1, rng.integers(0, 8, pat_route.size), 0)
    start = first[pat_route] + 15 * pat_service + shift
    end = last[pat_route]
    span = (minute >= start[:, None]) & (minute <= end[:, None])
    intensity = np.where(span, 1.0 / (headway[pat_route, None] * factor[pat_service]), 0.0)
    before = np.cumsum(intensity, axis=1) - intensity + (1.0 - 1e-9)
    pattern, dep = np.nonzero(np.floor(before) < np.floor(before + intensity))
    route = pat_route[pattern]
    service = pat_service[pattern]
    direction = pat_dir[pattern]
    k = np.arange(pattern.size) - np.searchsorted(pattern, pattern)  # index within the pattern
    slow = (service == WEEKDAY) & np.isin(dep // 60, RUSH_HOURS)
    # Trips' stop_times.
    rd = route * 2 + direction
    count = dir_len[rd]
    trip_first = np.concatenate([[0], np.cumsum(count)[:-1]])
    st_trip = np.repeat(np.arange(pattern.size), count)
    pos = np.arange(st_trip.size) - trip_first[st_trip]
    offset = dir_cum[dir_off[rd][st_trip] + pos] * np.where(slow, RUSH_RUNNING_TIME, 1.0)[st_trip]
    st_time = dep[st_trip] * 60 + np.round(offset / 60.0).astype(np.int64) * 60
    vehicle_base = np.concatenate([[0], np.cumsum(fleet)[:-1]])
    local = (k + direction * (fleet[route] // 2)) % fleet[route]
    letters = np.array([MODES[m].letter for m in modes])
    vehicle_route = np.repeat(np.arange(n_routes), fleet)
    vehicle_id = pl.select(pl.concat_str(
        pl.lit(op.code + "-"), pl.Series(letters[vehicle_route]),
        pl.Series(np.arange(1, fleet.sum() + 1)).cast(pl.String).str.zfill(4),
    )).to_series().to_numpy()  # fmt: skip
    trip_id = pl.select(pl.concat_str(
        pl.Series(route_id[route], dtype=pl.String), pl.Series(np.array(SERVICE_IDS)[service]),
        pl.Series(direction).cast(pl.String), pl.Series(k).cast(pl.String).str.zfill(3), separator="-",
    )).to_series().to_numpy()  # fmt: skip
    return {
        "trip_id": trip_id,
        "trip_route": route,
        "trip_service": service,
        "trip_dir": direction,
        "trip_vehicle": vehicle_base[route] + local,
        "trip_first": trip_first,
        "trip_count": count,
        "vehicle_id": vehicle_id,
        "st_trip": st_trip.astype(np.int32),
        "st_seq": (pos + 1).astype(np.int32),
        "st_stop": dir_stops[dir_off[rd][st_trip] + pos].astype(np.int32),
        "st_time": st_time.astype(np.int32),
    }


def calendar_day_rows(net: Network, day: date) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stop_times rows served on the calendar day `day`, from 00:00 to 24:00 local time.

    That is the day's own service before 24:00:00 and the previous service day's trips after
    midnight. Returns (rows into st_*, the service day's offset: 0 or -1, seconds since `day`'s
    midnight).
    """
    service = net.trip_service[net.st_trip]
    today = (service == service_of(day)) & (net.st_time < 86400)
    yesterday = (service == service_of(day - timedelta(days=1))) & (net.st_time >= 86400)
    rows = np.flatnonzero(today | yesterday)
    offset = np.where(yesterday[rows], -1, 0)
    return rows, offset, net.st_time[rows] + offset * 86400
