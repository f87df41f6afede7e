"""The housing simulators: Almaty street lighting (CSV), Smart Aqkol gas payments (CSV) and the
109 desks' Open311 GeoReport v2 requests (JSON): format, determinism, planted effects, defects."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from types import ModuleType

import numpy as np
import polars as pl
import pytest

from qala_devkit.simulate import open311_requests as orq
from qala_devkit.simulate import people, simulate
from qala_devkit.simulate import street_lighting as sl
from qala_devkit.simulate import utility_payments as up
from qala_devkit.simulate.base import DayContext, read_defects, write_defects
from qala_devkit.simulate.world import KZ_LAT, KZ_LON, load_regions

MODULES = (sl, up, orq)
W3C = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$"


def _clear_caches() -> None:
    for cached in (sl._readings, sl._cabinets, up._accounts, orq._created):
        cached.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test recomputes the draws, so determinism is not just the cache answering."""
    _clear_caches()
    yield


def _run(root: Path, module: ModuleType, start: date, days: int, scale: float, seed: int = 42,
         defect_rate: float = 0.0, params: object | None = None) -> int:  # fmt: skip
    """What simulate() does for one feed (so each feed gets its own scale)."""
    rows = 0
    for i in range(days):
        ctx = DayContext(root=root, feed=module.FEED, day=start + timedelta(days=i), scale=scale, seed=seed,
                         defect_rate=defect_rate, params=params)  # fmt: skip
        rows += module.generate_day(ctx)
        write_defects(ctx)
    return rows


def _files(root: Path, feed: str) -> list[Path]:
    return sorted(p for p in (root / "landing" / feed).glob("*/*") if p.is_file())


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "landing").rglob("*")) if p.is_file()}  # fmt: skip


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1251")


def _csv(path: Path) -> pl.DataFrame:
    """A day's CSV as text columns, with the folder's day."""
    frame = pl.read_csv(_decode(path.read_bytes()).encode("utf-8"), infer_schema=False)
    return frame.with_columns(folder=pl.lit(path.parent.name).str.to_date())


