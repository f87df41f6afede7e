"""The road-accident register simulator: contract shape, determinism, planted effects, quirks."""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

from transforms.settings import CONTRACTS_DIR
from qala_devkit.simulate import simulate
from qala_devkit.simulate.base import DayContext, to_windows_1251
from qala_devkit.simulate import road_accidents as ra
from qala_devkit.simulate.world import KZ_LAT, KZ_LON, load_regions

FEED = "safety/road_accidents"
START = date(2024, 12, 1)  # spans winter and the Sergek rollout
DAYS = 60


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test recomputes the draws, so determinism is not just the cache answering."""
    ra._occurrences.cache_clear()
    yield


@pytest.fixture(scope="module")
def run60(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("run60")
    ra._occurrences.cache_clear()
    rows = simulate(root, START, DAYS, scale=1.0, seed=42, defect_rate=0, feeds=[FEED])
    assert set(rows) == {FEED} and rows[FEED] > 0
    return root


@pytest.fixture(scope="module")
def accidents(run60) -> pl.DataFrame:
    """All rows of the 60-day run, typed, with the folder day and the file's encoding."""
    frames = []
    for path in _files(run60):
        encoding = _encoding(path.read_bytes())
        frame = _parse(path.read_bytes().decode(encoding))
        folder = pl.lit(path.parent.name).str.to_date()
        frames.append(frame.with_columns(folder=folder, encoding=pl.lit(encoding)))
    return pl.concat(frames)


def _files(root: Path) -> list[Path]:
    return sorted((root / "landing" / FEED).glob("*/*.csv"))


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in _files(root)}  # fmt: skip


def _encoding(data: bytes) -> str:
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1251"


def _decode(path: Path) -> str:
    data = path.read_bytes()
    return data.decode(_encoding(data))


def _contract_columns() -> list[str]:
    path = CONTRACTS_DIR / "safety" / "road_accidents.yaml"
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["columns"])


def _parse(text: str) -> pl.DataFrame:
    """Read as text first, then cast strictly: a value that does not parse fails the test."""
    raw = pl.read_csv(text.encode("utf-8"), infer_schema=False)
    return raw.with_columns(
        pl.col("occurred_at").str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S", strict=True),
        pl.col("injured", "killed", "vehicles").cast(pl.Int64, strict=True),
        pl.col("lat", "lon").cast(pl.Float64, strict=True),
    )


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        ra._occurrences.cache_clear()
        simulate(tmp_path / name, date(2025, 3, 1), 12, seed=seed, defect_rate=0.01, feeds=[FEED])
    a, b, c = (_digests(tmp_path / name) for name in "abc")
    assert len(a) == 12
    assert a == b
    assert set(a) == set(c) and all(a[k] != c[k] for k in a)


def test_a_day_alone_is_byte_identical_to_the_same_day_in_a_run(run60, tmp_path):
    # One UTF-8 day and one Windows-1251 day, both deep enough in the run to hold late rows.
    by_encoding = {_encoding(p.read_bytes()): p for p in _files(run60)[10:]}
    for path in by_encoding.values():
        day = date.fromisoformat(path.parent.name)
        ra.generate_day(DayContext(root=tmp_path, feed=FEED, day=day))
        alone = tmp_path / path.relative_to(run60)
        assert alone.read_bytes() == path.read_bytes()
    assert set(by_encoding) == {"utf-8", "cp1251"}


# --- shape -----------------------------------------------------------------------------------


def test_every_file_has_the_contract_header_and_parses(run60, accidents):
    header = ",".join(_contract_columns())
    files = _files(run60)
    assert len(files) == DAYS
    for path in files:
        text = _decode(path)
        assert text.split("\n", 1)[0] == header
        assert "\r" not in text
    assert accidents.columns[: len(_contract_columns())] == _contract_columns()


def test_accident_ids_are_unique_across_the_run(accidents):
    assert accidents["accident_id"].is_unique().all()
    assert accidents["accident_id"].str.contains(r"^RA-\d{8}-\d{2}-\d{6}$").all()


