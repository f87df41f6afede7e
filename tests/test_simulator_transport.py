"""The transport simulators: GTFS static zips against the GTFS Schedule reference, GTFS-Realtime
TripUpdates against that day's static zip, smart-card validations against both; the planted
TRN-01 / TRN-02 effects, determinism, volumes, defects."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import zipfile
from collections import Counter
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from google.protobuf.message import DecodeError
from google.transit import gtfs_realtime_pb2

from qala_devkit.simulate import _transit as tr
from qala_devkit.simulate import fare_validations as fv
from qala_devkit.simulate import gtfs_rt_trip_updates as rt
from qala_devkit.simulate import gtfs_static as gs
from qala_devkit.simulate import simulate
from qala_devkit.simulate.base import DayContext, read_defects
from qala_devkit.simulate.world import load_regions

STATIC, REALTIME, FARES = gs.FEED, rt.FEED, fv.FEED
# Wednesday 28 February to Saturday 2 March 2024: three weekdays and a Saturday, across
# Kazakhstan's move from UTC+6 to UTC+5 at midnight on 1 March (29 February had 25 hours).
START, DAYS, SCALE = date(2024, 2, 28), 4, 0.05
DAYS_OF_RUN = [START + timedelta(days=k) for k in range(DAYS)]
KEYS = tr.OPERATOR_KEYS
REQUIRED = {
    "agency.txt": {"agency_name", "agency_url", "agency_timezone"},
    "stops.txt": {"stop_id", "stop_name", "stop_lat", "stop_lon"},
    "routes.txt": {"route_id", "route_type"},
    "trips.txt": {"route_id", "service_id", "trip_id"},
    "stop_times.txt": {"trip_id", "arrival_time", "departure_time", "stop_id", "stop_sequence"},
    "calendar.txt": {"service_id", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                     "sunday", "start_date", "end_date"},
    "calendar_dates.txt": {"service_id", "date", "exception_type"},
    "shapes.txt": {"shape_id", "shape_pt_lat", "shape_pt_lon", "shape_pt_sequence"},
    "feed_info.txt": {"feed_publisher_name", "feed_publisher_url", "feed_lang"},
}  # fmt: skip
GTFS_TIME = r"^\d{2,}:[0-5]\d:[0-5]\d$"
ROUTE_TYPES = {"almaty": {3, 11, 1}, "astana": {3, 0}, "shymkent": {3}}


def _clear_caches() -> None:
    tr.network.cache_clear()
    rt._arrivals.cache_clear()
    fv._cards.cache_clear()
    fv._LATE.clear()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("transport")
    _clear_caches()
    # One process: the runs are small, and spawning workers costs more than it saves here.
    rows = simulate(root, START, DAYS, scale=SCALE, seed=42, domains=["transport"], defect_rate=0, workers=1)
    assert set(rows) == {STATIC, REALTIME, FARES} and min(rows.values()) > 0
    return root


def _gtfs(root: Path, day: date, key: str) -> dict[str, pl.DataFrame]:
    """Every member of an operator's zip, all columns as text."""
    path = root / "landing" / STATIC / day.isoformat() / f"gtfs_{key}.zip"
    with zipfile.ZipFile(path) as archive:
        return {name: pl.read_csv(archive.read(name), infer_schema=False) for name in archive.namelist()}


@pytest.fixture(scope="module")
def gtfs(run) -> dict[tuple[date, str], dict[str, pl.DataFrame]]:
    """Each operator's schedule in force on each day of the run: the zip that landed last on or
    before the day (builds land on Mondays and on a run's first day; this run has no Monday)."""
    landed = [day for day in DAYS_OF_RUN if gs.lands_on(day, START)]
    assert landed == [START]
    zips = {(day, key): _gtfs(run, day, key) for day in landed for key in KEYS}
    return {(day, key): zips[max(d for d in landed if d <= day), key] for day in DAYS_OF_RUN for key in KEYS}