def _requests(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


# --- street lighting -------------------------------------------------------------------------

SL_START = date(2025, 3, 18)  # 14 days before and 14 after wave 3 (2025-04-01)
SL_DAYS = 28
SL_SCALE = 0.1  # 150 cabinets


@pytest.fixture(scope="module")
def sl_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lighting")
    _clear_caches()
    _run(root, sl, SL_START, SL_DAYS, SL_SCALE)
    return root


@pytest.fixture(scope="module")
def readings(sl_run) -> pl.DataFrame:
    frame = pl.concat([_csv(p) for p in _files(sl_run, sl.FEED)])
    return frame.with_columns(
        pl.col("interval_start").str.to_datetime("%Y-%m-%dT%H:%M:%S%:z", strict=True),
        local_day=pl.col("interval_start").str.slice(0, 10).str.to_date(),
        number=pl.col("cabinet_id").str.slice(7).cast(pl.Int64, strict=True),
        energy_kwh=pl.col("energy_kwh").cast(pl.Float64, strict=True),
        burning_hours=pl.col("burning_hours").cast(pl.Float64, strict=True),
        lamps=pl.col("lamps").cast(pl.Int64, strict=True),
        interval_minutes=pl.col("interval_minutes").cast(pl.Int64, strict=True),
    )


def test_lighting_files_follow_the_layout(sl_run, readings):
    files = _files(sl_run, sl.FEED)
    assert [p.name for p in files] == [f"street_lighting_{SL_START + timedelta(days=i)}.csv"
                                       for i in range(SL_DAYS)]  # fmt: skip
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.split("\n", 1)[0] == ",".join(sl.COLUMNS) and text.endswith("\n") and "\r" not in text
    raw = pl.concat([_csv(p) for p in files])
    assert raw["interval_start"].str.contains(r"^\d{4}-\d{2}-\d{2}T\d{2}:00:00\+05:00$").all()
    assert raw["cabinet_id"].str.contains(r"^ALM-SL-\d{6}$").all()
    districts = {f"75{code}00000" for code in sl.DISTRICT_CODES}
    assert set(readings["kato_code"].unique()) == districts
    assert (readings["interval_minutes"] == 60).all()
    assert readings["burning_hours"].is_between(0, 1).all() and (readings["energy_kwh"] >= 0).all()
    assert readings["lamps"].is_between(*sl.LAMPS_RANGE).all()
    # Every reading arrives once, and a day holds each delivered cabinet's 24 intervals.
    assert not readings.select("cabinet_id", "interval_start").is_duplicated().any()
    per_day = readings.group_by("cabinet_id", "local_day").len()
    assert (per_day["len"] == 24).all()
    # A cabinet's attributes are the same every day.
    assert readings.group_by("cabinet_id").agg(pl.col("kato_code", "lamps").n_unique()).select(
        (pl.col("kato_code") == 1) & (pl.col("lamps") == 1)).to_series().all()


def test_lamps_burn_from_dusk_to_dawn():
    """Burning hours against textbook spherical astronomy: night length at the solstices, where
    the declination is +-23.44 degrees, the day lengthened by the 0.833 degrees of refraction
    and the solar disc (~11 min), and the relays' 2 x 10 minutes. The NOAA equations agree
    with this to a minute or two: 0.1 h of tolerance."""
    lat = math.radians(sl.LATITUDE)
    for day in (date(2025, 12, 21), date(2025, 6, 21)):
        decl = math.radians(-23.44 if day.month == 12 else 23.44)
        h0 = math.degrees(math.acos(-math.tan(lat) * math.tan(decl)))
        extra = 0.833 / (15 * math.cos(lat) * math.cos(decl) * math.sin(math.radians(h0)))
        night = 24 - 2 * h0 / 15 - 2 * extra - 20 / 60
        starts, hours = sl.burning_hours(day)
        assert starts.size == 24
        assert hours.sum() == pytest.approx(night, abs=0.1)
    assert sl.burning_hours(date(2025, 12, 21))[1].sum() > 14.5  # long winter evenings
    assert sl.burning_hours(date(2025, 6, 21))[1].sum() < 8.5


def test_the_2024_clock_change_gives_a_25_hour_day(tmp_path):
    for day in (date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1)):
        sl.generate_day(DayContext(root=tmp_path, feed=sl.FEED, day=day, scale=0.01))
    frames = {p.parent.name: _csv(p) for p in _files(tmp_path, sl.FEED)}
    one = {day: f.filter(pl.col("cabinet_id") == "ALM-SL-000001")["interval_start"].to_list()
           for day, f in frames.items()}  # fmt: skip
    assert len(one["2024-02-28"]) == 24 and all(v.endswith("+06:00") for v in one["2024-02-28"])
    assert len(one["2024-02-29"]) == 25
    assert one["2024-02-29"][-2:] == ["2024-02-29T23:00:00+06:00", "2024-02-29T23:00:00+05:00"]
    assert len(one["2024-03-01"]) == 24 and all(v.endswith("+05:00") for v in one["2024-03-01"])


def test_led_retrofit_cuts_energy_40_percent_against_the_cabinets_own_baseline(readings):
    """Energy per lamp burning hour, each cabinet after vs before 2025-04-01 (14 nights each).
    A reading's noise is 3%; a cabinet has ~150 burning readings per side, so its ratio's
    sigma is 0.03 * sqrt(2/150) = 0.0035 (plus <0.1% from rounding partial hours): 0.02 is
    over 5 sigma for a single cabinet."""
    rate = (readings.filter(pl.col("burning_hours") > 0)
            .with_columns(after=pl.col("local_day") >= date(2025, 4, 1))
            .group_by("number", "after")
            .agg(kwh=pl.col("energy_kwh").sum() / (pl.col("lamps") * pl.col("burning_hours")).sum())
            .pivot("after", index="number", values="kwh").drop_nulls())  # fmt: skip
    wave = sl.cabinet_wave(rate["number"].to_numpy())
    ratio = (rate["true"] / rate["false"]).to_numpy()
    assert set(np.unique(wave)) == {0, 1, 2, 3, 4}
    np.testing.assert_allclose(ratio[wave == 3], 1 + sl.LED_CHANGE, atol=0.02)
    np.testing.assert_allclose(ratio[wave != 3], 1.0, atol=0.02)
    # Before the wave: sodium lamps at 0.168 or 0.280 kW; waves 1 and 2 are LED already.
    before = rate["false"].to_numpy()
    sodium = np.where(np.isin(wave, (1, 2)), before / (1 + sl.LED_CHANGE), before)
    assert np.min(np.abs(sodium[:, None] - np.array(sl.LAMP_KW)[None, :]), axis=1).max() < 0.01