def test_severity_agrees_with_casualties(accidents):
    assert set(accidents["severity"].unique()) == {"damage_only", "injury", "fatal"}
    fatal = accidents["severity"] == "fatal"
    injury = accidents["severity"] == "injury"
    assert ((accidents["killed"] >= 1) == fatal).all()
    assert (accidents.filter(injury)["injured"] >= 1).all()
    damage_only = accidents.filter(~fatal & ~injury)
    assert (damage_only["injured"] == 0).all() and (damage_only["killed"] == 0).all()
    assert accidents["vehicles"].is_between(1, 4).all()
    # ~0.14 deaths per accident (killed has variance ~0.17: at ~3,600 accidents the mean's
    # sigma is ~0.007, so +-0.03 is > 4 sigma).
    assert accidents["killed"].mean() == pytest.approx(ra.DEATHS_PER_ACCIDENT, abs=0.03)


def test_places_are_real_regions_inside_kazakhstan(accidents):
    prefixes = {r.kato_prefix for r in load_regions()}
    assert accidents["kato_code"].str.contains(r"^\d{9}$").all()
    assert set(accidents["kato_code"].str.slice(0, 2).unique()) <= prefixes
    assert accidents["lat"].is_between(*KZ_LAT).all()
    assert accidents["lon"].is_between(*KZ_LON).all()


def test_streets_survive_csv_quoting_and_are_sometimes_empty(accidents):
    streets = accidents["street"]
    known = set(ra.STREETS) | {to_windows_1251(s) for s in ra.STREETS}
    assert set(streets.drop_nulls().unique()) <= known
    assert streets.str.contains(",").any() and streets.str.contains('"').any()
    assert 0.02 < streets.is_null().mean() < 0.09  # 5% empty; sigma ~0.4% at ~3,600 rows


def test_hours_peak_at_rush_hour_and_are_quiet_at_night(accidents):
    hours = accidents["occurred_at"].dt.hour()
    rush = hours.is_in([8, 17, 18]).sum() / 3
    night = hours.is_in([2, 3, 4]).sum() / 3
    assert rush > 4 * night


# --- volumes and the planted effect ----------------------------------------------------------


def test_volumes_follow_population(accidents):
    by_prefix = dict(accidents.group_by(pl.col("kato_code").str.slice(0, 2)).len().iter_rows())
    assert by_prefix["75"] > 5 * by_prefix["62"]  # Almaty city 2.23M people vs Ulytau 0.22M
    per_day = accidents.height / DAYS
    assert 45 < per_day < 75  # ~55/day, +15% in Dec-Feb, less after Astana's cameras


def test_astana_accidents_fall_16_percent_after_sergek_while_almaty_does_not(tmp_path):
    # The same 17 weeks (119 days: each weekday 17 times, no winter, no 29 February) before and
    # after the rollout, at scale 20. Astana expects ~9,100 accidents in the 2024 window and
    # ~7,700 in 2025. Counts are Poisson, so the ratio's standard deviation is about
    # 0.84 * sqrt(1/9100 + 1/7700) = 0.013; Almaty city's (~14,300 each) is
    # sqrt(2/14300) = 0.012. A tolerance of 0.05 is about 4 sigma for both: a correct
    # simulator practically never fails it, and a missing effect (ratio 1.0) always does.
    windows = {2024: date(2024, 3, 1), 2025: date(2025, 3, 1)}
    counts = {}
    for year, start in windows.items():
        simulate(tmp_path, start, 119, scale=20, seed=42, defect_rate=0, feeds=[FEED])
        frame = pl.concat(_parse(_decode(p)) for p in _files(tmp_path))
        # Count by occurrence date: late rows from before the window are not the window's.
        occurred = pl.col("occurred_at").dt.date()
        inside = frame.filter(occurred.is_between(start, start + timedelta(days=118)))
        counts[year] = dict(inside.group_by(pl.col("kato_code").str.slice(0, 2)).len().iter_rows())
        for path in _files(tmp_path):
            path.unlink()
    astana = counts[2025]["71"] / counts[2024]["71"]
    almaty = counts[2025]["75"] / counts[2024]["75"]
    assert astana == pytest.approx(1 + ra.ASTANA_EFFECT, abs=0.05)
    assert almaty == pytest.approx(1.0, abs=0.05)