def _midnight(day: date) -> int:
    """POSIX seconds of local midnight (Asia/Almaty: UTC+6 until 1 March 2024, then UTC+5)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=tr.TZ).timestamp())


def _seconds(column: str) -> pl.Expr:
    parts = pl.col(column).str.split(":")
    return (parts.list.get(0).cast(pl.Int64) * 3600 + parts.list.get(1).cast(pl.Int64) * 60
            + parts.list.get(2).cast(pl.Int64))  # fmt: skip


def _realtime(root: Path, day: date) -> pl.DataFrame:
    """Every stop_time_update of a day's snapshots, one row each, with its entity and file."""
    rows = []
    for path in sorted((root / "landing" / REALTIME / day.isoformat()).glob("*.pb")):
        key, hhmm = path.stem.split("_")[-2:]
        message = gtfs_realtime_pb2.FeedMessage.FromString(path.read_bytes())
        for index, entity in enumerate(message.entity):
            update = entity.trip_update
            trip = update.trip
            head = (key, int(hhmm[:2]), message.header.timestamp, index, entity.id, trip.trip_id,
                    trip.route_id, trip.direction_id, trip.start_date, trip.start_time,
                    update.vehicle.id, update.timestamp)  # fmt: skip
            rows += [(*head, s.stop_sequence, s.stop_id, s.arrival.time, s.arrival.delay)
                     for s in update.stop_time_update]  # fmt: skip
    names = ["operator", "hour", "header_ts", "entity", "entity_id", "trip_id", "route_id", "direction_id",
             "start_date", "start_time", "vehicle_id", "trip_ts", "stop_sequence", "stop_id", "time", "delay"]
    return pl.DataFrame(rows, schema=names, orient="row")


@pytest.fixture(scope="module")
def realtime(run) -> dict[date, pl.DataFrame]:
    return {day: _realtime(run, day) for day in DAYS_OF_RUN}


def _fares(root: Path) -> pl.DataFrame:
    frames = []
    for path in sorted((root / "landing" / FARES).glob("*/*.csv")):
        frame = pl.read_csv(path, infer_schema=False)
        frames.append(frame.with_columns(file_day=pl.lit(path.parent.name).str.to_date(),
                                         file_operator=pl.lit(path.stem.split("_")[1])))  # fmt: skip
    return pl.concat(frames).with_columns(
        pl.col("validated_at").str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S", strict=True),
        pl.col("amount_kzt").cast(pl.Int64, strict=True),
    )


@pytest.fixture(scope="module")
def fares(run) -> pl.DataFrame:
    return _fares(run)


def _digests(root: Path, day: date | None = None) -> dict[str, str]:
    pattern = f"*/*/{day.isoformat()}/*" if day else "*/*/*/*"
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "landing").glob(pattern))}  # fmt: skip


# --- GTFS static -------------------------------------------------------------------------------


def test_one_zip_per_operator_per_build_with_fixed_members_and_dates(run):
    for day in DAYS_OF_RUN:
        folder = run / "landing" / STATIC / day.isoformat()
        if day != START:  # Wednesday to Saturday: no Monday, so only the first day has zips
            assert not folder.exists()
            continue
        build = gs.build_day(day)  # the build in force: Monday 26 February
        assert build == date(2024, 2, 26)
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"gtfs_{k}.zip" for k in KEYS)
        for key in KEYS:
            with zipfile.ZipFile(folder / f"gtfs_{key}.zip") as archive:
                infos = archive.infolist()
                assert [i.filename for i in infos] == list(gs.MEMBERS)
                assert {i.date_time for i in infos} == {(build.year, build.month, build.day, 0, 0, 0)}
                assert archive.testzip() is None


def test_a_build_lands_each_monday_and_the_build_in_force_on_a_runs_first_day(tmp_path):
    monday, tuesday = date(2024, 3, 4), date(2024, 3, 5)
    assert gs.build_day(monday) == gs.build_day(tuesday) == monday == gs.build_day(date(2024, 3, 10))
    written = {}
    for name, day, first in (("monday", monday, None), ("tuesday", tuesday, None), ("first", tuesday, tuesday)):
        written[name] = gs.generate_day(DayContext(root=tmp_path / name, feed=STATIC, day=day, scale=0.005,
                                                   seed=42, first_day=first))
    assert written["tuesday"] == 0 and not (tmp_path / "tuesday" / "landing").exists()
    assert written["monday"] == written["first"] > 0
    # The first day's zips are the Monday's build, byte for byte.
    for key in KEYS:
        zips = [tmp_path / name / "landing" / STATIC / day.isoformat() / f"gtfs_{key}.zip"
                for name, day in (("monday", monday), ("first", tuesday))]  # fmt: skip
        assert zips[0].read_bytes() == zips[1].read_bytes()


def test_every_file_has_its_required_fields_and_tolerable_extras(gtfs):
    for (_, key), feed in gtfs.items():
        for name, required in REQUIRED.items():
            assert required <= set(feed[name].columns), (key, name)
            assert feed[name].select(pl.col(c).is_null().sum() for c in required).sum_horizontal().item() == 0
        assert "stop_name_kk" in feed["stops.txt"].columns  # not in the reference: consumers must tolerate it
        assert feed["stops.txt"]["stop_name"].str.contains(",").any()  # quoted fields
        assert set(feed["agency.txt"]["agency_timezone"]) == {"Asia/Almaty"}
        assert feed["agency.txt"]["agency_url"].str.starts_with("https://").all()


