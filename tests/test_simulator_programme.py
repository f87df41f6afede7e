"""Programme-delivery simulator feeds: the egov service register, the programme plan (120 events),
Alatau City's investment projects and its employers' monthly workforce report.

Shape and enumerations, personal identifiers (IIN/BIN check digits, ISO citizenship), what a
snapshot may know on its day, the planted GOV-01 / PRG-01 / ALA-01 / ALA-02 values, fixed size
vs linear volumes, determinism and the defect log (including the Windows-1251 export).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from qala_devkit.simulate import alatau_projects as ap
from qala_devkit.simulate import alatau_workforce as aw
from qala_devkit.simulate import events as ev
from qala_devkit.simulate import public_services as ps
from qala_devkit.simulate import simulate
from qala_devkit.simulate.base import DayContext, read_defects
from qala_devkit.simulate.people import is_valid

START = date(2025, 1, 28)  # 8 days: a month end and the workforce report of 2025-02-01
DAYS = 8
FEEDS = (ps.FEED, ev.FEED, ap.FEED, aw.FEED)
KAZAKH_ONLY = set("әғқңөұүһӘҒҚҢӨҰҮҺ")


def _clear_caches() -> None:
    for cached in (ps.catalogue, ev.plan, ap.catalogue, aw._cohort, aw._employers):
        cached.cache_clear()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("programme")
    _clear_caches()
    rows = simulate(root, START, DAYS, scale=1.0, seed=42, domains=["programme"], defect_rate=0, workers=1)
    assert all(rows[feed] > 0 for feed in FEEDS)
    return root


def _files(root: Path, feed: str) -> list[Path]:
    return sorted((root / "landing" / feed).glob("*/*.csv"))


def _read(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def _day(feed_module, day: date, root: Path, scale: float = 1.0, params=None, seed: int = 42) -> pl.DataFrame:
    """Generate one day of a feed (no defects) and read its CSV back as text columns."""
    feed_module.generate_day(DayContext(root=root, feed=feed_module.FEED, day=day, scale=scale, seed=seed,
                                        params=params))  # fmt: skip
    return _read(next((root / "landing" / feed_module.FEED / day.isoformat()).glob("*.csv")))


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "landing").rglob("*.csv"))}  # fmt: skip


# --- public services ---------------------------------------------------------------------------


def test_service_register_is_a_fixed_catalogue_of_700_in_three_languages(run, tmp_path):
    files = _files(run, ps.FEED)
    assert len(files) == DAYS
    for path in files:
        assert path.read_text(encoding="utf-8").split("\n", 1)[0] == ",".join(ps.COLUMNS)
    frame = _read(files[-1])
    assert frame.height == ps.SERVICES and frame["service_code"].is_unique().all()
    # 8-digit text codes, leading zeros kept (category 01-10).
    assert frame["service_code"].str.contains(r"^\d{8}$").all()
    assert frame["service_code"].str.starts_with("0").any()
    for column in ("name_kk", "name_ru", "name_en", "ministry", "category", "channel"):
        assert frame[column].is_not_null().all() and (frame[column].str.len_chars() > 0).all()
    assert frame["name_kk"].str.contains("[әғқңөұүі]").mean() > 0.5
    assert frame["name_ru"].str.contains("[а-яА-Я]").all() and frame["name_en"].str.contains("^[ -~]+$").all()
    assert set(frame["category"].unique()) == set(ps.CATEGORIES)
    assert set(frame["automated"].unique()) == {"true", "false"}
    assert frame["term_days"].cast(pl.Int64, strict=True).min() >= 0
    # The register does not grow with the scale.
    with_scale = _day(ps, START, tmp_path, scale=7.0)
    assert with_scale.equals(_read(files[0]))


def test_automation_fields_agree_and_only_show_the_past(run):
    for path in _files(run, ps.FEED):
        frame = _read(path)
        automated = frame["automated"] == "true"
        assert (frame["automated_on"].is_not_null() == automated).all()
        assert (frame.filter(automated)["automated_on"] <= path.parent.name).all()
        online = frame["channel"].is_in(ps.CHANNELS_AUTOMATED)
        assert (online == automated).all()


def test_gov01_58_percent_at_the_anchor_then_one_point_a_month(tmp_path):
    # Exact by construction: 406 services by 2024-01-01, 7 more in each following month.
    checks = {date(2024, 1, 1): 406, date(2024, 1, 31): 406, date(2024, 2, 29): 413,
              date(2024, 12, 31): 406 + 7 * 11, date(2025, 1, 31): 406 + 7 * 12, date(2031, 1, 1): 665}
    for day, expected in checks.items():
        assert int((_day(ps, day, tmp_path)["automated"] == "true").sum()) == expected, day
    # Before the anchor the 406 were automated evenly since 2016: ~97% of them by mid-December.
    assert 380 < int((_day(ps, date(2023, 12, 15), tmp_path)["automated"] == "true").sum()) < 406
    anchor = _day(ps, date(2024, 1, 1), tmp_path)
    named = anchor.filter(pl.col("name_en").is_in([en for _, _, en, _ in ps.NAMED_MANUAL]))
    assert named.height == 4 and (named["automated"] == "false").all()
    assert set(named["name_ru"]) == {ru for _, ru, _, _ in ps.NAMED_MANUAL}
    assert set(named["name_kk"]) == {kk for kk, _, _, _ in ps.NAMED_MANUAL}
    truth = ps.ground_truth()["effects"]["gov_01_share_automated"]
    assert truth["share_at_anchor"] == 0.58 and truth["monthly_gain"] == 0.01
    assert truth["services_automated_at_anchor"] == 406
    assert truth["services_automated_per_month_after_anchor"] == 7


def test_a_service_once_automated_stays_automated(tmp_path):
    first = _day(ps, date(2024, 6, 1), tmp_path)
    later = _day(ps, date(2025, 6, 1), tmp_path)
    joined = first.join(later, on="service_code", suffix="_later")
    was = joined.filter(pl.col("automated") == "true")
    assert (was["automated_later"] == "true").all()
    assert (was["automated_on"] == was["automated_on_later"]).all()


# --- the programme plan ------------------------------------------------------------------------


def test_plan_has_120_events_17_initiatives_5_areas(run):
    files = _files(run, ev.FEED)
    assert len(files) == DAYS
    frame = _read(files[-1])
    assert frame.columns == list(ev.COLUMNS)
    assert frame.height == 120 and frame["event_id"].is_unique().all()
    assert frame["initiative"].n_unique() == 17 and set(frame["area"]) == set(ev.AREAS.values())
    assert set(frame["status"]) <= set(ev.STATUSES)
    assert frame["responsible_ministry"].str.starts_with("Министерство").all()
    assert (frame["planned_start"] < frame["planned_end"]).all()


def _status_is_consistent(frame: pl.DataFrame, day: str) -> None:
    done = frame["actual_end"].is_not_null()
    assert ((frame["status"] == "completed") == done).all()
    assert (frame.filter(done)["actual_end"] <= day).all()
    assert (frame.filter(frame["actual_start"].is_not_null())["actual_start"] <= day).all()
    assert frame.filter(done)["actual_start"].is_not_null().all()
    overdue = frame.filter(pl.col("status") == "overdue")
    assert (overdue["planned_end"] < day).all()
    not_started = frame.filter(pl.col("status") == "not_started")
    assert not_started["actual_start"].is_null().all()


def test_a_snapshot_only_knows_what_has_happened_by_its_day(run, tmp_path):
    for path in _files(run, ev.FEED):
        _status_is_consistent(_read(path), path.parent.name)
    final = _day(ev, date(2027, 6, 1), tmp_path)  # everything has happened
    _status_is_consistent(final, "2027-06-01")
    assert (final["status"] == "completed").all()
    snapshot = _read(_files(run, ev.FEED)[-1])
    day = _files(run, ev.FEED)[-1].parent.name
    joined = snapshot.join(final, on="event_id", suffix="_final")
    finished_later = joined.filter(pl.col("actual_end_final") > day)
    assert finished_later.height > 0 and finished_later["actual_end"].is_null().all()
    assert (finished_later["status"] != "completed").all()
    finished_before = joined.filter(pl.col("actual_end_final") <= day)
    assert (finished_before["actual_end"] == finished_before["actual_end_final"]).all()


def test_prg01_a_quarter_of_events_finish_late(tmp_path):
    final = _day(ev, date(2027, 6, 1), tmp_path).with_columns(
        pl.col("planned_end", "actual_end").str.to_date())
    delay = (final["actual_end"] - final["planned_end"]).dt.total_days()
    assert int((delay > 0).sum()) == ev.LATE_EVENTS == 30
    assert (delay.filter(delay <= 0) >= -ev.EARLY_FINISH_MAX_DAYS).all()
    # Delays 7 + Gamma(2, 20): mean 47, sd 28; the mean of 30 has sd ~5.2: +-16 is 3 sd.
    assert delay.filter(delay > 0).min() >= ev.LATE_DELAY_MIN_DAYS
    assert delay.filter(delay > 0).mean() == pytest.approx(47, abs=16)
    truth = ev.ground_truth()["effects"]["prg_01_on_schedule"]
    assert truth["late_share"] == 0.25 and truth["late_events"] == 30
    assert ev.ground_truth(ev.Params(late_events=12))["effects"]["prg_01_on_schedule"]["late_share"] == 0.1
    assert int(ev.plan(42, ev.Params(late_events=12))["late"].sum()) == 12


# --- Alatau City projects ----------------------------------------------------------------------


def test_projects_register_has_valid_bins_and_consistent_money(run):
    files = _files(run, ap.FEED)
    assert len(files) == DAYS
    frame = _read(files[-1])
    assert frame.columns == list(ap.COLUMNS)
    assert 0 < frame.height <= ap.PROJECTS and frame["project_id"].is_unique().all()
    assert is_valid(frame["investor_bin"].to_list()).all()
    assert set(frame["investor_bin"].str.slice(4, 1)) <= {"4", "5"}  # resident / foreign legal entity
    money = frame.select(pl.col("planned_investment_kzt", "planned_to_date_kzt", "disbursed_kzt")
                         .cast(pl.Int64, strict=True))  # fmt: skip
    assert (money["planned_to_date_kzt"] <= money["planned_investment_kzt"]).all()
    assert (money["disbursed_kzt"] >= 0).all()
    assert (money["disbursed_kzt"] <= money["planned_to_date_kzt"]).all()
    assert set(frame["status"]) <= {"signed", "in_progress", "completed"}
    assert (frame["agreement_signed_on"] <= files[-1].parent.name).all()


def test_milestones_are_shown_once_they_happen_and_money_grows(tmp_path):
    earlier, later = date(2025, 3, 1), date(2026, 3, 1)
    a, b = _day(ap, earlier, tmp_path), _day(ap, later, tmp_path)
    for frame, day in ((a, earlier), (b, later)):
        for milestone in ap.MILESTONES:
            shown = frame[milestone + "_actual"].drop_nulls()
            assert (shown <= day.isoformat()).all()
    assert b.height >= a.height
    joined = a.join(b, on="project_id", suffix="_later").with_columns(
        pl.col("disbursed_kzt", "disbursed_kzt_later").cast(pl.Int64))
    assert (joined["disbursed_kzt_later"] >= joined["disbursed_kzt"]).all()


def test_ala02_disbursed_is_72_percent_of_plan(tmp_path):
    # Each project's factor is 0.72 x (1 + d), d centred by planned investment: the total ratio
    # is exactly 0.72 when every project's plan has run (2031), ~0.72 +- 0.03 while they run.
    ratios = {}
    for day in (date(2024, 6, 1), date(2025, 6, 1), date(2026, 6, 1), date(2031, 1, 1)):
        money = pl.col("planned_to_date_kzt", "disbursed_kzt").cast(pl.Int64)
        frame = _day(ap, day, tmp_path).with_columns(money)
        ratios[day] = frame["disbursed_kzt"].sum() / frame["planned_to_date_kzt"].sum()
    assert ratios[date(2031, 1, 1)] == pytest.approx(ap.DISBURSED_SHARE, abs=1e-6)
    for day, ratio in ratios.items():
        assert ratio == pytest.approx(ap.DISBURSED_SHARE, abs=0.03), day
    truth = ap.ground_truth(ap.Params(disbursed_share=0.9))
    assert truth["effects"]["ala_02_disbursed_vs_plan"]["share"] == 0.9


# --- Alatau City workforce ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def workforce(run) -> pl.DataFrame:
    files = _files(run, aw.FEED)
    assert [p.parent.name for p in files] == ["2025-02-01"]  # monthly, on the 1st only
    assert files[0].name == "alatau_workforce_2025-01.csv"
    return _read(files[0])


def test_workforce_rows_identify_people_by_iin_or_passport(workforce):
    assert workforce.columns == list(aw.COLUMNS)
    citizen = workforce["citizenship"] == "KZ"
    assert citizen.mean() > 0.7
    assert workforce["citizenship"].str.contains(r"^[A-Z]{2}$").all()
    assert set(workforce["citizenship"]) <= {"KZ"} | {c for c, *_ in aw.FOREIGN}
    assert is_valid(workforce.filter(citizen)["employee_iin"].to_list()).all()
    assert workforce.filter(citizen)["passport_no"].is_null().all()
    foreign = workforce.filter(~citizen)
    assert foreign["employee_iin"].is_null().all()
    assert foreign["passport_no"].str.contains(r"^[A-Z]{0,2}\d{7,9}$").all()
    assert foreign["last_name"].str.contains(r"^[A-Z][A-Z -]+$").all()
    assert workforce.filter(citizen)["last_name"].str.contains("^[А-ЯЁӘҒҚҢӨҰҮҺІа-яёәғқңөұүһі]+$").all()
    assert set(workforce["position_level"]) == set(aw.LEVELS)
    assert is_valid(workforce["employer_bin"].unique().to_list()).all()
    investors = set(ap.catalogue(42)["investor_bin"])
    assert set(workforce["employer_bin"]) & investors  # the project investors employ people


def test_workforce_report_covers_the_month_just_ended(workforce):
    assert (workforce["hired_on"] <= "2025-01-31").all()
    left = workforce["left_on"].drop_nulls()
    assert left.len() > 0 and (left >= "2025-01-01").all() and (left <= "2025-01-31").all()
    # ~470 x 48 x (1 - e^-37/48) ~ 12,000 at the end of January 2025 (Poisson and tenure noise).
    staff = workforce.filter(pl.col("left_on").is_null()).height
    assert staff == pytest.approx(470 * 48 * (1 - 2.718281828 ** (-37 / 48)), rel=0.06)


def test_ala01_citizens_in_top_jobs_follow_the_planted_share_and_trend(tmp_path):
    # At scale 5 there are ~14,500 highly qualified + managerial staff in mid-2025: a binomial
    # share has sd ~0.004, so 0.02 is ~5 sd. The rise over 12 months is 12 x 0.004 = 0.048.
    _clear_caches()
    shares = {}
    for export in (date(2025, 7, 1), date(2026, 7, 1)):
        frame = _day(aw, export, tmp_path, scale=5.0)
        top = frame.filter(pl.col("left_on").is_null() & pl.col("position_level").is_in(aw.TOP_LEVELS))
        shares[export] = (top["citizenship"] == "KZ").mean()
        assert shares[export] == pytest.approx(aw.citizen_share(export - timedelta(days=1)), abs=0.02)
    assert shares[date(2026, 7, 1)] - shares[date(2025, 7, 1)] == pytest.approx(12 * 0.004, abs=0.02)
    truth = aw.ground_truth()["effects"]["ala_01_citizens_in_top_jobs"]
    assert truth["share_at_anchor"] == 0.62 and truth["monthly_gain"] == 0.004
    expected = 0.62 + 0.004 * 30 / (365.25 / 12)
    assert truth["values_at_month_ends"]["2024-01-31"] == pytest.approx(expected, abs=1e-4)


def test_workforce_volume_is_linear_in_scale_and_nothing_is_written_between_reports(tmp_path):
    # ~12,000 vs ~24,000 rows: Poisson hires and exponential stays give sd ~1% each.
    small = _day(aw, date(2025, 2, 1), tmp_path / "a", scale=1.0).height
    large = _day(aw, date(2025, 2, 1), tmp_path / "b", scale=2.0).height
    assert large / small == pytest.approx(2.0, rel=0.06)
    assert aw.generate_day(DayContext(root=tmp_path, feed=aw.FEED, day=date(2025, 2, 2))) == 0
    assert not (tmp_path / "landing" / aw.FEED / "2025-02-02").exists()


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        _clear_caches()
        simulate(tmp_path / name, date(2025, 4, 30), 2, scale=0.3, seed=seed, domains=["programme"],
                 defect_rate=0.01, workers=1)  # fmt: skip
    a, b, c = (_digests(tmp_path / n) for n in "abc")
    assert len(a) == 2 * 3 + 1  # three daily snapshots a day, the workforce report on 05-01
    assert a == b
    assert set(a) == set(c) and all(a[k] != c[k] for k in a)


def test_a_day_alone_is_byte_identical_to_the_same_day_in_the_run(run, tmp_path):
    _clear_caches()
    day = date(2025, 2, 1)
    for module in (ps, ev, ap, aw):
        module.generate_day(DayContext(root=tmp_path, feed=module.FEED, day=day))
    alone = sorted((tmp_path / "landing").rglob("*.csv"))
    assert len(alone) == 4
    for path in alone:
        assert (run / path.relative_to(tmp_path)).read_bytes() == path.read_bytes()


# --- defects -----------------------------------------------------------------------------------


def test_no_defects_at_rate_zero(run):
    assert [d for d in read_defects(run) if d["feed"] in FEEDS] == []
    truth = json.loads((run / "simulator" / "ground_truth.json").read_text(encoding="utf-8"))
    assert all(truth[feed]["defects"]["count_by_kind"] == {} for feed in FEEDS)
    assert truth[ps.FEED]["scale_dependent"] is False and truth[ev.FEED]["events"] == 120


@pytest.fixture(scope="module")
def defective(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("defective")
    _clear_caches()
    simulate(root, date(2025, 5, 25), 14, scale=0.2, seed=8, domains=["programme"], defect_rate=0.15,
             workers=1)
    return root


def test_defects_are_planted_and_logged_exactly_where_they_are(defective):
    logged = [d for d in read_defects(defective) if d["feed"] in FEEDS]
    cp1251 = {d["file"] for d in logged if d["kind"] == "windows_1251"}
    kinds = Counter(d["kind"] for d in logged)
    for kind in ("windows_1251", "added_column", "renamed_column", "missing_required", "duplicate_record",
                 "invalid_iin", "impossible_value"):  # fmt: skip
        assert kinds[kind] > 0, kind
    assert {d["feed"] for d in logged if d["kind"] == "invalid_iin"} == {ap.FEED, aw.FEED}
    lines = {}
    for defect in logged:
        if defect["file"] not in lines:
            data = (defective / "landing" / defect["file"]).read_bytes()
            lines[defect["file"]] = data.decode("cp1251" if defect["file"] in cp1251 else "utf-8").split("\n")
        _check_defect(defect, lines[defect["file"]], defect["file"] in cp1251)


def test_the_windows_1251_export_folds_kazakh_letters(defective):
    for d in read_defects(defective):
        if d["kind"] != "windows_1251":
            continue
        data = (defective / "landing" / d["file"]).read_bytes()
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        text = data.decode("cp1251")
        assert "Министерство" in text and not set(text) & KAZAKH_ONLY
        assert "і" in text  # і exists in Windows-1251 and stays


def _check_defect(d: dict, lines: list[str], cp1251: bool) -> None:
    """The logged defect is in the file (its lines), at the line and column named."""
    header = next(csv.reader(io.StringIO(lines[0])))
    kind, line, column = d["kind"], d.get("line"), d.get("column")
    if kind == "windows_1251":
        assert cp1251 and line is None
        return
    if kind == "added_column":
        assert column == header[-1]
        return
    if kind == "renamed_column":
        assert column not in header and d["detail"].split("'")[1] in header
        return
    if kind == "duplicate_record":
        assert lines[line - 1] == lines[int(d["detail"].rsplit(" ", 1)[1]) - 1]
        return
    row = next(csv.reader(io.StringIO(lines[line - 1])))
    value = dict(zip(header, row, strict=True))[column]
    if kind == "missing_required":
        assert value == ""
    elif kind == "invalid_iin":
        assert len(value) == 12 and not is_valid([value])[0]
    elif kind == "impossible_value":
        assert float(value) < 0
    else:
        raise AssertionError(f"unexpected kind {kind}")
