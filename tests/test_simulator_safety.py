"""Sergek simulator feeds: the camera register (CSV snapshots) and the violation events (JSON Lines).

Shape and enumerations, referential integrity (every event names a camera active in that day's
register), the planted SAF-03 rate and the Astana rollout, quirks (late uploads, time-zone
offsets), determinism, linear volumes and the defect log.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from qala_devkit.simulate import camera_registry as cr
from qala_devkit.simulate import sergek_violations as sv
from qala_devkit.simulate import simulate
from qala_devkit.simulate.base import DayContext, read_defects
from qala_devkit.simulate.world import KZ_LAT, KZ_LON, load_regions, load_towns, population_shares

START = date(2024, 12, 28)  # spans the Astana rollout (2025-01-01) and two weekends
DAYS = 12
SCALE = 0.2  # ~700 cameras, ~2,700 events a day
ROLLOUT = date(2025, 1, 1)
PLATE = re.compile(r"^\d{3}[A-Z]{2,3}\d{2}$")
DETECTED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")


def _clear_caches() -> None:
    cr.cameras.cache_clear()
    sv._events.cache_clear()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("safety")
    _clear_caches()
    rows = simulate(root, START, DAYS, scale=SCALE, seed=42, domains=["safety"], defect_rate=0, workers=1)
    assert rows[cr.FEED] > 0 and rows[sv.FEED] > 0
    return root


@pytest.fixture(scope="module")
def registry(run) -> pl.DataFrame:
    """Every snapshot row, typed, with the export day."""
    frames = []
    for path in _files(run, cr.FEED, "csv"):
        frame = pl.read_csv(path, infer_schema=False).with_columns(day=pl.lit(path.parent.name).str.to_date())
        frames.append(frame)
    return pl.concat(frames).with_columns(
        pl.col("lat", "lon").cast(pl.Float64, strict=True),
        pl.col("speed_limit_kmh").cast(pl.Int64, strict=True),
        pl.col("installed_on", "decommissioned_on").str.to_date("%Y-%m-%d", strict=True),
    )


@pytest.fixture(scope="module")
def events(run) -> pl.DataFrame:
    """Every event of the run, parsed line by line (strict JSON), with the upload day and city."""
    records = []
    for path in _files(run, sv.FEED, "jsonl"):
        for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
            record = json.loads(line)
            assert list(record) == list(sv.KEYS)
            records.append({**record, "folder": path.parent.name, "file_city": path.name.split("_")[2]})
    frame = pl.DataFrame(records, infer_schema_length=None)
    return frame.with_columns(
        folder=pl.col("folder").str.to_date(),
        detected=pl.col("detected_at").str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=True),
    )


def _files(root: Path, feed: str, ext: str) -> list[Path]:
    return sorted((root / "landing" / feed).glob(f"*/*.{ext}"))


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "landing").rglob("*.*")) if "road_accidents" not in p.parts}  # fmt: skip


# --- the register ------------------------------------------------------------------------------


def test_register_snapshots_have_the_columns_and_valid_values(run, registry):
    for path in _files(run, cr.FEED, "csv"):
        assert path.read_text(encoding="utf-8").split("\n", 1)[0] == ",".join(cr.COLUMNS)
    prefixes = {r.kato_prefix for r in load_regions()}
    assert registry["kato_code"].str.contains(r"^\d{9}$").all()
    assert set(registry["kato_code"].str.slice(0, 2).unique()) <= prefixes
    assert load_towns()["aqkol"].kato_code in set(registry["kato_code"])
    assert registry["lat"].is_between(*KZ_LAT).all() and registry["lon"].is_between(*KZ_LON).all()
    assert set(registry["camera_type"].unique()) == set(cr.CAMERA_TYPES)
    assert set(registry["status"].unique()) <= set(cr.STATUSES)
    assert set(registry["speed_limit_kmh"].unique()) <= set(cr.SPEED_LIMITS)
    assert set(registry["city"].unique()) == {c.name for c in cr.CITIES}
    # One row per camera per snapshot; nothing listed before it is installed.
    assert registry.select(pl.struct("day", "camera_id").is_unique().all()).item()
    assert (registry["installed_on"] <= registry["day"]).all()
    gone = registry["decommissioned_on"].is_not_null()
    assert ((registry["status"] == "decommissioned") == gone).all()
    assert (registry.filter(gone)["decommissioned_on"] <= registry.filter(gone)["day"]).all()
    # The addresses need CSV quoting ("street, 12"): they survive the round trip.
    assert registry["address"].str.contains(", ").any() and registry["address"].str.contains(" / ").any()


def test_register_only_grows_and_cameras_keep_their_attributes(registry):
    by_day = registry.partition_by("day", as_dict=True, maintain_order=True)
    days = sorted(by_day)
    for yesterday, today in zip(days, days[1:], strict=False):
        old, new = by_day[yesterday], by_day[today]
        assert set(old["camera_id"]) <= set(new["camera_id"])
    fixed = ["camera_id", "kato_code", "address", "lat", "lon", "camera_type", "installed_on"]
    assert registry.select(fixed).unique().height == registry["camera_id"].n_unique()


def test_astana_cameras_go_live_on_the_rollout_date(registry):
    astana = registry.filter(pl.col("city") == "Астана")
    assert astana["day"].min() == ROLLOUT
    assert astana["installed_on"].min() == ROLLOUT
    on_rollout = astana.filter(pl.col("day") == ROLLOUT).height
    # 60% of Astana's 360 cameras at scale 0.2 on the day (binomial sd ~9), the rest over a year.
    assert on_rollout == pytest.approx(0.6 * round(1800 * SCALE), abs=40)
    others = registry.filter(pl.col("city") != "Астана")
    assert others["day"].min() == START  # the other cities had cameras before the run


def test_the_rollout_date_is_configurable_and_moves_the_astana_installs(tmp_path):
    later = date(2025, 3, 1)
    params = cr.Params(sergek_rollout=later)
    cams = cr.cameras(42, SCALE, params)
    astana = cams.filter(pl.col("camera_id").str.starts_with("SRG-AST"))
    assert astana["installed"].min() == later.toordinal()
    others = cams.filter(~pl.col("camera_id").str.starts_with("SRG-AST"))
    assert others.drop("installed", "decommissioned").equals(
        cr.cameras(42, SCALE).filter(~pl.col("camera_id").str.starts_with("SRG-AST")).drop("installed",
                                                                                          "decommissioned"))
    day = date(2025, 1, 15)
    cr.generate_day(DayContext(root=tmp_path, feed=cr.FEED, day=day, scale=SCALE, params=params))
    sv.generate_day(DayContext(root=tmp_path, feed=sv.FEED, day=day, scale=SCALE,
                               params=sv.Params(cameras=params)))  # fmt: skip
    snapshot = pl.read_csv(next((tmp_path / "landing" / cr.FEED).rglob("*.csv")), infer_schema=False)
    assert "Астана" not in set(snapshot["city"])
    uploads = {p.name.split("_")[2] for p in (tmp_path / "landing" / sv.FEED).rglob("*.jsonl")}
    assert uploads == {"almaty", "shymkent", "aqkol"}
    assert sv.ground_truth(sv.Params(cameras=params))["effects"]["sergek_rollout"] == "2025-03-01"
    assert cr.ground_truth(params)["effects"]["sergek_astana"]["rollout_date"] == "2025-03-01"


# --- the events --------------------------------------------------------------------------------


def test_events_have_the_keys_types_and_enumerations(events):
    assert events["event_id"].is_unique().all()
    assert events["detected_at"].str.contains(DETECTED.pattern).all()
    assert events["detected_at"].str.ends_with("+05:00").all()  # 2024-12 / 2025: UTC+5
    assert events["plate"].str.contains(PLATE.pattern).all()
    assert set(events["plate"].str.slice(-2).unique()) <= set(sv.PLATE_CODES.values())
    assert set(events["violation_type"].unique()) == set(sv.VIOLATION_TYPES)
    assert events["kato_code"].str.contains(r"^\d{9}$").all()
    assert events["lat"].is_between(*KZ_LAT).all() and events["lon"].is_between(*KZ_LON).all()
    # Speeds only for speeding, fined from 11 km/h over the limit.
    speeding = events["violation_type"] == "speeding"
    assert (events["speed_kmh"].is_not_null() == speeding).all()
    assert (events["speed_limit_kmh"].is_not_null() == speeding).all()
    fast = events.filter(speeding)
    assert (fast["speed_kmh"] >= fast["speed_limit_kmh"] + sv.MIN_EXCESS_KMH).all()


def test_every_event_names_a_camera_active_in_that_days_register(events, registry):
    # The camera of an event was active in the register of the day the event was detected (days
    # inside the run: late uploads from before it have no snapshot here).
    active = registry.filter(pl.col("status") == "active").select(
        "camera_id", detected_day="day", reg_lat="lat", reg_lon="lon", reg_kato="kato_code",
        camera_type="camera_type", reg_limit="speed_limit_kmh", city="city")  # fmt: skip
    detected_day = pl.col("detected").dt.date()
    inside = events.with_columns(detected_day=detected_day).filter(detected_day >= START)
    joined = inside.join(active, on=["camera_id", "detected_day"], how="left")
    assert joined["reg_lat"].is_not_null().all()
    assert (joined["lat"] == joined["reg_lat"]).all() and (joined["lon"] == joined["reg_lon"]).all()
    assert (joined["kato_code"] == joined["reg_kato"]).all()
    fast = joined.filter(pl.col("violation_type") == "speeding")
    assert (fast["speed_limit_kmh"] == fast["reg_limit"]).all()
    # The mix follows the camera type: a red-light camera never fines speeding, a speed camera
    # never a red light.
    kinds = joined.group_by("camera_type").agg(pl.col("violation_type").unique())
    mix = {row[0]: set(row[1]) for row in kinds.iter_rows()}
    assert "speeding" not in mix["red_light"] and "red_light" not in mix["speed"]
    # Each city uploads its own cameras' events.
    city_key = {c.name: c.key for c in cr.CITIES}
    assert (joined["city"].replace_strict(city_key) == joined["file_city"]).all()


def test_saf03_violations_per_active_camera_day(events, registry):
    # Days whose events are all in the run: late uploads (<= 3 days) of the last days would land
    # after it. Events ~ Poisson: ~2,700 x 9 days = ~24,000, sd 0.65%; the cameras' busyness
    # (gamma, cv 0.71) is normalised to mean 1 over each city's whole register, so the active
    # subset's mean drifts by ~0.71 x sqrt(0.4 / 216) ~ 3% for Astana (40% of its cameras not yet
    # installed; Astana ~ 1/3 of the cameras) and less elsewhere: ~1.2% on the total. 6% is > 4 sd.
    last = START + timedelta(days=DAYS - 1 - sv.MAX_LATE_DAYS)
    window = pl.col("day").is_between(START, last)
    active = registry.filter(window & (pl.col("status") == "active")).group_by("day").len()
    detected = events.with_columns(day=pl.col("detected").dt.date()).filter(window).group_by("day").len()
    per_day = active.join(detected, on="day", suffix="_events").sort("day")
    expected = sum(sv.VIOLATIONS_PER_CAMERA_DAY * sv.WEEKDAY_FACTORS[d.weekday()] * n
                   for d, n in per_day.select("day", "len").iter_rows())  # fmt: skip
    assert per_day["len_events"].sum() / expected == pytest.approx(1.0, abs=0.06)
    assert sum(sv.WEEKDAY_FACTORS) / 7 == pytest.approx(1.0)  # the stated mean is the weekly mean
    rate = per_day["len_events"].sum() / per_day["len"].sum()
    assert rate == pytest.approx(sv.VIOLATIONS_PER_CAMERA_DAY, rel=0.1)


def test_rush_hours_and_lighter_weekends(events, registry):
    weekday = events.filter(pl.col("detected").dt.weekday() <= 5)
    hours = weekday["detected"].dt.hour()
    assert hours.is_in([8, 17, 18]).sum() > 8 * hours.is_in([2, 3, 4]).sum()
    # Sunday vs Monday-Thursday per active camera: 0.80 / 1.05 = 0.76 (each Sunday ~2,100 events).
    active = registry.filter(pl.col("status") == "active").group_by("day").len()
    counts = events.with_columns(day=pl.col("detected").dt.date()).group_by("day").len()
    rate = dict(counts.join(active, on="day", suffix="_cameras").select(
        "day", pl.col("len") / pl.col("len_cameras")).iter_rows())  # fmt: skip
    last = START + timedelta(days=DAYS - 1 - sv.MAX_LATE_DAYS)
    sunday = [r for d, r in rate.items() if d.weekday() == 6 and d <= last]
    midweek = [r for d, r in rate.items() if d.weekday() < 4 and d <= last]
    assert sum(sunday) / len(sunday) / (sum(midweek) / len(midweek)) == pytest.approx(0.8 / 1.05, abs=0.08)


def test_plates_are_mostly_local_and_offenders_recur(events):
    # 85% local plus the local region's population share of the other 15% (Almaty city ~11%);
    # ~9,000 Almaty events: sd 0.4%.
    almaty = events.filter(pl.col("file_city") == "almaty")
    share = population_shares()[[r.kato_prefix for r in load_regions()].index("75")]
    expected = sv.LOCAL_PLATE_SHARE + (1 - sv.LOCAL_PLATE_SHARE) * share
    assert (almaty["plate"].str.slice(-2) == "02").mean() == pytest.approx(expected, abs=0.02)
    legal = events["plate"].str.len_chars() == 7
    assert legal.mean() == pytest.approx(sv.LEGAL_ENTITY_PLATE_SHARE, abs=0.02)
    assert events["plate"].n_unique() < events.height  # repeat offenders


def test_late_uploads_come_days_later_once_and_are_logged(run, events):
    lag = (events["folder"] - events["detected"].dt.date()).dt.total_days()
    assert lag.min() == 0 and lag.max() <= sv.MAX_LATE_DAYS
    # 1.5% of camera-days: ~360 of ~24,000 events, but whole camera-days (~8 events) move
    # together, so the share's sd is ~0.3%.
    assert 0.005 < (lag > 0).mean() < 0.03
    logged = [d for d in read_defects(run, sv.FEED)]
    assert {d["kind"] for d in logged} == {"late_record"}  # defect rate 0: nothing else
    assert len(logged) == int((lag > 0).sum())
    for d in logged[:50]:
        line = (run / "landing" / d["file"]).read_text(encoding="utf-8").split("\n")[d["line"] - 1]
        assert json.loads(line)["detected_at"][:10] < d["file"].split("/")[2]
    assert read_defects(run, cr.FEED) == []


def test_the_offset_follows_the_date_across_the_2024_time_zone_change(tmp_path):
    assert sv._offset(date(2024, 2, 29)) == "+06:00" and sv._offset(date(2024, 3, 1)) == "+05:00"
    for day, offset in ((date(2024, 2, 28), "+06:00"), (date(2024, 3, 5), "+05:00")):
        sv.generate_day(DayContext(root=tmp_path, feed=sv.FEED, day=day, scale=0.02))
        lines = [json.loads(x) for p in (tmp_path / "landing" / sv.FEED / day.isoformat()).glob("*.jsonl")
                 for x in p.read_text(encoding="utf-8").splitlines()]  # fmt: skip
        assert lines and all(x["detected_at"].endswith(offset) for x in lines)


# --- determinism, volumes, ground truth --------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        _clear_caches()
        simulate(tmp_path / name, date(2025, 2, 1), 3, scale=0.05, seed=seed, domains=["safety"],
                 defect_rate=0.02, workers=1)  # fmt: skip
    a, b, c = (_digests(tmp_path / n) for n in "abc")
    assert len(a) == 3 + 3 * 4  # 3 snapshots, 4 city uploads a day
    assert a == b
    assert set(a) == set(c) and all(a[k] != c[k] for k in a)


def test_a_day_alone_is_byte_identical_to_the_same_day_in_the_run(run, tmp_path):
    day = START + timedelta(days=8)  # deep enough to hold late uploads
    _clear_caches()
    for module in (cr, sv):
        module.generate_day(DayContext(root=tmp_path, feed=module.FEED, day=day, scale=SCALE))
    alone = {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in (tmp_path / "landing").rglob("*.*")}
    assert len(alone) == 5
    for relative, data in alone.items():
        assert (run / relative).read_bytes() == data


def test_volumes_are_linear_in_scale():
    day = date(2025, 6, 3)
    counts = {}
    for scale in (0.1, 0.4):
        events = sum(sv._events(42, day - timedelta(days=k), scale, sv.Params()).height for k in range(3))
        counts[scale] = (cr.cameras(42, scale).height, events)
    assert counts[0.4][0] == pytest.approx(4 * counts[0.1][0], abs=4 * 2)  # rounding, per city
    # ~4,000 vs ~16,000 events: Poisson sd < 2%, the two registers' busyness samples ~3% each.
    assert counts[0.4][1] / counts[0.1][1] == pytest.approx(4.0, rel=0.12)
    assert cr.cameras(42, 1.0).height == sum(c.cameras for c in cr.CITIES)
    assert cr.cameras(42, 0.0001).height == len(cr.CITIES)  # at least one camera per city


def test_ground_truth_states_the_effects_and_defects(run):
    truth = json.loads((run / "simulator" / "ground_truth.json").read_text(encoding="utf-8"))
    violations, cameras = truth[sv.FEED], truth[cr.FEED]
    assert violations["effects"]["saf_03_violations_per_active_camera_day"] == 4.0
    assert violations["effects"]["sergek_rollout"] == ROLLOUT.isoformat()
    assert violations["events_per_day_at_scale_1"] == pytest.approx(4.0 * 3540 * 0.98, abs=1)
    assert cameras["cameras_at_scale_1"] == {"astana": 1800, "almaty": 1200, "shymkent": 500, "aqkol": 40}
    assert cameras["effects"]["sergek_astana"]["rollout_date"] == ROLLOUT.isoformat()
    assert set(violations["defects"]["count_by_kind"]) == {"late_record"}
    assert set(violations["defect_kinds"]) == {"duplicate_record", "missing_required", "outside_kazakhstan",
                                               "future_date", "invalid_json", "late_record", "truncated_file"}
    assert sv.ground_truth(sv.Params(violations_per_camera_day=6.0))["effects"][
        "saf_03_violations_per_active_camera_day"] == 6.0


# --- defects -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def defective(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("defective")
    _clear_caches()
    simulate(root, date(2025, 3, 1), 10, scale=0.03, seed=11, domains=["safety"], defect_rate=0.2, workers=1)
    return root


def test_defects_are_planted_and_logged_exactly_where_they_are(defective):
    logged = [d for d in read_defects(defective) if d["feed"] in (cr.FEED, sv.FEED)]
    kinds = Counter((d["feed"], d["kind"]) for d in logged)
    for kind in ("duplicate_record", "missing_required", "outside_kazakhstan", "future_date", "invalid_json",
                 "late_record", "truncated_file"):  # fmt: skip
        assert kinds[(sv.FEED, kind)] > 0, kind
    for kind in ("duplicate_record", "missing_required", "outside_kazakhstan", "renamed_column"):
        assert kinds[(cr.FEED, kind)] > 0, kind
    for defect in logged:
        _check_defect(defective, defect)


def _check_defect(root: Path, d: dict) -> None:
    """The logged defect is in the file, at the line and column named (the lead's conventions)."""
    path = root / "landing" / d["file"]
    data = path.read_bytes()
    lines = data.decode("utf-8").split("\n")
    kind, line, column, day = d["kind"], d.get("line"), d.get("column"), d["file"].split("/")[2]
    if kind == "truncated_file":
        assert not data.endswith(b"\n") and line == len(lines)
        return
    if kind == "renamed_column":
        header = lines[0].split(",")
        assert column not in header and d["detail"].split("'")[1] in header
        return
    if kind == "duplicate_record":
        assert lines[line - 1] == lines[int(d["detail"].rsplit(" ", 1)[1]) - 1]
        return
    if kind == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(lines[line - 1])
        return
    if path.suffix == ".jsonl":
        value = json.loads(lines[line - 1]).get(column)
    else:
        header = next(csv.reader(io.StringIO(lines[0])))
        value = dict(zip(header, next(csv.reader(io.StringIO(lines[line - 1]))), strict=True))[column]
    if kind == "missing_required":
        assert value in (None, "")
    elif kind == "outside_kazakhstan":
        low, high = KZ_LAT if column == "lat" else KZ_LON
        assert not low <= float(value) <= high
    elif kind == "future_date":
        assert value[:10] > day
    elif kind == "late_record":
        assert value[:10] < day
    else:
        raise AssertionError(f"unexpected kind {kind}")


def test_no_defects_but_late_uploads_at_rate_zero(run):
    kinds = {d["kind"] for d in read_defects(run) if d["feed"] in (cr.FEED, sv.FEED)}
    assert kinds == {"late_record"}


def test_the_cli_moves_the_sergek_rollout_in_every_feed_that_depends_on_it(tmp_path, monkeypatch):
    """`qala simulate --sergek-rollout` reaches the accidents, the register and the violations."""
    import json as _json

    from transforms.cli import main

    monkeypatch.setenv("QALA_WAREHOUSE", str(tmp_path))
    assert main(["simulate", "--start", "2025-06-01", "--days", "1", "--scale", "0.01",
                 "--domains", "safety", "--defect-rate", "0", "--sergek-rollout", "2026-01-01"]) == 0
    truth = _json.loads((tmp_path / "simulator" / "ground_truth.json").read_text(encoding="utf-8"))
    assert truth["safety/road_accidents"]["effects"]["sergek_astana"]["rollout_date"] == "2026-01-01"
    assert "2026-01-01" in _json.dumps(truth["safety/camera_registry"])
    assert "2026-01-01" in _json.dumps(truth["safety/sergek_violations"])
    registry = (tmp_path / "landing" / "safety" / "camera_registry" / "2025-06-01").glob("*.csv")
    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in registry)
    assert "Astana" not in text and "Астана" not in text  # no Astana camera before the rollout