def test_ids_refer_to_each_other(gtfs):
    for (_, key), feed in gtfs.items():
        stops, routes, trips, times = (feed[f"{n}.txt"] for n in ("stops", "routes", "trips", "stop_times"))
        for frame, column in ((stops, "stop_id"), (routes, "route_id"), (trips, "trip_id")):
            assert frame[column].is_unique().all(), (key, column)
        assert set(routes["agency_id"]) <= set(feed["agency.txt"]["agency_id"])
        assert set(trips["route_id"]) == set(routes["route_id"])
        assert set(times["trip_id"]) == set(trips["trip_id"])
        assert set(times["stop_id"]) == set(stops["stop_id"])  # every stop is served
        assert set(trips["service_id"]) <= set(feed["calendar.txt"]["service_id"])
        assert set(trips["shape_id"]) == set(feed["shapes.txt"]["shape_id"])
        assert set(trips["direction_id"]) == {"0", "1"}


def test_route_types_are_the_citys_modes_and_stops_are_inside_the_city(gtfs):
    for (_, key), feed in gtfs.items():
        assert {int(t) for t in feed["routes.txt"]["route_type"]} == ROUTE_TYPES[key]
        lat_min, lat_max, lon_min, lon_max = tr.operator(key).bbox
        stops = feed["stops.txt"].with_columns(pl.col("stop_lat", "stop_lon").cast(pl.Float64, strict=True))
        assert stops["stop_lat"].is_between(lat_min, lat_max).all()
        assert stops["stop_lon"].is_between(lon_min, lon_max).all()
        shapes = feed["shapes.txt"].with_columns(pl.col("shape_pt_sequence").cast(pl.Int64))
        assert shapes.group_by("shape_id").agg(ok=pl.col("shape_pt_sequence").diff().drop_nulls().min() > 0)[
            "ok"].all()


def test_times_are_gtfs_times_in_order_and_some_run_past_midnight(gtfs):
    for (_, key), feed in gtfs.items():
        times = feed["stop_times.txt"]
        assert times["arrival_time"].str.contains(GTFS_TIME).all()
        assert (times["arrival_time"] == times["departure_time"]).all()
        typed = times.with_columns(t=_seconds("arrival_time"), seq=pl.col("stop_sequence").cast(pl.Int64))
        steps = typed.group_by("trip_id", maintain_order=True).agg(
            dt=pl.col("t").diff().drop_nulls().min(), ds=pl.col("seq").diff().drop_nulls().min(),
            first=pl.col("seq").first())  # fmt: skip
        assert (steps["dt"] >= 0).all() and (steps["ds"] == 1).all() and (steps["first"] == 1).all()
        assert typed["t"].max() > 24 * 3600, key  # e.g. 24:35:00
        assert typed["t"].max() < 28 * 3600


def test_weekday_and_weekend_services_and_the_holidays_in_the_calendar(gtfs):
    for (day, key), feed in gtfs.items():
        calendar = {r["service_id"]: r for r in feed["calendar.txt"].iter_rows(named=True)}
        days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        assert [calendar["WD"][d] for d in days] == ["1"] * 5 + ["0"] * 2
        assert [calendar["WE"][d] for d in days] == ["0"] * 5 + ["1"] * 2
        assert calendar["WD"]["start_date"] < day.strftime("%Y%m%d") < calendar["WD"]["end_date"]
        # 8 March 2024 (International Women's Day) is a Friday inside every day's window.
        exceptions = set(feed["calendar_dates.txt"].iter_rows())
        assert {("WD", "20240308", "2"), ("WE", "20240308", "1")} <= exceptions
        trips = feed["trips.txt"]["service_id"].value_counts()
        by_service = dict(trips.iter_rows())
        assert by_service["WE"] < by_service["WD"]  # longer headways at weekends


def test_feed_info_names_the_build(gtfs):
    for (day, key), feed in gtfs.items():
        info = feed["feed_info.txt"].row(0, named=True)
        assert info["feed_version"] == f"{tr.operator(key).code}-{gs.build_day(day).strftime('%Y%m%d')}"
        assert info["feed_start_date"] <= (day - timedelta(days=1)).strftime("%Y%m%d")


# --- GTFS-Realtime -------------------------------------------------------------------------------


