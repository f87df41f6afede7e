"""The education simulators: the SIS roster (OneRoster 1.2 CSV), first-grade applications and the
kindergarten queue. Format against the standards, referential integrity, determinism, volumes,
the planted effects EDU-01..03 measured in the raw files, and the defects."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections import Counter
from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from qala_devkit.simulate import kindergarten_queue as kq
from qala_devkit.simulate import oneroster as ro
from qala_devkit.simulate import school_applications as sa
from qala_devkit.simulate import simulate
from qala_devkit.simulate.base import DayContext, read_defects
from qala_devkit.simulate.people import KAZAKH_SHARE, RUSSIAN_FEMALE, RUSSIAN_MALE, is_valid
from qala_devkit.simulate.world import load_regions, population_shares

# 30 March (a Sunday) to 8 April 2025: two Monday bulks (31 March, 7 April) with six deltas
# between them, the opening of first-grade applications (1 April) and ten days of queue events.
START, DAYS, SCALE, SEED = date(2025, 3, 30), 10, 0.01, 5

# The OneRoster 1.2 CSV binding, written out here independently of the simulator: the files a
# manifest lists, in order, and the columns of the files the SIS sends, in order.
MANIFEST_FILES = ["academicSessions", "categories", "classes", "classResources", "courses", "courseResources",
                  "demographics", "enrollments", "lineItemLearningObjectiveIds", "lineItems",
                  "lineItemScoreScales", "orgs", "resources", "resultLearningObjectiveIds", "results",
                  "resultScoreScales", "roles", "scoreScales", "userProfiles", "userResources",
                  "users"]  # fmt: skip
HEADERS = {
    "academicSessions": "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,"
                        "schoolYear",
    "orgs": "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId",
    "courses": "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,"
               "subjects,subjectCodes",
    "classes": "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,"
               "schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods",
    "users": "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,"
             "identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,"
             "preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns",
    "roles": "sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,"
             "userProfileSourcedId",
    "enrollments": "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,"
                   "primary,beginDate,endDate",
}  # fmt: skip
REQUIRED = {
    "academicSessions": ["sourcedId", "title", "type", "startDate", "endDate", "schoolYear"],
    "orgs": ["sourcedId", "name", "type"],
    "courses": ["sourcedId", "title", "orgSourcedId"],
    "classes": ["sourcedId", "title", "courseSourcedId", "classType", "schoolSourcedId", "termSourcedIds"],
    "users": ["sourcedId", "enabledUser", "username", "givenName", "familyName"],
    "roles": ["sourcedId", "userSourcedId", "roleType", "role", "orgSourcedId"],
    "enrollments": ["sourcedId", "classSourcedId", "schoolSourcedId", "userSourcedId", "role"],
}
ENUMS = {
    ("orgs", "type"): {"department", "school", "district", "local", "state", "national"},
    ("academicSessions", "type"): {"gradingPeriod", "semester", "schoolYear", "term"},
    ("classes", "classType"): {"homeroom", "scheduled"},
    ("roles", "roleType"): {"primary", "secondary"},
    ("roles", "role"): {"aide", "counselor", "districtAdministrator", "guardian", "parent", "principal",
                        "proctor", "relative", "siteAdministrator", "student", "systemAdministrator",
                        "teacher"},
    ("enrollments", "role"): {"administrator", "proctor", "student", "teacher"},
    ("enrollments", "primary"): {"true", "false", None},
    ("users", "enabledUser"): {"true", "false"},
}  # fmt: skip
# CEDS grade levels, the binding's grade vocabulary.
GRADES = {"IT", "PR", "PK", "TK", "KG", *(f"{g:02d}" for g in range(1, 14)), "PS", "UG", "Other"}
KAZAKH_LETTERS = set("әғқңөұүһіӘҒҚҢӨҰҮҺІ")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("education")
    _clear_caches()
    rows = simulate(root, START, DAYS, scale=SCALE, seed=SEED, defect_rate=0, domains=["education"],
                    workers=1)  # fmt: skip
    assert set(rows) == {ro.FEED, sa.FEED, kq.FEED} and all(rows.values())
    return root


def _generate(root: Path, module, first: date, days: int, scale: float) -> list[dict]:
    """`days` days of one feed from `first`, generated with the module (no process pool), at
    defect rate 0; returns the features logged."""
    logged = []
    for i in range(days):
        ctx = DayContext(root=root, feed=module.FEED, day=first + timedelta(days=i), scale=scale, seed=SEED)
        module.generate_day(ctx)
        logged += [{k: v for k, v in asdict(d).items() if v is not None} for d in ctx.defects]
    return logged


def _clear_caches() -> None:
    for cached in (ro.catalogue, ro._cohort, ro._year, sa._applications, kq._registrations):
        cached.cache_clear()


# --- reading -------------------------------------------------------------------------------------


def _zip_path(root: Path, day: date) -> Path:
    return root / "landing" / ro.FEED / day.isoformat() / f"oneroster_{day.isoformat()}.zip"


def _members(root: Path, day: date) -> dict[str, bytes]:
    with zipfile.ZipFile(_zip_path(root, day)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _manifest(members: dict[str, bytes]) -> dict[str, str]:
    return dict(pl.read_csv(members["manifest.csv"], infer_schema=False).iter_rows())


def _roster(root: Path, day: date) -> dict[str, pl.DataFrame]:
    """The day's OneRoster files, every value as text (empty -> null)."""
    return {name.removesuffix(".csv"): pl.read_csv(data, infer_schema=False)
            for name, data in _members(root, day).items() if name != "manifest.csv"}  # fmt: skip


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1251")