def test_cabinet_waves_follow_the_stated_rule():
    wave = sl.cabinet_wave(np.arange(1, 1501))
    counts = Counter(wave.tolist())
    # (37 n) mod 100 runs over every residue once per 100 cabinets: the shares are exact.
    assert counts == {1: 225, 2: 300, 3: 375, 4: 300, 0: 300}
    truth = sl.ground_truth()["effects"]["led_retrofit"]
    assert truth["relative_change"] == -0.40 and truth["id"] == "HCS-01"
    assert [w["date"] for w in truth["waves"]] == ["2024-04-01", "2024-09-02", "2025-04-01", "2025-09-01"]
    assert [w["u_range"] for w in truth["waves"]] == [[0, 15], [15, 35], [35, 60], [60, 80]]
    n = 123
    assert sl.cabinet_wave([n])[0] == next(w["wave"] for w in truth["waves"]
                                           if w["u_range"][0] <= 37 * n % 100 < w["u_range"][1])  # fmt: skip
    moved = sl.Params(wave_dates=(date(2026, 1, 1),), wave_shares=(0.5,), led_change=-0.5)
    assert set(np.unique(sl.cabinet_wave(np.arange(1, 101), moved))) == {0, 1}
    assert sl.ground_truth(moved)["effects"]["led_retrofit"]["energy_multiplier"] == 0.5


def test_the_retrofit_is_configurable_end_to_end(tmp_path):
    # Every cabinet retrofitted on 2025-05-01 at -50%: the night of 04-30 vs that of 05-01.
    params = sl.Params(wave_dates=(date(2025, 5, 1),), wave_shares=(1.0,), led_change=-0.5)
    _run(tmp_path, sl, date(2025, 4, 30), 2, 0.02, params=params)
    frame = pl.concat([_csv(p) for p in _files(tmp_path, sl.FEED)]).filter(pl.col("burning_hours") != "0.000")
    rate = (frame.group_by(pl.col("interval_start").str.slice(0, 10).alias("day"))
            .agg(kwh=pl.col("energy_kwh").cast(pl.Float64).sum()
                 / (pl.col("lamps").cast(pl.Int64) * pl.col("burning_hours").cast(pl.Float64)).sum())
            .sort("day"))  # fmt: skip
    # The lamp mix differs by cabinet, not by day: the ratio is the effect (noise: 3% over
    # ~30 cabinets x ~10 readings per night, well under 1%).
    assert rate["kwh"][-1] / rate["kwh"][-2] == pytest.approx(0.5, abs=0.02)


def test_offline_cabinets_deliver_a_whole_day_late_and_it_is_logged(sl_run, readings):
    late = readings.filter(pl.col("local_day") < pl.col("folder"))
    lag = (late["folder"] - late["local_day"]).dt.total_days()
    assert lag.min() >= 1 and lag.max() <= sl.MAX_LATE_DAYS
    # 150 cabinets x 28 days: ~42 offline cabinet-days expected (1%), sigma ~6.5.
    blocks = late.group_by("cabinet_id", "local_day").agg(pl.col("folder").n_unique(), pl.len())
    assert 15 < blocks.height < 75
    assert (blocks["folder"] == 1).all() and (blocks["len"] == 24).all()
    # The log names exactly the late lines (and, at defect rate 0, nothing else).
    logged = read_defects(sl_run, sl.FEED)
    assert {d["kind"] for d in logged} == {"late_record"}
    assert len(logged) == late.height
    for d in logged[:200]:
        path = sl_run / "landing" / d["file"]
        line = path.read_text(encoding="utf-8").split("\n")[d["line"] - 1]
        assert line.split(",")[2][:10] < path.parent.name and d["column"] == "interval_start"


def test_lighting_volume_is_proportional_to_scale(tmp_path):
    day = date(2025, 5, 5)
    counts = {}
    for scale in (0.1, 0.2, 0.4):
        sl.generate_day(DayContext(root=tmp_path / str(scale), feed=sl.FEED, day=day, scale=scale))
        counts[scale] = _csv(_files(tmp_path / str(scale), sl.FEED)[0]).height
    # Rows = 24 x cabinets, less the ~1% offline today, plus the late ones: within 4%.
    for scale, rows in counts.items():
        assert rows == pytest.approx(24 * sl.CABINETS_AT_SCALE_1 * scale, rel=0.04)


# --- utility payments ------------------------------------------------------------------------

UP_WINDOWS = (date(2024, 1, 1), date(2025, 1, 1), date(2025, 12, 4))  # 28 days each
UP_DAYS = 28


@pytest.fixture(scope="module")
def up_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("payments")
    _clear_caches()
    for start in UP_WINDOWS:
        _run(root, up, start, UP_DAYS, 1.0)
    return root