def test_snapshots_are_hourly_full_datasets(run, realtime):
    for day in DAYS_OF_RUN:
        folder = run / "landing" / REALTIME / day.isoformat()
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted(f"trip_updates_{k}_{h:02d}00.pb" for k in KEYS for h in range(24))
        midnight, next_midnight = _midnight(day), _midnight(day + timedelta(days=1))
        for path in folder.iterdir():
            message = gtfs_realtime_pb2.FeedMessage.FromString(path.read_bytes())
            header = message.header
            hour = int(path.stem[-4:-2])
            assert header.gtfs_realtime_version == "2.0"
            assert header.incrementality == gtfs_realtime_pb2.FeedHeader.FULL_DATASET
            assert header.timestamp == (next_midnight if hour == 23 else midnight + 3600 * (hour + 1))
            assert len({e.id for e in message.entity}) == len(message.entity)
        frame = realtime[day]
        # Arrivals were observed in the snapshot's hour, before its timestamp; 29 February 2024
        # had 25 hours, its last snapshot two.
        assert (frame["time"] < frame["header_ts"]).all()
        last_hours = (next_midnight - midnight) // 3600 - 23  # 1, or 2 on 29 February 2024
        window = pl.when(pl.col("hour") == 23).then(3600 * last_hours).otherwise(3600)
        assert frame.select((pl.col("time") >= pl.col("header_ts") - window).all()).item()
        # The entity's timestamp: its last arrival in the hour.
        last = frame.group_by("operator", "hour", "entity").agg(pl.max("time"), pl.first("trip_ts"))
        assert (last["time"] == last["trip_ts"]).all()


def test_the_day_of_the_clock_change_has_25_hours(realtime):
    day = date(2024, 2, 29)
    frame = realtime[day]
    midnight = int(datetime(2024, 2, 29, tzinfo=tr.TZ).timestamp())
    assert int(datetime(2024, 3, 1, tzinfo=tr.TZ).timestamp()) - midnight == 25 * 3600
    assert frame.filter(pl.col("hour") == 23)["time"].max() >= midnight + 24 * 3600


def test_every_update_matches_that_days_static_schedule(realtime, gtfs):
    for day in DAYS_OF_RUN:
        frame = realtime[day]
        # Service days: the day's, and the previous one's trips after midnight (none on 1 March
        # 2024: 29 February's 24:xx:xx times fell in its own 25th hour).
        dates = {(day - timedelta(days=1)).strftime("%Y%m%d"), day.strftime("%Y%m%d")}
        assert day.strftime("%Y%m%d") in set(frame["start_date"]) <= dates
        for key in KEYS:
            feed = gtfs[(day, key)]
            schedule = (feed["stop_times.txt"].join(feed["trips.txt"], on="trip_id")
                        .with_columns(scheduled=_seconds("arrival_time"),
                                      stop_sequence=pl.col("stop_sequence").cast(pl.Int64)))  # fmt: skip
            first = schedule.filter(pl.col("stop_sequence") == 1).select("trip_id", first_time="arrival_time")
            updates = frame.filter(pl.col("operator") == key).with_columns(pl.col("stop_sequence").cast(int))
            joined = updates.join(schedule, on=["trip_id", "stop_sequence"], how="left", suffix="_static")
            assert joined["stop_id_static"].is_not_null().all(), key  # trip and stop_sequence exist
            assert (joined["stop_id"] == joined["stop_id_static"]).all()
            assert (joined["route_id"] == joined["route_id_static"]).all()
            assert (joined["direction_id"].cast(pl.String) == joined["direction_id_static"]).all()
            start = joined.with_columns(start=pl.col("start_date").str.to_date("%Y%m%d"))
            midnight = start["start"].map_elements(_midnight, return_dtype=pl.Int64)
            assert ((joined["time"] - joined["delay"]) == midnight + joined["scheduled"]).all()
            starts = updates.join(first, on="trip_id")
            assert (starts["start_time"] == starts["first_time"]).all()
            # The trip's service runs on its start_date (calendar and calendar_dates).
            services = start.select("service_id", "start").unique()
            for service, on in services.iter_rows():
                assert _runs(feed, service, on), (key, service, on)


def _runs(feed: dict[str, pl.DataFrame], service: str, day: date) -> bool:
    text = day.strftime("%Y%m%d")
    for row in feed["calendar_dates.txt"].iter_rows(named=True):
        if row["service_id"] == service and row["date"] == text:
            return row["exception_type"] == "1"
    row = feed["calendar.txt"].filter(pl.col("service_id") == service).row(0, named=True)
    weekday = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")[day.weekday()]
    return row["start_date"] <= text <= row["end_date"] and row[weekday] == "1"