def _regional(root: Path, feed: str) -> pl.DataFrame:
    """Every row of a regional-file feed, with its folder day, file, encoding and line: the files'
    rows prefixed with where they come from, parsed as one CSV."""
    header, lines = None, []
    for path in sorted((root / "landing" / feed).glob("*/*.csv")):
        data = path.read_bytes()
        try:
            text, encoding = data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = data.decode("cp1251"), "cp1251"
        first, _, rest = text.partition("\n")
        assert header in (None, first), path
        header = first
        where = f"{path.parent.name},{path.name},{encoding},"
        lines += [f"{where}{number},{row}" for number, row in enumerate(rest.splitlines(), start=2)]
    text = "folder,file,encoding,line," + header + "\n" + "\n".join(lines) + "\n"
    return pl.read_csv(text.encode("utf-8"), infer_schema=False).with_columns(pl.col("line").cast(pl.Int64))


def _iin_birth(iins: pl.Series) -> pl.Series:
    """The birth date an IIN encodes: YYMMDD and the century digit (1-2: 1800s, 3-4: 1900s, 5-6: 2000s)."""
    century = 1800 + 100 * ((pl.col("iin").str.slice(6, 1).cast(pl.Int32) - 1) // 2)
    year = century + pl.col("iin").str.slice(0, 2).cast(pl.Int32)
    return pl.DataFrame({"iin": iins}).select(
        pl.date(year, pl.col("iin").str.slice(2, 2).cast(pl.Int32),
                pl.col("iin").str.slice(4, 2).cast(pl.Int32))  # fmt: skip
    ).to_series()


def _records(path: Path) -> bool:
    """Whether a landing file holds any record (beyond headers and a manifest)."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            return len(archive.namelist()) > 1
    return path.read_bytes().count(b"\n") > 1


def _age_on_1_september(born: pl.Series, year: int) -> pl.Series:
    after = (born.dt.month().cast(pl.Int32) * 100 + born.dt.day()) > 901  # birthday after 1 September
    return year - born.dt.year() - after.cast(pl.Int32)


def _digest(root: Path, feed: str, day: date) -> dict[str, str]:
    folder = root / "landing" / feed / day.isoformat()
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


# --- OneRoster: the binding ----------------------------------------------------------------------


def test_each_day_is_one_flat_zip_with_a_1_2_manifest_listing_exactly_its_files(run):
    for i in range(DAYS):
        day = START + timedelta(days=i)
        members = _members(run, day)
        names = list(members)
        assert names[0] == "manifest.csv" and all("/" not in n for n in names)
        manifest = pl.read_csv(members["manifest.csv"], infer_schema=False)
        assert manifest.columns == ["propertyName", "value"]
        keys = manifest["propertyName"].to_list()
        assert keys == ["manifest.version", "oneroster.version", *(f"file.{f}" for f in MANIFEST_FILES),
                        "source.systemName", "source.systemCode"]  # fmt: skip
        values = _manifest(members)
        assert values["manifest.version"] == "1.0" and values["oneroster.version"] == "1.2"
        mode = "bulk" if day.weekday() == 0 else "delta"
        present = [f for f in MANIFEST_FILES if values[f"file.{f}"] != "absent"]
        assert {values[f"file.{f}"] for f in present} <= {mode}
        assert names[1:] == [f"{f}.csv" for f in present]
        if mode == "bulk":
            assert set(present) == set(HEADERS)
        for name in present:
            assert members[f"{name}.csv"].decode("utf-8").split("\n", 1)[0] == HEADERS[name]
            assert b"\r" not in members[f"{name}.csv"]
    assert _members(run, date(2025, 3, 30)).keys() == {"manifest.csv"}  # Sunday: nothing changed on Saturday


def test_zip_members_have_fixed_times_so_bytes_repeat(run):
    with zipfile.ZipFile(_zip_path(run, date(2025, 3, 31))) as archive:
        assert {info.date_time for info in archive.infolist()} == {(2025, 3, 31, 2, 0, 0)}


def test_bulk_files_carry_required_fields_enumerations_and_no_status(run):
    for day in (date(2025, 3, 31), date(2025, 4, 7)):
        files = _roster(run, day)
        for name, frame in files.items():
            assert frame.columns == HEADERS[name].split(",")
            assert frame["status"].is_null().all() and frame["dateLastModified"].is_null().all()
            assert frame["sourcedId"].is_unique().all(), name
            for column in REQUIRED[name]:
                assert frame[column].is_not_null().all(), (name, column)
        for (name, column), allowed in ENUMS.items():
            assert set(files[name][column].unique()) <= allowed, (name, column)
        for name in ("users", "courses", "classes"):
            assert set(files[name]["grades"].drop_nulls().unique()) <= GRADES


def test_every_reference_in_a_bulk_resolves_within_it(run):
    files = _roster(run, date(2025, 3, 31))
    ids = {name: set(frame["sourcedId"]) for name, frame in files.items()}
    orgs = files["orgs"]

    def resolves(values: pl.Series, target: str) -> bool:
        return set(values.drop_nulls()) <= ids[target]

    assert resolves(orgs["parentSourcedId"], "orgs")
    assert resolves(files["academicSessions"]["parentSourcedId"], "academicSessions")
    assert resolves(files["courses"]["schoolYearSourcedId"], "academicSessions")
    assert resolves(files["courses"]["orgSourcedId"], "orgs")
    classes = files["classes"]
    assert resolves(classes["courseSourcedId"], "courses") and resolves(classes["schoolSourcedId"], "orgs")
    assert resolves(classes["termSourcedIds"].str.split(",").explode(), "academicSessions")
    users = files["users"]
    assert resolves(users["primaryOrgSourcedId"], "orgs")
    assert resolves(users["agentSourcedIds"].str.split(",").explode(), "users")
    assert resolves(files["roles"]["userSourcedId"], "users")
    assert resolves(files["roles"]["orgSourcedId"], "orgs")
    enrollments = files["enrollments"]
    for column, target in (("classSourcedId", "classes"), ("schoolSourcedId", "orgs"),
                           ("userSourcedId", "users")):  # fmt: skip
        assert resolves(enrollments[column], target)
    # Schools hang under district departments, those under regional administrations, those under the ministry.
    kind = dict(zip(orgs["sourcedId"], orgs["type"], strict=True))
    parents = {kind[p] for t, p in zip(orgs["type"], orgs["parentSourcedId"], strict=True) if t == "school"}
    assert parents == {"district"}
    assert set(orgs.filter(pl.col("type") == "school")["sourcedId"]) == set(users["primaryOrgSourcedId"])


def test_people_roles_and_enrollments_fit_together(run):
    files = _roster(run, date(2025, 3, 31))
    users, roles, enrollments = files["users"], files["roles"], files["enrollments"]
    role = dict(zip(roles["userSourcedId"], roles["role"], strict=True))
    assert set(role) == set(users["sourcedId"]) and roles["userSourcedId"].is_unique().all()
    pupils = users.filter(pl.col("sourcedId").map_elements(role.get, return_dtype=pl.String) == "student")
    guardians = users.filter(pl.col("sourcedId").map_elements(role.get, return_dtype=pl.String) == "parent")
    # One guardian per pupil, linked both ways, at the same school.
    agent = dict(zip(guardians["sourcedId"], guardians["agentSourcedIds"], strict=True))
    assert pupils.height == guardians.height
    assert all(agent[g] == p for p, g in zip(pupils["sourcedId"], pupils["agentSourcedIds"], strict=True))
    assert pupils["grades"].is_not_null().all() and guardians["phone"].is_not_null().all()
    # Each pupil is in exactly one homeroom class, each class has one primary (homeroom) teacher.
    students = enrollments.filter(pl.col("role") == "student")
    assert students["userSourcedId"].sort().to_list() == pupils["sourcedId"].sort().to_list()
    teachers = enrollments.filter(pl.col("role") == "teacher")
    assert (teachers["primary"] == "true").all()
    assert sorted(teachers["classSourcedId"]) == sorted(files["classes"]["sourcedId"])
    assert students.group_by("classSourcedId").len()["len"].max() <= ro.CLASS_SIZE
    # A pupil's class is of the pupil's grade.
    grade_of_class = dict(zip(files["classes"]["sourcedId"], files["classes"]["grades"], strict=True))
    grade_of_pupil = dict(zip(pupils["sourcedId"], pupils["grades"], strict=True))
    pairs = zip(students["classSourcedId"], students["userSourcedId"], strict=True)
    assert all(grade_of_class[c] == grade_of_pupil[u] for c, u in pairs)


def test_identifiers_are_valid_iins_and_pupils_are_the_age_of_their_grade(run):
    files = _roster(run, date(2025, 3, 31))
    users = files["users"]
    assert is_valid(users["identifier"].to_numpy()).all()
    pupils = users.filter(pl.col("grades").is_not_null())
    born = _iin_birth(pupils["identifier"])
    grade = pupils["grades"].replace("KG", "00").cast(pl.Int32)
    age = _age_on_1_september(born, 2024)
    offset = age - grade
    assert set(offset.unique()) <= {5, 6}  # 6 or 7 when starting grade 1
    assert (offset == 6).mean() == pytest.approx(ro.OLDER_SHARE, abs=0.02)  # ~40,000 pupils
    names = pl.concat([users["givenName"], users["familyName"], users["middleName"]]).str.join("")[0]
    assert set(names) & KAZAKH_LETTERS
    russian = users["givenName"].is_in(RUSSIAN_MALE + RUSSIAN_FEMALE).mean()
    assert russian == pytest.approx(1 - KAZAKH_SHARE, abs=0.03)
    sessions = files["academicSessions"]
    assert sessions.filter(pl.col("type") == "schoolYear").row(0, named=True) | {"title": None} == {
        "sourcedId": "AS-2024", "status": None, "dateLastModified": None, "title": None, "type": "schoolYear",
        "startDate": "2024-09-01", "endDate": "2025-05-25", "parentSourcedId": None, "schoolYear": "2025"}
    assert (sessions.filter(pl.col("type") == "term")["startDate"] >= "2024-09-01").all()
    assert (sessions.filter(pl.col("type") == "term")["endDate"] <= "2025-05-25").all()


def test_roster_size_is_national_times_scale_and_follows_population(run):
    files = _roster(run, date(2025, 3, 31))
    users, orgs = files["users"], files["orgs"]
    pupils = users.filter(pl.col("grades").is_not_null() & (pl.col("grades") != "KG"))
    # ~3.9M pupils in grades 1-11 at scale 1; Poisson noise at 39,000 is ~0.5%.
    assert pupils.height == pytest.approx(3_890_000 * SCALE, rel=0.05)
    schools = orgs.filter(pl.col("type") == "school")
    assert schools.height == pytest.approx(ro.SCHOOLS_AT_SCALE_1 * SCALE, rel=0.05)
    teachers = users.filter(pl.col("sourcedId").str.starts_with("TCH-")).height
    assert pupils.height / teachers == pytest.approx(ro.PUPILS_PER_TEACHER, rel=0.15)
    # Pupils by region: school -> district department -> region (KATO prefix of the district).
    parent = dict(zip(orgs["sourcedId"], orgs["parentSourcedId"], strict=True))
    region = pupils["primaryOrgSourcedId"].map_elements(lambda s: parent[s][4:6], return_dtype=pl.String)
    share = region.value_counts(normalize=True)
    observed = dict(zip(share[region.name], share["proportion"], strict=True))
    for r, expected in zip(load_regions(), population_shares(), strict=True):
        # ~39,000 pupils but clustered in ~80 schools: allow a share point.
        assert observed.get(r.kato_prefix, 0.0) == pytest.approx(expected, abs=0.01), r.name_en


def test_deltas_carry_status_and_times_and_replay_into_the_next_bulk(run):
    before, after = _roster(run, date(2025, 3, 31)), _roster(run, date(2025, 4, 7))
    deltas = []
    for i in range(1, 7):
        day = date(2025, 3, 31) + timedelta(days=i)
        files = _roster(run, day)
        for frame in files.values():
            assert set(frame["status"]) <= {"active", "tobedeleted"}
            stamps = frame["dateLastModified"]
            assert stamps.str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$").all()
            yesterday = (day - timedelta(days=1)).isoformat()
            assert (stamps.str.slice(0, 10) == yesterday).all()  # the edits of the day before
        deltas.append(files)
    for name in ("users", "roles", "enrollments"):
        changes = pl.concat([files[name] for files in deltas if name in files])
        added = changes.filter(pl.col("status") == "active").with_columns(status=None, dateLastModified=None)
        removed = changes.filter(pl.col("status") == "tobedeleted")["sourcedId"]
        assert added.height and removed.len(), name
        assert not added["sourcedId"].is_in(before[name]["sourcedId"].implode()).any()
        assert removed.is_in(pl.concat([before[name]["sourcedId"], added["sourcedId"]]).implode()).all()
        replayed = pl.concat([before[name], added]).filter(~pl.col("sourcedId").is_in(removed.implode()))
        assert replayed.sort("sourcedId").equals(after[name].sort("sourcedId")), name


def test_delta_references_resolve_in_the_last_bulk_or_the_delta(run):
    bulk = _roster(run, date(2025, 3, 31))
    known = {name: set(frame["sourcedId"]) for name, frame in bulk.items()}
    days = [_roster(run, date(2025, 4, d)) for d in range(1, 7)]
    delta = {name: pl.concat([files[name] for files in days if name in files])
             for name in ("users", "roles", "enrollments")}  # fmt: skip
    users = set(delta["users"]["sourcedId"]) | known["users"]
    assert set(delta["enrollments"]["classSourcedId"]) <= known["classes"]
    assert set(delta["enrollments"]["userSourcedId"]) | set(delta["roles"]["userSourcedId"]) <= users
    assert set(delta["users"]["primaryOrgSourcedId"]) | set(delta["roles"]["orgSourcedId"]) <= known["orgs"]


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes_and_a_day_alone_matches_the_run(run, tmp_path):
    # 7 April (a Monday bulk) is the first day of a fresh run with cold caches: a day alone; it and
    # 8 April must be the bytes of the 10-day run.
    days = [date(2025, 4, 7), date(2025, 4, 8)]
    _clear_caches()
    simulate(tmp_path / "same", days[0], 2, scale=SCALE, seed=SEED, defect_rate=0, domains=["education"],
             workers=1)  # fmt: skip
    _clear_caches()
    simulate(tmp_path / "other", days[0], 1, scale=SCALE, seed=SEED + 1, defect_rate=0, domains=["education"],
             workers=1)  # fmt: skip
    for feed in (ro.FEED, sa.FEED, kq.FEED):
        for day in days:
            assert _digest(tmp_path / "same", feed, day) == _digest(run, feed, day), (feed, day)
        ours, other = _digest(run, feed, days[0]), _digest(tmp_path / "other", feed, days[0])
        assert other.keys() == ours.keys()
        # Every file with records differs (a header alone, or a manifest alone, cannot).
        folder = run / "landing" / feed / days[0].isoformat()
        with_records = [k for k in ours if _records(folder / k)]
        assert with_records and all(other[k] != ours[k] for k in with_records), feed


def test_volumes_grow_linearly_with_scale(run):
    # The roster: Monday bulk users at half the scale (~41,000 vs ~82,000: Poisson noise < 1%).
    half = ro._bulk(SEED, date(2025, 3, 31), SCALE / 2, ro.Params())["users"]
    full = _roster(run, date(2025, 3, 31))["users"]
    assert half.height / full.height == pytest.approx(0.5, rel=0.03)
    # Applications: the expected daily mean is proportional to scale (counts are Poisson).
    day = date(2025, 4, 2)
    ratio = sum(sa.expected(day, 0.3).values()).sum() / sum(sa.expected(day, 0.1).values()).sum()
    assert ratio == pytest.approx(3.0)
    # The queue: ~900 x 0.886 (weekday mix) registrations a day at scale 1, here 10 days at 0.01
    # (~80 expected, Poisson sd ~9).
    queue = _regional(run, kq.FEED)
    registered = queue.filter(pl.col("event_type") == "registered").height
    expected = kq.REGISTRATIONS_AT_SCALE_1 * np.mean(kq.WEEKDAY_FACTORS) * SCALE * DAYS
    assert registered == pytest.approx(expected, abs=40)


# --- first-grade applications --------------------------------------------------------------------


SEASON_SCALE = 0.03


@pytest.fixture(scope="module")
def season(tmp_path_factory) -> tuple[pl.DataFrame, list[dict]]:
    """A whole application season (31 March - 25 September 2025) at scale 0.03: ~12,000
    applications. Generated day by day with the module (no process pool: one feed)."""
    root = tmp_path_factory.mktemp("season")
    first = date(2025, 3, 31)
    logged = _generate(root, sa, first, (date(2025, 9, 25) - first).days + 1, SEASON_SCALE)
    frame = _regional(root, sa.FEED)
    assert frame.columns[4:] == list(sa.COLUMNS)
    return frame.with_columns(
        submitted=pl.col("submitted_at").str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S", strict=True),
        region=pl.col("kato_code").str.slice(0, 2),
    ), logged


def test_applications_are_valid_children_of_6_or_7_in_their_regions_schools(season):
    season, _ = season
    submitted = season.filter(pl.col("status") == "submitted")
    assert submitted["application_id"].is_unique().all()
    assert set(season["channel"]) == {"egov", "in_person"}
    assert set(season["status"]) == {"submitted", "accepted", "rejected", "withdrawn"}
    assert is_valid(submitted["child_iin"].to_numpy()).all()
    assert is_valid(submitted["parent_iin"].to_numpy()).all()
    assert (_iin_birth(submitted["child_iin"]).cast(pl.String) == submitted["child_birth_date"]).all()
    born = submitted["child_birth_date"].str.to_date()
    age = _age_on_1_september(born, 2025)
    assert set(age.unique()) == {6, 7}
    assert (age == 7).mean() == pytest.approx(0.15, abs=0.02)  # sd 0.003 at 12,000
    schools = ro.schools(SEED, SEASON_SCALE)
    region_of = dict(zip(schools["sourced_id"], schools["prefix"], strict=True))
    district_of = dict(zip(schools["sourced_id"], schools["kato_code"], strict=True))
    assert all(region_of[s] == k[:2] and district_of[s] == k
               for s, k in zip(submitted["school_id"], submitted["kato_code"], strict=True))  # fmt: skip
    assert (submitted["file"].str.slice(13, 2) == submitted["region"]).all()
    assert submitted["parent_phone"].str.contains(r"^\+7 7\d\d \d{3} \d\d \d\d$").all()


def test_applications_come_in_the_season_with_an_opening_rush(season):
    season, _ = season
    submitted = season.filter(pl.col("status") == "submitted")
    on = submitted["submitted"].dt.date()
    assert on.min() == date(2025, 4, 1) and on.max() <= date(2025, 8, 31)
    assert season.filter(pl.col("folder") == "2025-03-31").is_empty()
    first_three = (on <= date(2025, 4, 3)).mean()
    assert 0.22 < first_three < 0.40  # ~30% in the first three days
    assert (submitted["submitted"].dt.hour() == 0).sum() > (submitted["submitted"].dt.hour() == 4).sum() * 5
    office = submitted.filter(pl.col("channel") == "in_person")["submitted"]
    assert office.dt.weekday().max() <= 6 and office.dt.hour().is_between(9, 17).all()  # Mon-Sat, 9-18
    # Decisions: once per application, after it arrived, never later than the late days + 21.
    decisions = season.filter(pl.col("status") != "submitted")
    assert decisions["application_id"].is_unique().all()
    arrival = dict(zip(submitted["application_id"], submitted["folder"], strict=True))
    assert all(arrival[a] < f for a, f in zip(decisions["application_id"], decisions["folder"], strict=True))
    assert decisions["folder"].max() <= "2025-09-24"
    outcome = decisions["status"].value_counts(normalize=True)
    accepted = dict(zip(outcome["status"], outcome["proportion"], strict=True))["accepted"]
    assert accepted == pytest.approx(0.88, abs=0.02)


def test_edu01_ninety_percent_online_nationally_varying_by_region(season):
    season, _ = season
    submitted = season.filter(pl.col("status") == "submitted")
    online = (submitted["channel"] == "egov").cast(pl.Float64)
    # National: ~12,000 applications, sd sqrt(0.09 / 12,000) = 0.0027; 0.012 is > 4 sd.
    assert online.mean() == pytest.approx(sa.EGOV_SHARE, abs=0.012)
    stated = sa.egov_shares()
    assert float(np.dot(population_shares(), list(stated.values()))) == pytest.approx(0.90, abs=1e-12)
    by_region = submitted.group_by("region").agg(share=(pl.col("channel") == "egov").mean(), n=pl.len())
    for region, share, n in by_region.iter_rows():
        p = stated[region]
        assert share == pytest.approx(p, abs=4.5 * (p * (1 - p) / n) ** 0.5 + 0.005), region
    shares = dict(zip(by_region["region"], by_region["share"], strict=True))
    assert shares["75"] - shares["61"] > 0.06  # Almaty city 0.96 vs Turkistan 0.84: 0.12 apart


def test_late_applications_are_logged_and_nothing_else_at_rate_zero(season):
    season, defects = season
    assert {d["kind"] for d in defects} == {"late_record"}
    late = {(d["file"].split("/")[-1], d["line"]) for d in defects}
    rows = season.filter((pl.col("status") == "submitted")
                         & (pl.col("submitted_at").str.slice(0, 10) < pl.col("folder")))  # fmt: skip
    assert late == set(zip(rows["file"], rows["line"], strict=True))
    share = rows.height / season.filter(pl.col("status") == "submitted").height
    assert share == pytest.approx(sa.LATE_SHARE, abs=0.006)  # sd 0.0011 at 12,000


# --- the kindergarten queue ----------------------------------------------------------------------

# The children registered in the first COHORT_DAYS days of the run: every later event of theirs
# (at most 240 days to a referral, 11 to enrolment, 5 late) is inside the run.
QUEUE_SCALE, QUEUE_START, COHORT_DAYS = 0.2, date(2024, 3, 1), 45
QUEUE_DAYS = COHORT_DAYS + kq.LOOKBACK


@pytest.fixture(scope="module")
def queue(tmp_path_factory) -> tuple[pl.DataFrame, list[dict]]:
    root = tmp_path_factory.mktemp("queue")
    logged = _generate(root, kq, QUEUE_START, QUEUE_DAYS, QUEUE_SCALE)
    frame = _regional(root, kq.FEED).with_columns(
        at=pl.col("event_at").str.strptime(pl.Datetime, "%Y-%m-%d %H:%M:%S", strict=True),
        born=pl.col("child_birth_date").str.to_date(strict=True),
        child=pl.col("event_id").str.slice(0, 20),
    )
    return frame, logged


def _cohort(events: pl.DataFrame) -> pl.DataFrame:
    """The registrations of the first COHORT_DAYS days."""
    return events.filter((pl.col("event_type") == "registered")
                         & (pl.col("at").dt.date() < QUEUE_START + timedelta(days=COHORT_DAYS)))  # fmt: skip


def test_queue_events_follow_the_contract(queue):
    events, _ = queue
    assert events.columns[4:14] == list(kq.COLUMNS)
    assert set(events["event_type"]) == set(kq.EVENT_TYPES)
    assert set(events["priority_category"]) == set(kq.PRIORITIES)
    assert events["event_id"].is_unique().all()
    assert is_valid(events["child_iin"].to_numpy()).all()
    assert (_iin_birth(events["child_iin"]) == events["born"]).all()
    assert set(events["kato_code"].str.slice(0, 2)) == {r.kato_prefix for r in load_regions()}
    registered = pl.col("event_type") == "registered"
    assert events.filter(registered)["queue_number"].is_not_null().all()
    assert events.filter(~registered)["queue_number"].is_null().all()
    placed = pl.col("event_type").is_in(["referred", "enrolled"])
    assert events.filter(placed)["kindergarten_id"].is_not_null().all()
    assert events.filter(registered)["kindergarten_id"].is_null().all()
    assert (events["file"].str.slice(13, 2) == events["kato_code"].str.slice(0, 2)).all()


def test_a_childs_events_are_in_order_and_ages_possible(queue):
    events, _ = queue
    age = (pl.col("at").dt.date() - pl.col("born")).dt.total_days()
    assert events.select(age.min()).item() >= 0
    assert events.select(age.max()).item() <= 7 * 365
    assert events.filter(pl.col("event_type") == "registered").select(age.max()).item() <= 5 * 365
    stages = events.pivot("event_type", index="child", values="at", aggregate_function="first")
    referred = stages.filter(pl.col("referred").is_not_null())
    assert (referred["registered"].is_null() | (referred["registered"] < referred["referred"])).all()
    enrolled = stages.filter(pl.col("enrolled").is_not_null())
    assert (enrolled["referred"] < enrolled["enrolled"]).all()
    assert (enrolled["enrolled"].dt.weekday() != 7).all()  # never on a Sunday
    assert stages.filter(pl.col("enrolled").is_not_null() & pl.col("withdrawn").is_not_null()).is_empty()


def test_edu02_median_wait_by_region(queue):
    events, _ = queue
    cohort = _cohort(events).select("child", "kato_code", "priority_category", registered="at")
    referred = events.filter(pl.col("event_type") == "referred").select("child", referred="at")
    waits = cohort.join(referred, on="child").with_columns(
        wait=(pl.col("referred").dt.date() - pl.col("registered").dt.date()).dt.total_days(),
        region=pl.col("kato_code").str.slice(0, 2))
    none = waits.filter(pl.col("priority_category") == "none")
    medians = dict(kq.MEDIAN_WAIT_DAYS)
    observed = none.group_by("region").agg(median=pl.col("wait").median(), n=pl.len())
    checked = 0
    for region, median, n in observed.iter_rows():
        # A sample median's sd is 1 / (2 f(m) sqrt(n)); for a lognormal, f(m) = 1 / (m sigma sqrt(2 pi)),
        # so sd = 0.564 m / sqrt(n) at sigma 0.45 (~0.046 m at the smallest n checked, 150; cutting
        # the tails at 2 sigma only makes it smaller): 4.5 sd, plus a day for rounding to whole days.
        if n >= 150:
            tolerance = 4.5 * 0.564 * medians[region] / n**0.5 + 1
            assert median == pytest.approx(medians[region], abs=tolerance), region
            checked += 1
    assert checked >= 12
    by = dict(zip(observed["region"], observed["median"], strict=True))
    assert by["75"] > 2.5 * by["59"]  # Almaty city 95 days, North Kazakhstan 25
    # Priority categories wait half as long (~750 children).
    priority = waits.filter(pl.col("priority_category") != "none")
    ratio = (priority["wait"] / priority["region"].replace_strict(medians, return_dtype=pl.Float64)).median()
    assert ratio == pytest.approx(kq.PRIORITY_WAIT_FACTOR, abs=0.06)


def test_edu03_eighty_percent_of_registered_children_are_placed(queue):
    events, _ = queue
    cohort = _cohort(events)["child"]
    outcome = events.filter(pl.col("child").is_in(cohort.implode()))
    # ~7,000 children: sd sqrt(0.16 / 7,000) = 0.005.
    placed = outcome.filter(pl.col("event_type") == "enrolled")["child"].n_unique() / cohort.len()
    assert placed == pytest.approx(kq.PLACED_SHARE, abs=0.025)
    withdrawn = outcome.filter(pl.col("event_type") == "withdrawn")["child"].n_unique() / cohort.len()
    assert withdrawn == pytest.approx(1 - kq.PLACED_SHARE, abs=0.025)
    referred = outcome.filter(pl.col("event_type") == "referred")["child"].n_unique() / cohort.len()
    assert referred == pytest.approx(kq.PLACED_SHARE + kq.DECLINED_SHARE, abs=0.025)


def test_old_registers_write_windows_1251_and_late_events_are_logged(queue):
    events, defects = queue
    old_register = pl.col("file").str.slice(13, 2).is_in(list(kq.LEGACY_REGIONS))
    legacy = events.filter(old_register)
    assert set(legacy["encoding"]) == {"cp1251"}
    assert set(events.filter(~old_register)["encoding"]) == {"utf-8"}
    assert not set("".join(legacy["child_name"].to_list())) & set("әғқңөұүһӘҒҚҢӨҰҮҺ")
    kinds = Counter(d["kind"] for d in defects)
    assert set(kinds) == {"late_record", "windows_1251"}
    logged = {(d["file"].split("/")[-1], d["line"]) for d in defects if d["kind"] == "late_record"}
    late = events.filter(pl.col("event_at").str.slice(0, 10) < pl.col("folder"))
    assert logged == set(zip(late["file"], late["line"], strict=True))
    assert late.height / events.height == pytest.approx(kq.LATE_SHARE, abs=0.004)  # sd 0.0004


# --- defects -------------------------------------------------------------------------------------


def test_defects_are_planted_at_a_positive_rate_and_only_features_at_zero(run, tmp_path):
    zero = {d["kind"] for d in read_defects(run)}
    assert zero <= {"late_record", "windows_1251"}
    _clear_caches()
    # 31 March (a bulk) to 2 April; each file-level kind has a 15-30% chance a file or day, so the
    # seed is one whose three days hold every kind (the run is deterministic).
    simulate(tmp_path, date(2025, 3, 31), 3, scale=0.005, seed=8, defect_rate=0.3, domains=["education"],
             workers=1)  # fmt: skip
    by_feed: dict[str, set] = {}
    for d in read_defects(tmp_path):
        by_feed.setdefault(d["feed"], set()).add(d["kind"])
        if d["kind"] == "invalid_iin":
            member = d.get("member")
            data = (tmp_path / "landing" / d["file"]).read_bytes()
            if member:
                data = zipfile.ZipFile(io.BytesIO(data)).read(member)
            row = _decode(data).split("\n")[d["line"] - 1]
            assert re.search(r"\b\d{12}\b", row) and not all(is_valid(re.findall(r"\b\d{12}\b", row)))
    for feed, module in ((ro.FEED, ro), (sa.FEED, sa), (kq.FEED, kq)):
        truth = module.ground_truth()
        assert set(truth["defect_kinds"]) <= by_feed[feed], feed
        assert by_feed[feed] <= set(truth["defect_kinds"]) | set(truth.get("realistic_features", [])) | {
            "renamed_column", "added_column"}, feed