@pytest.fixture(scope="module")
def payments(up_run) -> pl.DataFrame:
    frame = pl.concat([_csv(p) for p in _files(up_run, up.FEED)])
    return frame.with_columns(
        pl.col("paid_at").str.to_datetime("%Y-%m-%d %H:%M:%S", strict=True),
        pl.col("amount_kzt").cast(pl.Float64, strict=True),
        automated=pl.col("channel").is_in(up.AUTOMATED),
    )


def test_payment_files_follow_the_layout(up_run, payments):
    files = _files(up_run, up.FEED)
    assert len(files) == 3 * UP_DAYS
    for path in files:
        text = _decode(path.read_bytes())
        assert text.split("\n", 1)[0] == ",".join(up.COLUMNS) and text.endswith("\n") and "\r" not in text
        assert path.name == f"utility_payments_{path.parent.name}.csv"
    towns = {t.kato_code: t for t in up.towns()}
    assert set(payments["kato_code"].unique()) == set(towns)
    assert payments["account_id"].str.contains(r"^\d{11}$").all()
    assert (payments["account_id"].str.slice(0, 4) == payments["kato_code"].str.slice(0, 4)).all()
    assert people.is_valid(payments["payer_iin"].to_numpy()).all()
    word = "[А-ЯЁӘҒҚҢӨҰҮҺІа-яёәғқңөұүһі]+"
    assert payments["payer_name"].str.contains(f"^{word} {word} {word}$").all()
    assert (payments["service"] == "gas").all()
    assert set(payments["channel"].unique()) == set(up.CHANNELS)
    assert (payments["paid_at"].dt.date() == payments["folder"]).all()
    assert payments["payment_id"].is_unique().all()
    # One holder per account, the same every day.
    holders = payments.group_by("account_id").agg(pl.col("payer_iin", "payer_name").n_unique())
    assert (holders["payer_iin"] == 1).all()
    # The billing month: last month's bill, arrears of two months, or an advance.
    paid_month = payments["paid_at"].dt.year() * 12 + payments["paid_at"].dt.month()
    period = (payments["period"].str.slice(0, 4).cast(pl.Int64) * 12
              + payments["period"].str.slice(5).cast(pl.Int64))  # fmt: skip
    assert set((paid_month - period).unique()) == {0, 1, 2}
    assert payments["period"].str.contains(r"^\d{4}-(0[1-9]|1[0-2])$").all()


def test_channels_keep_their_hours_and_cash_is_rounded(payments):
    auto = payments.filter(pl.col("channel") == "auto_debit")
    assert (auto["paid_at"].dt.hour() == up.AUTO_DEBIT_HOUR).all()
    office = payments.filter(pl.col("channel").is_in(["bank", "cash"]))["paid_at"].dt.hour()
    assert office.is_between(8, 21).all()
    assert (payments.filter(pl.col("channel") == "cash")["amount_kzt"] % 100 == 0).all()
    assert (payments["amount_kzt"] > 0).all()


def test_automated_payments_rise_in_aqkol_as_stated(payments):
    """HCS-02. Each 28-day window has ~4,000 Aqkol payments (18% of ~22,000): the share's sigma
    is sqrt(0.25 / 4000) = 0.008, and ~18,000 in the comparison towns (sigma 0.004). A
    tolerance of 0.035 is over 4 sigma; the rise from 0.36 to 0.74 is 45 sigma."""
    aqkol = up.towns()[0].kato_code
    for start in UP_WINDOWS:
        days = [start + timedelta(days=i) for i in range(UP_DAYS)]
        window = payments.filter(pl.col("folder").is_between(days[0], days[-1]))
        for pilot, town in ((True, pl.col("kato_code") == aqkol), (False, pl.col("kato_code") != aqkol)):
            measured = window.filter(town)["automated"].mean()
            expected = np.mean([up.automated_share(d, pilot) for d in days])
            assert measured == pytest.approx(expected, abs=0.035)
    assert up.automated_share(date(2024, 1, 1), True) == 0.35
    assert up.automated_share(date(2026, 1, 1), True) == 0.75
    assert up.automated_share(date(2027, 6, 1), True) == 0.75
    truth = up.ground_truth()["effects"]["automated_payments"]
    assert truth["automated_channels"] == ["auto_debit", "online"]
    assert truth["pilot_share"] == {"at_anchor": 0.35, "at_target": 0.75}
    shifted = up.Params(anchor_date=date(2025, 1, 1), target_date=date(2025, 7, 1))
    assert up.automated_share(date(2025, 4, 1), True, shifted) == pytest.approx(0.35 + 0.4 * 90 / 181)


