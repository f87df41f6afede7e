"""GTFS Schedule (static) feeds of the city transit operators: one zip per operator per week.

Each of Almaty, Astana and Shymkent publishes a weekly build of its schedule, every Monday, as a
GTFS Schedule zip (https://gtfs.org/documentation/schedule/reference/):
`landing/transport/gtfs_static/<Monday>/gtfs_<operator>.zip`, e.g. `gtfs_almaty.zip`. On the
first day of a simulated run the build in force (the last Monday's) lands too, as a new
subscriber downloads the current feed, so every day of a run has its schedule in the lake. A
schedule changes far less often than daily; a daily copy of the same timetable would only
multiply the rows to load (3 zips a day were two thirds of all rows `make run` loads).

Members, in this fixed order: agency.txt, stops.txt, routes.txt, trips.txt, stop_times.txt,
calendar.txt, calendar_dates.txt, shapes.txt, feed_info.txt. UTF-8, comma-separated, a header
line, LF line ends; deflated (level 1: the zips are large at scale 1), each member dated the
build day (the Monday) at 00:00, so the bytes are identical on every run.

The network (see `_transit.py`) is the same on every day, so ids are stable: Almaty runs buses
(route_type 3), trolleybuses (11) and metro line 1 (1, its own agency); Astana buses and the
LRT (0, its own agency); Shymkent buses. Size at scale 1: Almaty ~150 routes, ~1,760 stops,
~50k trips and ~1.36M stop_times rows (weekday and weekend services together); Astana ~120
routes and ~1.14M stop_times rows; Shymkent ~70 routes and ~0.62M rows (bus routes are
≈ round(n · scale), at least one per mode; the two rail lines are fixed-size). Basis: Almaty's city
network has ~150 routes and ~2,000 vehicles on a weekday, Astana's ~120, Shymkent's ~70.

Quirks real feeds have too:
- calendar.txt has two services, WD (Monday-Friday) and WE (Saturday-Sunday), valid from a week
  before the build day to four weeks after it (a build covers its week with room to spare);
  calendar_dates.txt moves the fixed-date public holidays that fall on a weekday to the weekend
  service (exception_type 2 for WD, 1 for WE);
- late-evening trips run past midnight, with times after 24:00:00 (e.g. 24:35:00);
- stops.txt carries a non-standard column `stop_name_kk` (the Kazakh stop name): consumers must
  tolerate columns the reference does not define;
- stop names contain commas, so some fields are quoted.

Defects at the run's defect rate (see base.DEFECT_KINDS), each logged with file, member and line:
- gtfs_missing_file: an operator's zip lacks one required file (stops.txt, routes.txt,
  trips.txt or stop_times.txt), `member` names it, `line` None; probability 2.5 x defect_rate
  per zip (only three zips a week);
- duplicate_record: a stops.txt or stop_times.txt row repeated on the next line (member and
  line given, "same record as line N").

No planted effect: the schedule is the reference the GTFS-Realtime feed (on-time performance)
and the fare validations (route, stop, vehicle ids) are checked against.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from qala_devkit.simulate import _transit as tr
from qala_devkit.simulate.base import DayContext, write_atomic

FEED = "transport/gtfs_static"
DOMAIN, NAME = FEED.split("/")

MEMBERS = ("agency.txt", "stops.txt", "routes.txt", "trips.txt", "stop_times.txt", "calendar.txt",
           "calendar_dates.txt", "shapes.txt", "feed_info.txt")  # fmt: skip
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MISSABLE = ("stops.txt", "routes.txt", "trips.txt", "stop_times.txt")
DAYS_BEFORE, DAYS_AFTER = 7, 27  # the calendar's validity around the build day
BUILD_WEEKDAY = 0  # builds are published on Mondays
DUPLICATE_SHARE = {"stops.txt": 1.0, "stop_times.txt": 0.05}  # x defect_rate, per row
# x defect_rate, per zip: three zips a week, so a short run at a test's defect rate still sees one.
MISSING_SHARE = 2.5
PUBLISHER = ("Qala transit data desk", "https://data.qala.kz/transport", "transit-data@qala.kz")


@dataclass(frozen=True)
class Params:
    """No planted effect in the schedule itself (kept for the module contract)."""


def build_day(day: date) -> date:
    """The day of the build in force on `day`: the Monday on or before it."""
    return day - timedelta(days=(day.weekday() - BUILD_WEEKDAY) % 7)


def lands_on(day: date, first_day: date | None = None) -> bool:
    """Whether the operators' zips land on `day`: a build day, or the run's first day."""
    return day == build_day(day) or day == first_day


def generate_day(ctx: DayContext) -> int:
    """Write each operator's GTFS zip if one lands on ctx.day (see `lands_on`); return the data
    rows (all members, all zips), 0 on the days between builds."""
    if not lands_on(ctx.day, ctx.first_day):
        return 0
    build = build_day(ctx.day)
    rows = 0
    for key in tr.OPERATOR_KEYS:
        path = ctx.folder() / f"gtfs_{key}.zip"
        tables = _tables(tr.network(ctx.seed, key, ctx.scale), build)
        missing = None
        if tr.maybe_file(ctx, "gtfs_missing_file", key, MISSING_SHARE):
            missing = MISSABLE[int(ctx.rng(f"missing-member:{key}").integers(len(MISSABLE)))]
            ctx.record(path, "gtfs_missing_file", None, member=missing,
                       detail=f"the zip has no {missing}, a required file")  # fmt: skip
        members = {}
        for member in MEMBERS:
            if member == missing:
                continue
            frame = tables[member]
            if member in DUPLICATE_SHARE and ctx.defect_rate > 0:
                frame = _duplicate_rows(ctx, frame, path, member, key)
            members[member] = frame.write_csv().encode("utf-8")
            rows += frame.height
        write_atomic(path, zip_bytes(members, build))
    return rows


def zip_bytes(members: dict[str, bytes], day: date) -> bytes:
    """A zip with the members in the given order, each dated `day` 00:00: repeatable bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(day.year, day.month, day.day, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compresslevel=1)
    return buffer.getvalue()