def test_trips_after_midnight_are_in_the_next_days_first_snapshots(realtime, gtfs):
    day = DAYS_OF_RUN[1]
    previous = day - timedelta(days=1)
    early = realtime[day].filter(pl.col("start_date") == previous.strftime("%Y%m%d"))
    assert early.height > 0 and early["hour"].max() <= 1
    # Scheduled after midnight (24:xx:xx), or just before it and running late.
    midnight = int(datetime(previous.year, previous.month, previous.day, tzinfo=tr.TZ).timestamp())
    scheduled = early["time"] - early["delay"] - midnight
    assert scheduled.min() > 86400 - 3600 and (scheduled >= 86400).mean() > 0.5
    times = gtfs[(day, "almaty")]["stop_times.txt"].with_columns(t=_seconds("arrival_time"))
    late_trips = set(times.filter(pl.col("t") >= 86400 - 3600)["trip_id"])
    assert set(early.filter(pl.col("operator") == "almaty")["trip_id"]) <= late_trips


def test_arrival_times_never_go_backwards_within_a_trip(realtime):
    for frame in realtime.values():
        steps = frame.group_by(["operator", "hour", "entity"], maintain_order=True).agg(
            dt=pl.col("time").diff().drop_nulls().min(), ds=pl.col("stop_sequence").diff().drop_nulls().min())
        assert (steps["dt"].drop_nulls() >= 0).all() and (steps["ds"].drop_nulls() > 0).all()


def test_on_time_performance_is_the_planted_share_per_operator(realtime):
    # TRN-01: late = delay > 300 s, early < -60 s. Delays are correlated along a trip, so the
    # independent units are trips: ~3,000-5,000 per operator over the four days at scale 0.05.
    # A share near 0.2 then has a standard deviation of at most sqrt(0.2 * 0.8 / 3000) = 0.0073
    # (less: a trip's stops are not fully correlated), and +-0.03 is > 4 sigma; the operators'
    # planted shares differ by 0.07-0.10.
    params = rt.Params()
    frame = pl.concat(realtime.values())
    shares = frame.group_by("operator").agg(late=(pl.col("delay") > 300).mean(),
                                            early=(pl.col("delay") < -60).mean())  # fmt: skip
    for key, late, early in shares.iter_rows():
        assert late == pytest.approx(params.late_share(key), abs=0.03), key
        assert early == pytest.approx(params.early_share, abs=0.015), key
    # Weekday rush hours are worse: 1.6 times the late probability of other hours (by the
    # scheduled hour). Pooled over the operators, each of the two shares rests on > 2,000 trips:
    # the ratio's standard deviation is ~0.08, and [1.3, 1.95] is > 3.5 sigma either side.
    weekdays = [d.strftime("%Y%m%d") for d in DAYS_OF_RUN if tr.service_of(d) == tr.WEEKDAY]
    scheduled_hour = (pl.col("time") - pl.col("delay") - pl.col("header_ts")) // 3600 + pl.col("hour") + 1
    weekday = frame.filter(pl.col("start_date").is_in(weekdays)).with_columns(
        rush=(scheduled_hour % 24).is_in(tr.RUSH_HOURS))
    by_rush = dict(weekday.group_by("rush").agg((pl.col("delay") > 300).mean()).iter_rows())
    assert 1.3 < by_rush[True] / by_rush[False] < 1.95