def test_payments_cluster_before_the_25th_and_winter_bills_are_large(tmp_path, payments):
    by_day = payments.group_by("folder").len()
    dom = by_day["folder"].dt.day()
    before = by_day.filter(dom.is_between(18, 24))["len"].mean()
    after = by_day.filter(dom.is_between(26, 28))["len"].mean()
    assert before > 2.5 * after  # weights ~1.8 vs ~0.45
    # July pays June's bill (35 m3), January December's (420 m3): ~12 times more.
    _run(tmp_path, up, date(2025, 7, 14), 5, 1.0)
    july = pl.concat([_csv(p) for p in _files(tmp_path, up.FEED)])["amount_kzt"].cast(pl.Float64).mean()
    january = payments.filter(pl.col("folder").dt.month() == 1)["amount_kzt"].mean()
    assert january > 6 * july


def test_some_payment_days_are_windows_1251_and_logged(up_run):
    logged = {d["file"] for d in read_defects(up_run, up.FEED) if d["kind"] == "windows_1251"}
    assert {d["kind"] for d in read_defects(up_run, up.FEED)} == {"windows_1251"}
    assert 2 <= len(logged) <= 20  # ~10% of 84 days
    for path in _files(up_run, up.FEED):
        data = path.read_bytes()
        if path.relative_to(up_run / "landing").as_posix() in logged:
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")
            assert not set(data.decode("cp1251")) & set("әғқңөұүһӘҒҚҢӨҰҮҺ")
        else:
            assert set(data.decode("utf-8")) & set("әғқңөұүһ")


def test_payment_volume_is_proportional_to_scale(tmp_path):
    """~790 payments a day at scale 1: over 10 days ~7,900 vs ~15,800; Poisson sigma of the
    ratio ~0.03, so 0.12 is 4 sigma."""
    counts = {scale: _run(tmp_path / str(scale), up, date(2025, 3, 3), 10, scale) for scale in (1.0, 2.0)}
    assert counts[2.0] / counts[1.0] == pytest.approx(2.0, abs=0.12)
    assert counts[1.0] / 10 == pytest.approx(up.ground_truth()["records_per_day_at_scale_1"], rel=0.2)


# --- Open311 requests ------------------------------------------------------------------------

OR_START = date(2025, 1, 6)
OR_DAYS = 45
OR_SCALE = 0.1  # ~580 requests created a day in January


@pytest.fixture(scope="module")
def or_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("open311")
    _clear_caches()
    _run(root, orq, OR_START, OR_DAYS, OR_SCALE)
    return root


@pytest.fixture(scope="module")
def objects(or_run) -> pl.DataFrame:
    """Every request object of the run, with the day of its file."""
    schema = {f: pl.Float64 if f in ("lat", "long") else pl.String for f in orq.FIELDS}
    frame = pl.concat(pl.read_json(path, schema=schema).with_columns(folder=pl.lit(path.parent.name))
                      for path in _files(or_run, orq.FEED))  # fmt: skip
    parse = "%Y-%m-%dT%H:%M:%S%:z"
    return frame.with_columns(
        requested=pl.col("requested_datetime").str.to_datetime(parse, strict=True),
        updated=pl.col("updated_datetime").str.to_datetime(parse, strict=True),
        expected=pl.col("expected_datetime").str.to_datetime(parse, strict=True),
        folder=pl.col("folder").str.to_date(),
    )


def test_open311_files_are_georeport_arrays_one_request_per_line(or_run):
    files = _files(or_run, orq.FEED)
    assert len(files) == OR_DAYS
    for path in files:
        assert path.name == f"requests_{path.parent.name}.json"
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        assert lines[0] == "[" and lines[-2:] == ["]", ""]
        body = lines[1:-2]
        assert all(line.endswith("},") for line in body[:-1]) and body[-1].endswith("}")
        parsed = [json.loads(line.rstrip(",")) for line in body]
        assert parsed == json.loads(text)
        strings = [f for f in orq.FIELDS if f not in ("lat", "long")]
        for request in parsed:
            assert list(request) == list(orq.FIELDS)
            assert all(request[f] is None or type(request[f]) is str for f in strings)
            assert type(request["lat"]) is float and type(request["long"]) is float