def _duplicate_rows(ctx: DayContext, frame: pl.DataFrame, path: Path, member: str, key: str) -> pl.DataFrame:
    """Repeat some rows right after themselves; log each copy's line within the member."""
    rng = ctx.rng(f"duplicates:{key}:{member}")
    chosen = rng.random(frame.height) < ctx.defect_rate * DUPLICATE_SHARE[member]
    if not chosen.any():
        return frame
    # Line of original row i in the output: header + i + copies inserted before it.
    before = np.cumsum(chosen) - chosen
    for row in np.flatnonzero(chosen):
        line = 2 + row + before[row]
        ctx.record(path, "duplicate_record", int(line + 1), member=member,
                   detail=f"same record as line {int(line)}")  # fmt: skip
    return frame[np.repeat(np.arange(frame.height), 1 + chosen.astype(int))]


def _tables(net: tr.Network, day: date) -> dict[str, pl.DataFrame]:
    """Every member of the operator's feed for the build `day`, as frames of text/number columns."""
    op = net.operator
    start, end = day - timedelta(days=DAYS_BEFORE), day + timedelta(days=DAYS_AFTER)
    agency = pl.DataFrame({
        "agency_id": [a.agency_id for a in op.agencies],
        "agency_name": [a.name for a in op.agencies],
        "agency_url": [a.url for a in op.agencies],
        "agency_timezone": [tr.LOCAL_TZ] * len(op.agencies),
        "agency_lang": ["ru"] * len(op.agencies),
        "agency_phone": [a.phone for a in op.agencies],
    })  # fmt: skip
    stops = pl.DataFrame({
        "stop_id": pl.Series(net.stop_id, dtype=pl.String),
        "stop_name": pl.Series(net.stop_name_ru, dtype=pl.String),
        "stop_lat": net.stop_lat,
        "stop_lon": net.stop_lon,
        "location_type": np.zeros(net.stop_id.size, dtype=np.int8),
        "stop_name_kk": pl.Series(net.stop_name_kk, dtype=pl.String),
    }).sort("stop_id")  # fmt: skip
    modes = net.route_mode
    routes = pl.DataFrame({
        "route_id": pl.Series(net.route_id, dtype=pl.String),
        "agency_id": [op.agencies[tr.MODES[m].agency].agency_id for m in modes],
        "route_short_name": pl.Series(net.route_short, dtype=pl.String),
        "route_long_name": pl.Series(net.route_long, dtype=pl.String),
        "route_type": [tr.MODES[m].route_type for m in modes],
        "route_color": [tr.MODES[m].color for m in modes],
        "route_text_color": ["FFFFFF"] * modes.size,
    })  # fmt: skip
    route = net.trip_route
    headsign = net.route_termini[route, 1 - net.trip_dir]
    trips = pl.DataFrame({
        "route_id": pl.Series(net.route_id[route], dtype=pl.String),
        "service_id": np.array(tr.SERVICE_IDS)[net.trip_service],
        "trip_id": pl.Series(net.trip_id, dtype=pl.String),
        "trip_headsign": pl.Series(headsign, dtype=pl.String),
        "direction_id": net.trip_dir.astype(np.int8),
        "shape_id": _shape_ids(net)[route * 2 + net.trip_dir],
    })  # fmt: skip
    time = tr.hhmmss(net.st_time)
    stop_times = pl.DataFrame({
        "trip_id": pl.Series(net.trip_id, dtype=pl.String).gather(net.st_trip),
        "arrival_time": time,
        "departure_time": time,
        "stop_id": pl.Series(net.stop_id, dtype=pl.String).gather(net.st_stop),
        "stop_sequence": net.st_seq,
    })  # fmt: skip
    weekday = [1, 1, 1, 1, 1, 0, 0]
    calendar = pl.DataFrame(
        {"service_id": list(tr.SERVICE_IDS)}
        | {name: [w, 1 - w] for name, w in zip(WEEKDAY_NAMES, weekday, strict=True)}
        | {"start_date": [start.strftime("%Y%m%d")] * 2, "end_date": [end.strftime("%Y%m%d")] * 2}
    )
    holidays = [d for d in (start + timedelta(days=k) for k in range((end - start).days + 1))
                if tr.is_holiday(d) and d.weekday() < 5]  # fmt: skip
    calendar_dates = pl.DataFrame({
        "service_id": [s for _ in holidays for s in tr.SERVICE_IDS],
        "date": [d.strftime("%Y%m%d") for d in holidays for _ in tr.SERVICE_IDS],
        "exception_type": [e for _ in holidays for e in (2, 1)],
    }, schema={"service_id": pl.String, "date": pl.String, "exception_type": pl.Int8})  # fmt: skip
    return {
        "agency.txt": agency,
        "stops.txt": stops,
        "routes.txt": routes,
        "trips.txt": trips,
        "stop_times.txt": stop_times,
        "calendar.txt": calendar,
        "calendar_dates.txt": calendar_dates,
        "shapes.txt": _shapes(net),
        "feed_info.txt": pl.DataFrame({
            "feed_publisher_name": [PUBLISHER[0]],
            "feed_publisher_url": [PUBLISHER[1]],
            "feed_lang": ["ru"],
            "feed_start_date": [start.strftime("%Y%m%d")],
            "feed_end_date": [end.strftime("%Y%m%d")],
            "feed_version": [f"{op.code}-{day.strftime('%Y%m%d')}"],
            "feed_contact_email": [PUBLISHER[2]],
        }),  # fmt: skip
    }