def test_the_late_probability_keeps_the_days_share_exact():
    params = rt.Params(late_share_almaty=0.3, rush_late_ratio=2.0)
    scheduled = np.arange(5 * 3600, 24 * 3600, 60)
    weekday = rt._late_probability(scheduled, tr.WEEKDAY, params.late_share("almaty"), params)
    weekend = rt._late_probability(scheduled, tr.WEEKEND, params.late_share("almaty"), params)
    assert weekday.mean() == pytest.approx(0.3) and np.allclose(weekend, 0.3)
    rush = np.isin(scheduled // 3600, tr.RUSH_HOURS)
    assert weekday[rush].mean() / weekday[~rush].mean() == pytest.approx(2.0)
    # Delays: exactly the classes their u says, whatever the hour's late probability.
    u = np.linspace(0, 1, 100_001)[:-1]
    delay = rt._delay(u, 0.04, np.full(u.size, 0.25))
    assert ((delay < -60) == (u < 0.04)).all() and ((delay > 300) == (u >= 0.75)).all()
    assert (np.diff(delay) >= 0).all()


# --- fare validations --------------------------------------------------------------------------


def test_validation_files_follow_the_export_layout(run, fares):
    for day in DAYS_OF_RUN:
        for key in KEYS:
            path = run / "landing" / FARES / day.isoformat() / f"validations_{key}_{day.isoformat()}.csv"
            header = path.read_text(encoding="utf-8").split("\n", 1)[0]
            assert header == ",".join(fv.COLUMNS)
    assert fares["validation_id"].is_unique().all()
    assert fares["validation_id"].str.contains(r"^(ALA|AST|SHY)-\d{8}-\d{8}$").all()
    assert set(fares["fare_type"]) == set(fv.FARE_TYPES)
    assert set(fares["payment_method"]) == set(fv.PAYMENT_METHODS)
    assert fares.null_count().sum_horizontal().item() == 0


def test_card_numbers_are_16_digit_luhn_numbers_that_live_across_days(fares):
    cards = fares["card_id"].unique()
    assert cards.str.contains(r"^[49]\d{15}$").all()
    digits = np.array([list(map(int, c)) for c in cards.to_list()[:20_000]])
    doubled = digits[:, -2::-2] * 2
    total = (doubled - 9 * (doubled > 9)).sum(axis=1) + digits[:, -1::-2].sum(axis=1)
    assert (total % 10 == 0).all()  # Luhn
    numbers, _, _ = fv.card_numbers("almaty", np.arange(200_000))
    assert np.unique(numbers).size == 200_000  # one number per card
    day1 = set(fares.filter(pl.col("validated_at").dt.date() == DAYS_OF_RUN[0])["card_id"])
    day2 = set(fares.filter(pl.col("validated_at").dt.date() == DAYS_OF_RUN[1])["card_id"])
    assert len(day1 & day2) > 0.3 * len(day1)  # regular riders come back


def test_fares_follow_the_card_and_the_operator(fares):
    factor = dict(zip(fv.FARE_TYPES, fv.FARE_FACTOR, strict=True))
    expected = {(k, t): round(fv.FARE_KZT[k] * f) for k in KEYS for t, f in factor.items()}
    pairs = fares.group_by("file_operator", "fare_type").agg(pl.col("amount_kzt").unique())
    for key, fare_type, amounts in pairs.iter_rows():
        assert list(amounts) == [expected[(key, fare_type)]]
    concession = fares.filter(pl.col("fare_type") != "adult")
    assert (concession["payment_method"] == "transport_card").all()
    assert (fares["card_id"].str.starts_with("4") == (fares["payment_method"] == "bank_card")).all()
    per_card = fares.group_by("card_id").agg(pl.n_unique("fare_type"), pl.n_unique("payment_method"))
    assert (per_card["fare_type"] == 1).all() and (per_card["payment_method"] == 1).all()
    shares = fares["fare_type"].value_counts(normalize=True)
    assert dict(shares.iter_rows())["adult"] == pytest.approx(0.70, abs=0.03)


def test_taps_are_boardings_on_that_days_network(fares, gtfs):
    for day in DAYS_OF_RUN:
        for key in KEYS:
            feed = gtfs[(day, key)]
            served = (feed["stop_times.txt"].join(feed["trips.txt"], on="trip_id")
                      .select("route_id", "stop_id").unique())  # fmt: skip
            agencies = feed["routes.txt"].select("route_id", operator_static="agency_id")
            taps = fares.filter((pl.col("file_day") == day) & (pl.col("file_operator") == key))
            joined = taps.join(served.with_columns(ok=pl.lit(True)), on=["route_id", "stop_id"], how="left")
            assert joined["ok"].is_not_null().all(), key
            with_agency = taps.join(agencies, on="route_id")
            assert with_agency.height == taps.height
            assert (with_agency["operator"] == with_agency["operator_static"]).all()
            assert taps["vehicle_id"].str.starts_with(tr.operator(key).code + "-").all()


def test_volumes_rush_hours_and_taps_per_card(fares):
    params = fv.Params()
    by_day = fares.with_columns(day=pl.col("validated_at").dt.date())
    # Wednesday 28 February: its late uploads (1-3 days) are all inside the run. Each operator's
    # count is Poisson(active cards) x (1 + Poisson(1.2)) taps: variance = mean x E[taps^2] / 2.2
    # = mean x 2.75; Almaty's ~58,500 taps have sigma ~400 (0.7%), Shymkent's ~14,600 ~200
    # (1.4%). +-5% is > 3.5 sigma.
    first_day = by_day.filter(pl.col("day") == DAYS_OF_RUN[0])
    wednesday = dict(first_day.group_by("file_operator").len().iter_rows())
    for key in KEYS:
        expected = params.weekday_taps(key) * SCALE * params.day_factor(DAYS_OF_RUN[0])
        assert wednesday[key] == pytest.approx(expected, rel=0.05), key
    # Saturday: x0.80 (its own late uploads fall after the run: ~1% missing).
    saturday = by_day.filter(pl.col("day") == DAYS_OF_RUN[3]).height
    assert saturday / sum(wednesday.values()) == pytest.approx(params.saturday_factor, abs=0.05)
    weekday = by_day.filter(pl.col("day") == DAYS_OF_RUN[0])
    hours = Counter(weekday["validated_at"].dt.hour().to_list())
    assert hours[8] > 1.5 * hours[13] and hours[18] > 1.5 * hours[13]
    assert hours[3] == 0  # no service at 03:00
    per_card = weekday.group_by("card_id").len()["len"].mean()
    assert per_card == pytest.approx(params.taps_per_card, abs=0.15)


def test_late_uploads_arrive_one_to_three_days_later_and_are_logged(run, fares):
    lag = (fares["file_day"] - fares["validated_at"].dt.date()).dt.total_days()
    assert lag.min() == 0 and lag.max() <= fv.MAX_LATE_DAYS
    # Whole vehicle-days go late: ~1% of ~200 vehicle-days a day; over four days the share of
    # late taps is noisy (a few dozen vehicle-days), hence the wide band.
    assert 0.001 < (lag > 0).mean() < 0.04
    late = fares.filter(lag > 0).with_columns(day=pl.col("validated_at").dt.date())
    assert late.group_by("vehicle_id", "day").agg(pl.col("file_day").n_unique())["file_day"].max() == 1
    logged = [d for d in read_defects(run, FARES)]
    assert {d["kind"] for d in logged} == {"late_record"}
    assert len(logged) == late.height
    for d in logged[:200]:
        path = run / "landing" / d["file"]
        line = path.read_text(encoding="utf-8").split("\n")[d["line"] - 1]
        assert line.split(",")[2][:10] < d["file"].split("/")[2]


# --- ground truth ------------------------------------------------------------------------------


def test_ground_truth_states_the_planted_effects(run):
    truth = json.loads((run / "simulator" / "ground_truth.json").read_text(encoding="utf-8"))
    otp = truth[REALTIME]["effects"]["on_time_performance"]
    assert otp["operators"]["almaty"]["late_share"] == 0.22
    assert otp["operators"]["astana"]["late_share"] == 0.15
    assert otp["operators"]["shymkent"]["late_share"] == 0.25
    assert otp["on_time_window_s"] == [-60, 300] and otp["rush_late_ratio"] == 1.6
    ridership = truth[FARES]["operators"]
    population = {r.kato_prefix: r.population for r in load_regions()}
    for key in KEYS:
        op = ridership[key]
        weekly = (5 + 0.80 + 0.65) / 7
        per_capita = fv.Params().weekday_taps(key) * weekly * 365.25 / 12 / population[op["kato_prefix"]]
        assert op["boardings_per_capita_per_month_at_scale_1"] == pytest.approx(per_capita, abs=1e-4)
    assert truth[FARES]["effects"]["boardings_per_capita"]["growth_per_year"] == 0.05
    assert truth[STATIC]["operators"]["almaty"]["route_types"] == {"bus": 3, "trolleybus": 11, "metro": 1}
    assert truth[REALTIME]["run"]["scale"] == SCALE
    override = rt.ground_truth(rt.Params(late_share_astana=0.1))
    assert override["effects"]["on_time_performance"]["operators"]["astana"]["late_share"] == 0.1


# --- determinism and scale ---------------------------------------------------------------------


def test_a_day_alone_is_byte_identical_to_the_same_day_in_the_run(run, tmp_path):
    day = DAYS_OF_RUN[2]  # 1 March 2024: needs the previous days' late taps and late trips
    _clear_caches()
    for module in (gs, rt, fv):
        module.generate_day(DayContext(root=tmp_path, feed=module.FEED, day=day, scale=SCALE, seed=42))
    alone, in_run = _digests(tmp_path, day), _digests(run, day)
    assert len(alone) == 72 + 3  # no GTFS build lands on a Friday
    assert alone == in_run


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        _clear_caches()
        simulate(tmp_path / name, date(2025, 3, 20), 2, scale=0.01, seed=seed, domains=["transport"],
                 defect_rate=0.05, workers=1)  # fmt: skip
    a, b, c = (_digests(tmp_path / name) for name in "abc")
    assert a == b and set(a) == set(c)
    differ = [k for k in a if a[k] != c[k]]
    empty = [k for k in a if (tmp_path / "a" / k).stat().st_size < 40]  # header-only night snapshots
    assert set(differ) | set(empty) == set(a)


def test_volumes_grow_linearly_with_scale(run, tmp_path):
    day = DAYS_OF_RUN[0]
    counts = {}
    for scale in (SCALE, 2 * SCALE):
        ctx_root = tmp_path / str(scale)
        counts[scale] = {m.FEED: m.generate_day(DayContext(root=ctx_root, feed=m.FEED, day=day, scale=scale,
                                                           first_day=day))
                         for m in (fv, rt, gs)}  # fmt: skip
    ratio = {feed: counts[2 * SCALE][feed] / counts[SCALE][feed] for feed in counts[SCALE]}
    # Taps are Poisson-based (sigma of the ratio ~0.01); the network's size is round(n x scale)
    # routes per mode plus fixed rail lines, so the schedule-based feeds are only roughly linear.
    assert ratio[FARES] == pytest.approx(2.0, abs=0.06)
    assert 1.5 < ratio[REALTIME] < 2.5 and 1.5 < ratio[STATIC] < 2.5


# --- defects -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def defect_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("transport-defects")
    _clear_caches()
    simulate(root, date(2025, 3, 20), 3, scale=0.01, seed=5, domains=["transport"], defect_rate=0.2,
             workers=1)  # fmt: skip
    return root


def test_defects_are_planted_at_a_positive_rate(defect_run):
    kinds = {(d["feed"], d["kind"]) for d in read_defects(defect_run)}
    allowed = {
        STATIC: {"gtfs_missing_file", "duplicate_record"},
        REALTIME: {"duplicate_record", "future_date", "truncated_file"},
        FARES: {"duplicate_record", "missing_required", "impossible_value", "future_date", "late_record",
                "truncated_file", "added_column", "renamed_column"},
    }  # fmt: skip
    assert kinds <= {(feed, kind) for feed, wanted in allowed.items() for kind in wanted}
    # Per record at a 20% rate, and a missing file at 50% per zip (nine zips): always there.
    # (Whole-file drift and truncation, and late validators, come a few times in 100 days.)
    assert {(STATIC, "gtfs_missing_file"), (STATIC, "duplicate_record"), (REALTIME, "duplicate_record"),
            (REALTIME, "future_date"), (FARES, "duplicate_record"), (FARES, "missing_required"),
            (FARES, "impossible_value"), (FARES, "future_date")} <= kinds  # fmt: skip


def test_every_logged_defect_is_where_the_log_says(defect_run):
    problems = []
    for d in read_defects(defect_run):
        why = _check(defect_run, d)
        if why:
            problems.append(f"{d}: {why}")
    assert not problems, "\n".join(problems[:10])


@lru_cache(maxsize=None)
def _lines(root: Path, file: str, member: str | None = None) -> tuple[bytes, list[str]]:
    path = root / "landing" / file
    if member is None:
        data = path.read_bytes()
    else:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(member)
    return data, data.decode("utf-8").split("\n")


@lru_cache(maxsize=None)
def _entities(root: Path, file: str):
    try:
        return gtfs_realtime_pb2.FeedMessage.FromString((root / "landing" / file).read_bytes()).entity
    except DecodeError:
        return None


def _check(root: Path, d: dict) -> str | None:
    """None if the logged defect is in the file, else what is wrong."""
    day, kind = d["file"].split("/")[2], d["kind"]
    if d["file"].endswith(".zip"):
        if kind == "gtfs_missing_file":
            with zipfile.ZipFile(root / "landing" / d["file"]) as archive:
                return None if d["member"] not in archive.namelist() else "member present"
        lines = _lines(root, d["file"], d["member"])[1]
        first = int(re.search(r"line (\d+)", d["detail"]).group(1))
        same = kind == "duplicate_record" and lines[d["line"] - 1] == lines[first - 1]
        return None if same else "lines differ"
    if d["file"].endswith(".pb"):
        entities = _entities(root, d["file"])
        if entities is None:
            return None if kind == "truncated_file" else "does not parse"
        if kind == "duplicate_record":
            first = int(d["detail"].rsplit(" ", 1)[1])
            return None if entities[d["record"]] == entities[first] and first == d["record"] - 1 else "differ"
        if kind == "future_date":
            end = _midnight(date.fromisoformat(day) + timedelta(days=1))
            return None if entities[d["record"]].trip_update.timestamp > end else "not in the future"
        return f"unexpected {kind}"
    data, lines = _lines(root, d["file"])
    if kind == "truncated_file":
        return None if not data.endswith(b"\n") and d["line"] == len(lines) else "not cut there"
    header = next(csv.reader([lines[0]]))
    if kind == "added_column":
        return None if d["column"] in header else "no such column"
    if kind == "renamed_column":
        return None if d["column"] not in header and "card_number" in header else "not renamed"
    if kind == "duplicate_record":
        first = int(re.search(r"line (\d+)", d["detail"]).group(1))
        return None if lines[d["line"] - 1] == lines[first - 1] else "lines differ"
    row = dict(zip(header, next(csv.reader([lines[d["line"] - 1]])), strict=False))
    value = row.get(d["column"], row.get("card_number"))
    if kind == "missing_required":
        return None if value == "" else f"value {value!r}"
    if kind == "impossible_value":
        return None if int(value) < 0 else f"value {value!r}"
    if kind == "future_date":
        return None if value[:10] > day else f"value {value!r}"
    if kind == "late_record":
        return None if value[:10] < day else f"value {value!r}"
    return f"unexpected {kind}"