def test_open311_fields_have_the_standards_types_and_values(objects):
    assert set(objects["status"].unique()) == {"open", "closed"}
    for field in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert objects[field].str.contains(W3C).all()
        assert objects[field].str.ends_with("+05:00").all()  # 2025: one zone, UTC+5
    services = {s.code: s for s in orq.SERVICES}
    assert set(objects["service_code"].unique()) == set(services)
    names = objects.select(pl.col("service_code").replace_strict({c: s.name for c, s in services.items()}))
    assert (names.to_series() == objects["service_name"]).all()
    sla = objects["service_code"].replace_strict({c: s.sla_hours for c, s in services.items()})
    assert ((objects["expected"] - objects["requested"]).dt.total_hours() == sla).all()
    assert objects["service_request_id"].str.contains(r"^\d{16}$").all()
    assert objects["zipcode"].str.contains(r"^\d{6}$").all()
    assert objects["address_id"].drop_nulls().str.contains(r"^\d{16}$").all()
    assert objects["lat"].is_between(*KZ_LAT).all() and objects["long"].is_between(*KZ_LON).all()
    assert objects["media_url"].drop_nulls().str.starts_with("https://").all()
    closed = objects.filter(pl.col("status") == "closed")
    assert closed["status_notes"].is_not_null().all() and (closed["updated"] >= closed["requested"]).all()
    opened = objects.filter(pl.col("status") == "open")
    assert opened["status_notes"].is_null().all() and (opened["updated"] == opened["requested"]).all()


def test_a_request_appears_when_created_and_again_when_closed(objects):
    objects = objects.with_columns(
        created_day=pl.col("requested_datetime").str.slice(0, 10).str.to_date(),
        updated_day=pl.col("updated_datetime").str.slice(0, 10).str.to_date(),
    )
    first = objects.filter(pl.col("created_day") == pl.col("folder"))
    assert first["service_request_id"].is_unique().all()
    later = objects.filter(pl.col("created_day") != pl.col("folder"))
    assert (later["status"] == "closed").all() and (later["folder"] == later["updated_day"]).all()
    assert later["service_request_id"].is_unique().all()
    # A request seen twice: open on its creation day, then closed, with the same text fields.
    both = first.join(later, on="service_request_id", suffix="_closed")
    assert both.height > 0 and (both["status"] == "open").all()
    for field in ("description", "address", "requested_datetime", "lat", "media_url", "service_code"):
        assert both[field].equals(both[f"{field}_closed"], check_names=False, null_equal=True)
    # Requests the run saw created (after its first day) never show up closed out of nowhere.
    assert set(later.filter(pl.col("requested").dt.date() >= OR_START)["service_request_id"]) <= set(
        first["service_request_id"])


def test_time_to_close_has_the_stated_median_per_service(objects):
    """HCS-03 on requests created in the first 14 days: all of them had 30 days to close (the
    clip), so none is censored by the window. The sample median of a lognormal has a log-scale
    sigma of 1.2533 * sigma / sqrt(n); the tolerance is 4 of those (pothole: n ~ 370 closed,
    sigma 0.9 -> 4 x 0.059 = 24%; heating: n ~ 2,300, 0.7 -> 7%)."""
    first_days = objects.filter(pl.col("requested").dt.date().is_between(OR_START, OR_START + timedelta(13)))
    created = first_days.filter(pl.col("requested").dt.date() == pl.col("folder"))
    closed = first_days.filter(pl.col("status") == "closed")
    hours = closed.with_columns(hours=(pl.col("updated") - pl.col("requested")).dt.total_seconds() / 3600)
    params = orq.Params()
    for i, service in enumerate(orq.SERVICES):
        sample = hours.filter(pl.col("service_code") == service.code)["hours"]
        n = sample.len()
        assert n > 100
        tolerance = 4 * 1.2533 * params.sigma[i] / math.sqrt(n)
        assert math.log(sample.median()) == pytest.approx(math.log(params.median_hours[i]), abs=tolerance)
        assert sample.max() <= orq.MAX_CLOSE_HOURS
        # Never closed: binomial, sigma sqrt(p (1 - p) / n) <= 0.011 at these n; 4 sigma.
        total = created.filter(pl.col("service_code") == service.code).height
        never = 1 - n / total
        assert never == pytest.approx(params.never_closed[i], abs=4 * math.sqrt(0.1 * 0.9 / total) + 0.005)
    truth = orq.ground_truth()["effects"]["time_to_close"]
    heating = {"median_hours": 8.0, "sigma_log": 0.7, "never_closed_share": 0.02}
    assert truth["by_service"]["heating"] == heating