def test_ground_truth_records_the_effect_and_the_run_and_keeps_other_feeds(tmp_path):
    path = tmp_path / "simulator" / "ground_truth.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"other/feed": {"x": 1}}), encoding="utf-8")
    simulate(tmp_path, date(2025, 1, 1), 3, scale=0.5, seed=3, feeds=[FEED])
    truth = json.loads(path.read_text(encoding="utf-8"))
    assert truth["other/feed"] == {"x": 1}
    feed = truth[FEED]
    assert feed["effects"]["sergek_astana"]["rollout_date"] == "2025-01-01"
    assert feed["effects"]["sergek_astana"]["relative_change"] == -0.16
    assert feed["effects"]["sergek_astana"]["kato_prefix"] == "71"
    run = {"start": "2025-01-01", "days": 3, "end": "2025-01-03", "scale": 0.5, "seed": 3,
           "defect_rate": 0.002}
    assert feed["run"] == run
    assert not list((tmp_path / "landing").rglob("*.json"))


def test_unknown_domain_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown domain"):
        simulate(tmp_path, date(2025, 1, 1), 1, domains=["nope"])


# --- source-system quirks: encodings and late registrations ----------------------------------


def test_some_days_are_windows_1251_with_kazakh_letters_folded(run60, accidents):
    encodings = {path: _encoding(path.read_bytes()) for path in _files(run60)}
    cp1251 = [p for p, e in encodings.items() if e == "cp1251"]
    assert 1 <= len(cp1251) <= DAYS // 4  # ~10% of days
    for path in cp1251:
        data = path.read_bytes()
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        assert not set(data.decode("cp1251")) & set("әғқңөұүһӘҒҚҢӨҰҮҺ")
    utf8_streets = accidents.filter(pl.col("encoding") == "utf-8")["street"]
    assert utf8_streets.str.contains("[әғқңөұүі]").any()


def test_late_rows_arrive_in_a_later_days_file_once(accidents):
    lag = (accidents["folder"] - accidents["occurred_at"].dt.date()).dt.total_days()
    assert lag.min() == 0 and lag.max() <= ra.MAX_LATE_DAYS
    late_share = (lag > 0).mean()
    assert 0.005 < late_share < 0.04  # ~2%: ~72 of ~3,600 rows, sigma ~0.25%
    assert accidents["accident_id"].is_unique().all()


# --- bulk writer -----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "cp1251"])
def test_write_rows_writes_exactly_n_rows(tmp_path, encoding):
    path = tmp_path / "bulk.csv"
    assert ra.write_rows(path, date(2025, 5, 5), 20_000, seed=1, encoding=encoding) == 20_000
    frame = _parse(path.read_bytes().decode(encoding))
    assert frame.columns == _contract_columns()
    assert frame.height == 20_000 and frame["accident_id"].is_unique().all()


def test_the_rollout_date_and_effect_are_configurable():
    day = date(2025, 6, 2)
    astana = [r.kato_prefix for r in load_regions()].index(ra.ASTANA_PREFIX)
    with_cameras = ra._expected_by_region(day, 1.0, ra.Params())
    before_rollout = ra._expected_by_region(day, 1.0, ra.Params(sergek_rollout=date(2026, 1, 1)))
    assert with_cameras[astana] / before_rollout[astana] == pytest.approx(0.84)
    others = [i for i in range(len(with_cameras)) if i != astana]
    assert (with_cameras[others] == before_rollout[others]).all()
    truth = ra.ground_truth(ra.Params(sergek_rollout=date(2026, 1, 1), astana_effect=-0.3))
    assert truth["effects"]["sergek_astana"]["rollout_date"] == "2026-01-01"
    assert truth["effects"]["sergek_astana"]["rate_multiplier"] == pytest.approx(0.7)