def _shape_ids(net: tr.Network) -> np.ndarray:
    """One shape per (route, direction), in that order."""
    return np.array([f"{r}-{d}" for r in net.route_id for d in (0, 1)])


def _shapes(net: tr.Network) -> pl.DataFrame:
    """Each shape through its stops, with the distance travelled in km."""
    ids = _shape_ids(net)
    paths = net.shape_stops
    counts = np.array([p.size for p in paths])
    stops = np.concatenate(paths)
    lat, lon = net.stop_lat[stops], net.stop_lon[stops]
    first = np.repeat(np.cumsum(counts) - counts, counts)
    sequence = np.arange(stops.size) - first + 1
    km_lat = tr.KM_PER_DEG_LAT
    km_lon = km_lat * np.cos(np.radians(net.operator.centre[0]))
    step = np.hypot(np.diff(lat, prepend=lat[0]) * km_lat, np.diff(lon, prepend=lon[0]) * km_lon)
    step[sequence == 1] = 0.0
    travelled = np.cumsum(step)
    travelled -= travelled[first]
    return pl.DataFrame({
        "shape_id": np.repeat(ids, counts),
        "shape_pt_lat": lat,
        "shape_pt_lon": lon,
        "shape_pt_sequence": sequence,
        "shape_dist_traveled": np.round(travelled, 3),
    })  # fmt: skip


def ground_truth(params: Params = Params()) -> dict:
    """What the schedule feed holds (sizes at scale 1) and which defects it may carry."""
    operators = {}
    for op in tr.OPERATORS:
        modes = [tr.BUS, *([tr.TROLLEYBUS] if op.trolleybus_routes else [])]
        modes += [op.rail.mode] if op.rail else []
        operators[op.key] = {
            "file": f"gtfs_{op.key}.zip",
            "agencies": [a.agency_id for a in op.agencies],
            "route_types": {m.name: m.route_type for m in modes},
            "bus_routes_at_scale_1": op.bus_routes,
            "trolleybus_routes_at_scale_1": op.trolleybus_routes,
            "rail_routes_fixed": 1 if op.rail else 0,
            "rail_stations": len(op.rail.stations_ru) if op.rail else 0,
            "bbox_lat_lon": list(op.bbox),
        }  # fmt: skip
    return {
        "files_per_build": [f"gtfs_{k}.zip" for k in tr.OPERATOR_KEYS],
        "builds": "every Monday (weekday 0), plus the build in force landed on a run's first day",
        "rows_per_build_at_scale_1_approx": 3_260_000,  # all members of the three zips
        "members": list(MEMBERS),
        "operators": operators,
        "scaling": "bus/trolleybus routes = round(routes_at_scale_1 * scale), at least one of each "
                   "mode the city has; each rail line is one route at any scale",
        "services": {"WD": "Monday-Friday", "WE": "Saturday, Sunday and fixed-date public holidays"},
        "holidays_month_day": [list(h) for h in tr.HOLIDAYS],
        "calendar_window_days": [-DAYS_BEFORE, DAYS_AFTER],
        "rush_hours": list(tr.RUSH_HOURS),
        "headway_multipliers": {"rush": tr.RUSH_HEADWAY, "before_07": tr.EARLY_HEADWAY,
                                "from_21": tr.EVENING_HEADWAY, "weekend": tr.WEEKEND_HEADWAY},
        "non_standard_columns": {"stops.txt": ["stop_name_kk"]},
        "agency_timezone": tr.LOCAL_TZ,
        "defect_kinds": ["gtfs_missing_file", "duplicate_record"],
        "duplicate_share_of_defect_rate": DUPLICATE_SHARE,
        "missing_file_share_of_defect_rate": MISSING_SHARE,
        "missable_members": list(MISSABLE),
    }  # fmt: skip