def test_descriptions_are_russian_or_kazakh_and_some_carry_a_phone(objects):
    """Over ~12,000 distinct requests: the phone share (12% of the non-empty descriptions) has
    a sigma of 0.003, the Kazakh share (40%) 0.0045: tolerances 0.015 and 0.025 are > 4 sigma."""
    requests = objects.unique("service_request_id", keep="first", maintain_order=True)
    described = requests["description"].drop_nulls()
    assert requests["description"].is_null().mean() == pytest.approx(orq.EMPTY_DESCRIPTION_SHARE, abs=0.01)
    phone = described.str.contains(r"(\+7 7\d{2} \d{3} \d{2} \d{2}|87\d{9}|\+77\d{9})$")
    assert phone.mean() == pytest.approx(orq.PHONE_SHARE, abs=0.015)
    assert (described.str.contains(r"\d{7}|\d{3} \d{2} \d{2}") == phone).all()  # digits only in phones
    kazakh = described.str.contains("[әғқңөұүһі]")
    assert kazakh.mean() == pytest.approx(orq.KAZAKH_TEXT_SHARE, abs=0.025)


def test_open311_volumes_follow_population_and_seasons(tmp_path, objects):
    created = objects.filter(pl.col("requested").dt.date() == pl.col("folder"))
    by_region = dict(created.group_by(pl.col("service_request_id").str.slice(0, 2)).len().iter_rows())
    assert by_region["75"] > 5 * by_region["62"]  # Almaty 2.23M people vs Ulytau 0.22M
    per_day = created.height / OR_DAYS
    assert per_day == pytest.approx(orq.expected_created(date(2025, 1, 15), OR_SCALE).sum(), rel=0.12)
    # July: no heating outages, no snow.
    _run(tmp_path, orq, date(2025, 7, 14), 2, OR_SCALE)
    july = {r["service_code"] for p in _files(tmp_path, orq.FEED) for r in _requests(p)}
    assert july == {"street_light", "pothole", "garbage", "water_leak"}
    assert {"heating", "snow_removal"} <= set(created["service_code"].unique())


def test_times_carry_each_regions_offset_before_march_2024(tmp_path):
    _run(tmp_path, orq, date(2024, 1, 15), 1, 0.05)
    west = {"15", "23", "27", "43", "47"}
    offsets = {(r["service_request_id"][:2] in west, r["requested_datetime"][-6:])
               for r in _requests(_files(tmp_path, orq.FEED)[0])}
    assert offsets == {(True, "+05:00"), (False, "+06:00")}


def test_open311_volume_is_proportional_to_scale(tmp_path):
    counts = {scale: _run(tmp_path / str(scale), orq, date(2025, 2, 10), 2, scale) for scale in (0.05, 0.1)}
    # ~1,050 objects a day at scale 0.1 (created + closed); Poisson sigma of the ratio ~0.05.
    assert counts[0.1] / counts[0.05] == pytest.approx(2.0, abs=0.2)


# --- all feeds: determinism, defects, the package ----------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        _clear_caches()
        simulate(tmp_path / name, date(2025, 3, 30), 4, scale=0.05, seed=seed, domains=["housing"],
                 defect_rate=0.02, workers=1)  # fmt: skip
    a, b, c = (_digests(tmp_path / name) for name in "abc")
    assert len(a) == 3 * 4
    assert a == b
    assert set(a) == set(c) and all(a[k] != c[k] for k in a)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.NAME)
def test_a_day_alone_is_byte_identical_to_the_same_day_in_a_run(tmp_path, module):
    # Day 6 of the run: street lighting holds late readings, Open311 closes earlier requests.
    start, scale = date(2025, 1, 10), 0.05
    _run(tmp_path / "run", module, start, 7, scale, defect_rate=0.05)
    _clear_caches()
    day = start + timedelta(days=6)
    module.generate_day(DayContext(root=tmp_path / "alone", feed=module.FEED, day=day, scale=scale,
                                   defect_rate=0.05))  # fmt: skip
    (alone,) = _files(tmp_path / "alone", module.FEED)
    assert alone.read_bytes() == (tmp_path / "run" / alone.relative_to(tmp_path / "alone")).read_bytes()


EXPECTED_KINDS = {
    sl.FEED: {"impossible_value", "missing_required", "duplicate_record", "truncated_file", "added_column",
              "renamed_column", "late_record"},
    up.FEED: {"invalid_iin", "missing_required", "impossible_value", "duplicate_record", "windows_1251"},
    orq.FEED: {"missing_required", "outside_kazakhstan", "future_date", "duplicate_record", "truncated_file"},
}  # fmt: skip


@pytest.fixture(scope="module")
def defect_run(tmp_path_factory) -> Path:
    """A high defect rate, so that every kind shows up in a few days."""
    root = tmp_path_factory.mktemp("defects")
    _clear_caches()
    _run(root, sl, date(2025, 2, 1), 21, 0.02, defect_rate=0.2)
    _run(root, up, date(2025, 2, 1), 21, 0.1, defect_rate=0.2)
    _run(root, orq, date(2025, 2, 1), 21, 0.01, defect_rate=0.2)
    return root


def test_every_kind_is_planted_and_ground_truth_lists_it(defect_run):
    for module in MODULES:
        kinds = {d["kind"] for d in read_defects(defect_run, module.FEED)}
        assert kinds == EXPECTED_KINDS[module.FEED]
        assert set(module.ground_truth()["defect_kinds"]) == EXPECTED_KINDS[module.FEED]


def test_every_logged_defect_is_exactly_where_the_log_says(defect_run):
    logged = read_defects(defect_run)
    renamed = {(d["file"], d["column"]): re.search(r"'(\w+)'", d["detail"]).group(1)
               for d in logged if d["kind"] == "renamed_column"}  # fmt: skip
    for d in logged:
        path = defect_run / "landing" / d["file"]
        data = path.read_bytes()
        lines = _decode(data).split("\n")
        day = path.parent.name
        kind, column, line = d["kind"], d.get("column"), d.get("line")
        if kind == "truncated_file":
            assert not data.endswith(b"\n") and line == len(lines)
            continue
        if kind == "windows_1251":
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")
            continue
        if kind in ("added_column", "renamed_column"):
            header = lines[0].split(",")
            new_name = re.search(r"'(\w+)'", d["detail"]).group(1)
            assert new_name in header and (column in header) == (kind == "added_column")
            continue
        if kind == "duplicate_record":
            original = int(re.fullmatch(r"same record as line (\d+)", d["detail"]).group(1))
            assert original < line and lines[line - 1] == lines[original - 1]
            continue
        value = _value(path, lines, line, column, {c: n for (f, c), n in renamed.items() if f == d["file"]})
        if kind == "missing_required":
            assert value in ("", None)
        elif kind == "impossible_value":
            assert float(value) < 0
        elif kind == "invalid_iin":
            assert not people.is_valid([value])[0]
        elif kind == "late_record":
            assert value[:10] < day
        elif kind == "future_date":
            assert datetime.fromisoformat(value).date().isoformat() > day
        elif kind == "outside_kazakhstan":
            bounds = KZ_LAT if column == "lat" else KZ_LON
            assert not bounds[0] <= value <= bounds[1]
        else:
            pytest.fail(f"unchecked kind {kind}")


def _value(path: Path, lines: list[str], line: int, column: str, renamed: dict[str, str]):
    """The value at (line, column): a CSV field by the header (a renamed column under its new
    name), or a JSON request's key."""
    if path.suffix == ".json":
        return json.loads(lines[line - 1].rstrip(",")).get(column)
    header = next(csv.reader([lines[0]]))
    return next(csv.reader([lines[line - 1]]))[header.index(renamed.get(column, column))]


def test_no_defects_at_rate_zero_but_the_realistic_features(tmp_path):
    simulate(tmp_path, date(2025, 1, 20), 6, scale=0.05, domains=["housing"], defect_rate=0, workers=1)
    kinds = Counter((d["feed"], d["kind"]) for d in read_defects(tmp_path))
    assert set(kinds) <= {(sl.FEED, "late_record"), (up.FEED, "windows_1251")}
    assert kinds[(sl.FEED, "late_record")] > 0


def test_simulate_discovers_the_housing_feeds_and_writes_their_ground_truth(tmp_path):
    rows = simulate(tmp_path, date(2025, 1, 1), 2, scale=0.02, seed=3, domains=["housing"], workers=1)
    assert set(rows) == {sl.FEED, up.FEED, orq.FEED} and all(rows.values())
    truth = json.loads((tmp_path / "simulator" / "ground_truth.json").read_text(encoding="utf-8"))
    assert truth[sl.FEED]["effects"]["led_retrofit"]["relative_change"] == -0.40
    assert truth[up.FEED]["effects"]["automated_payments"]["anchor_date"] == "2024-01-01"
    assert truth[orq.FEED]["effects"]["time_to_close"]["by_service"]["pothole"]["median_hours"] == 120.0
    assert truth[sl.FEED]["run"]["scale"] == 0.02 and truth[up.FEED]["records"] == rows[up.FEED]
    regions = {r.kato_prefix for r in load_regions()}
    assert {up.towns()[0].kato_code[:2], sl.ALMATY_PREFIX} <= regions
