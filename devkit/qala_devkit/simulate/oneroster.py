"""The national school information system's roster: a 1EdTech OneRoster v1.2 CSV export per day.

Source system: the school information system (SIS) every general-education school in Kazakhstan
keeps its pupils, staff and classes in. It publishes the roster in the OneRoster 1.2 CSV binding,
as SIS exports for learning tools do (Clever, ClassLink, Apple School Manager, Microsoft SDS all
take this shape).

File layout: `landing/education/oneroster/<YYYY-MM-DD>/oneroster_<YYYY-MM-DD>.zip`, one zip per
day, its members flat (no folders): `manifest.csv` first, then the data files in manifest order.
A zip because the binding defines the set of CSV files as exchanged in one zip with its manifest,
and real SIS deliveries (SFTP drops to Clever, ClassLink, Apple School Manager) are such zips: the
manifest and its files travel and are validated together. Members are UTF-8 (the binding's
encoding), LF line ends, one header line; a zip member's time is the export time (02:00 local).

`manifest.csv` (`propertyName,value`): `manifest.version` 1.0, `oneroster.version` 1.2,
`file.<name>` = bulk | delta | absent for each of the 21 files of the 1.2 binding, then
`source.systemName` and `source.systemCode`. Files marked absent are not in the zip.

Delivery pattern. The export runs at 02:00 and reflects every change registered until the end of
the previous day:
- bulk on Mondays and on 1 September (the new school year's roster, prepared in August):
  orgs, academicSessions, courses, classes, users, roles and enrollments in full, `status` and
  `dateLastModified` blank (bulk mode: the file replaces what the receiver holds);
- delta on every other day: only the records changed the day before, `status` = active (new) or
  tobedeleted (gone), `dateLastModified` = the change's UTC time (`2025-03-04T06:12:09.000Z`);
  files without changes are `absent` (a Sunday's delta is a manifest alone).
School registrars work Monday to Friday and a pupil who joins or leaves does so on a school day
(1 September to 25 May), so each Monday's bulk is exactly the previous Monday's bulk with the
Tuesday-to-Sunday deltas applied. A day's export depends only on (seed, day, scale, params).

Files and columns (1EdTech OneRoster v1.2 CSV binding, columns in the binding's order):
- orgs.csv: the ministry (`national`), 20 regional education administrations (`state`), the
  district education departments (`district`, `identifier` = the district's KATO code) and the
  schools (`school`, `identifier` = the school's BIN, `parentSourcedId` = its district).
- academicSessions.csv: the school year (1 September - 25 May, `schoolYear` = the year it ends)
  and its four terms (четверти), the calendar pattern of 2024-25 reused every year.
- courses.csv: one course per school, grade and year (`schoolYearSourcedId` = the year).
- classes.csv: homeroom classes (5 «А» = `5А`, `classType` homeroom), at most 25 pupils each,
  `termSourcedIds` the year's four terms.
- users.csv: pupils, their guardians (one per pupil) and teachers; `identifier` = the IIN (PII:
  the pipeline must hash it); names in Kazakh and Russian Cyrillic (`middleName` = patronymic);
  a pupil's `agentSourcedIds` is its guardian and a guardian's its pupil; `grades` uses the
  binding's CEDS grade codes: grades 1-11 are `01`..`11`, the school pre-school class (0-сынып,
  the year before grade 1, US kindergarten's place) is `KG`.
- roles.csv (new in 1.2: role and org moved out of users.csv): one primary role per user at its
  school: student, parent or teacher.
- enrollments.csv: each pupil in its homeroom class, each class's homeroom teacher
  (`primary` true).
The users.csv header is the 22 columns of the 1.2 binding as ManageBac's and the meibo library's
1.2 readers define it (`sourcedId` ... `pronouns`); some exporters add `resourceSourcedIds` after
`userMasterIdentifier`, which the binding expresses as userResources.csv instead.

People across days and years: the pupils entering grade 1 on 1 September of year E (a cohort)
are drawn once from the cohort's own stream, with their school, the day they joined and the day
they leave: base members join on 1 September E (35% a year earlier, in the school's 0-class);
6% of a cohort join mid-career (transfers from abroad or other systems) on a school day; 6% leave
mid-career on a school day; 31% leave after grade 9 (to colleges); the rest graduate after grade
11. A pupil keeps its sourcedId for its whole career and moves up a grade every 1 September; its
homeroom class is re-formed each year. Teachers (one per 10.5 pupils, at least two per school)
stay at their school (no turnover is simulated).

Volumes at scale 1.0: ~3.9 million pupils in grades 1-11 (375,000 per cohort; grades 10-11
lose the 31% who leave after grade 9), plus ~130,000 in 0-classes; ~8,000 schools (Kazakhstan
has about 7,500 state and 500 private general-education schools), ~375,000 teachers, one
guardian per pupil. A bulk holds ~8.5M users, as many roles, ~4.2M enrollments and ~170,000
classes (~21M rows); a school-day delta a few thousand rows. Pupils split over regions in
proportion to population and over a region's schools by a lognormal school size (large urban
schools, small rural ones); schools per region follow population too, at least one per region
(so every region is served at tiny scales). Everything scales linearly with scale except that
floor, the 20 regional administrations and the ~200 district departments (fixed catalogue).

Defects at the run's defect rate (row defects 1,000 times rarer per row in a bulk, the whole
re-validated register, than in a delta), each logged with the zip, its member and the line: an IIN with
a wrong check digit (`invalid_iin`, users.csv `identifier`), an empty `familyName` or `sourcedId`
(`missing_required`), users and enrollments sent twice (`duplicate_record`), users.csv with an
extra `birthDate` column (`added_column`) or `familyName` sent as `lastName` (`renamed_column`).
No member is cut off mid-row: a member of a zip cannot be cut unnoticed (the zip's CRC would
fail the whole zip), so its last record is complete whatever its line break.

Everything per record is vectorised (numpy draws -> polars frames -> CSV -> zip).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from transforms.settings import LOCAL_TZ
from qala_devkit.simulate.base import DayContext, RowDefects, write_atomic
from qala_devkit.simulate.people import KAZAKH_SURNAMES, bin_, people
from qala_devkit.simulate.world import load_regions, population_shares, rng_for

FEED = "education/oneroster"
DOMAIN, NAME = FEED.split("/")

# The 21 files of the OneRoster 1.2 CSV binding, in manifest order.
MANIFEST_FILES = ("academicSessions", "categories", "classes", "classResources", "courses",
                  "courseResources", "demographics", "enrollments", "lineItemLearningObjectiveIds",
                  "lineItems", "lineItemScoreScales", "orgs", "resources", "resultLearningObjectiveIds",
                  "results", "resultScoreScales", "roles", "scoreScales", "userProfiles",
                  "userResources", "users")  # fmt: skip
COLUMNS = {
    "academicSessions": ("sourcedId", "status", "dateLastModified", "title", "type", "startDate", "endDate",
                         "parentSourcedId", "schoolYear"),
    "classes": ("sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId", "classCode",
                "classType", "location", "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes",
                "periods"),
    "courses": ("sourcedId", "status", "dateLastModified", "schoolYearSourcedId", "title", "courseCode",
                "grades", "orgSourcedId", "subjects", "subjectCodes"),
    "enrollments": ("sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId",
                    "userSourcedId", "role", "primary", "beginDate", "endDate"),
    "orgs": ("sourcedId", "status", "dateLastModified", "name", "type", "identifier", "parentSourcedId"),
    "roles": ("sourcedId", "status", "dateLastModified", "userSourcedId", "roleType", "role", "beginDate",
              "endDate", "orgSourcedId", "userProfileSourcedId"),
    "users": ("sourcedId", "status", "dateLastModified", "enabledUser", "username", "userIds", "givenName",
              "familyName", "middleName", "identifier", "email", "sms", "phone", "agentSourcedIds", "grades",
              "password", "userMasterIdentifier", "preferredGivenName", "preferredMiddleName",
              "preferredFamilyName", "primaryOrgSourcedId", "pronouns"),
}  # fmt: skip
SOURCE_SYSTEM = ("Qala simulated school information system", "KZ-SIS")

SCHOOLS_AT_SCALE_1 = 8_000
COHORT_AT_SCALE_1 = 375_000  # pupils entering grade 1 each year (base members)
ENTRANT_SHARE = 0.06  # of a cohort, joining mid-career
EXIT_SHARE = 0.06  # of a cohort, leaving mid-career
LEAVE_AFTER_9 = 0.31  # leave after grade 9 for colleges
KG_SHARE = 0.35  # spend the year before grade 1 in the school's 0-class
OLDER_SHARE = 0.15  # start grade 1 at 7 rather than 6
PUPILS_PER_TEACHER = 10.5
CLASS_SIZE = 25  # the norm's maximum homeroom size
SCHOOL_SIZE_SIGMA = 0.8  # lognormal school size; capped at SCHOOL_SIZE_CAP x the median
SCHOOL_SIZE_CAP = 8.0

# The school year and its four terms (month, day): the 2024-25 calendar pattern.
YEAR_START, YEAR_END = (9, 1), (5, 25)
TERMS = (((9, 1), (10, 26)), ((11, 4), (12, 28)), ((1, 8), (3, 19)), ((3, 30), (5, 25)))
SCHOOL_DAYS_SPAN = 267  # 1 September .. 25 May: the days a registrar can act on
EXPORT_HOUR = 2
# A bulk is the whole, re-validated register: a row in it is this much less likely to be broken
# than a row of a delta (an edit made that day). Still ~50 broken rows in a national bulk at the
# default defect rate.
BULK_ROW_DEFECTS = 0.001
BULK_WEEKDAY = 0  # Monday
REFERENCE_DAY = date(2000, 1, 1)  # the stream day of the fixed catalogue

CLASS_LETTERS = "АӘБВГДЕЖЗИКЛМНОПРСТУФХЦЧ"
SCHOOL_NAMES = (("КГУ «Общеобразовательная школа № ", "»"), ("«№ ", " жалпы білім беретін мектеп» КММ"),
                ("КГУ «Школа-гимназия № ", "»"), ("«№ ", " мектеп-лицей» КММ"),
                ("КГУ «Основная средняя школа № ", "»"), ("«№ ", " орта мектебі» КММ"))  # fmt: skip
MINISTRY = "Қазақстан Республикасы Оқу-ағарту министрлігі"


@dataclass(frozen=True)
class Params:
    """The roster's size and flows, overridable (e.g. by a test) without editing the module."""

    cohort_size: int = COHORT_AT_SCALE_1
    schools: int = SCHOOLS_AT_SCALE_1
    entrant_share: float = ENTRANT_SHARE
    exit_share: float = EXIT_SHARE
    leave_after_9: float = LEAVE_AFTER_9
    kg_share: float = KG_SHARE


def generate_day(ctx: DayContext) -> int:
    """Write the day's OneRoster zip (bulk on Mondays and 1 September, else delta); return rows."""
    params = ctx.params or Params()
    if is_bulk_day(ctx.day):
        files, mode = _bulk(ctx.seed, ctx.day, ctx.scale, params), "bulk"
    else:
        files, mode = _delta(ctx.seed, ctx.day, ctx.scale, params, ctx.rng("modified")), "delta"
    path = ctx.folder() / f"{NAME}_{ctx.day.isoformat()}.zip"
    rarity = BULK_ROW_DEFECTS if mode == "bulk" else 1.0
    members = {name: _member_bytes(ctx, path, name, frame, rarity) for name, frame in files.items()}
    manifest = [("manifest.version", "1.0"), ("oneroster.version", "1.2")]
    manifest += [(f"file.{name}", mode if name in files else "absent") for name in MANIFEST_FILES]
    manifest += [("source.systemName", SOURCE_SYSTEM[0]), ("source.systemCode", SOURCE_SYSTEM[1])]
    manifest_csv = pl.DataFrame(manifest, schema=["propertyName", "value"], orient="row").write_csv()
    entries = [("manifest.csv", manifest_csv.encode("utf-8"))]
    entries += [(f"{name}.csv", members[name]) for name in MANIFEST_FILES if name in members]
    write_atomic(path, _zip(entries, ctx.day))
    return sum(frame.height for frame in files.values())


def is_bulk_day(day: date) -> bool:
    return day.weekday() == BULK_WEEKDAY or (day.month, day.day) == YEAR_START


def school_year(day: date) -> int:
    """The calendar year a day's school year starts in (1 September)."""
    return day.year if (day.month, day.day) >= YEAR_START else day.year - 1


def ground_truth(params: Params = Params()) -> dict:
    """Every parameter of the simulated roster, for checking what the pipeline recovers."""
    after_9 = 1 - params.leave_after_9
    return {
        "format": "1EdTech OneRoster v1.2 CSV binding, one zip per day (manifest.csv + data files)",
        "delivery": {
            "bulk": "Mondays and 1 September: orgs, academicSessions, courses, classes, users, roles, "
                    "enrollments in full, status and dateLastModified blank",
            "delta": "other days: records changed the previous day, status active|tobedeleted, "
                     "dateLastModified in UTC; files without changes absent",
            "export_time_local": f"{EXPORT_HOUR:02d}:00",
            "monday_bulk_equals_previous_bulk_plus_deltas": True,
        },
        "volumes_at_scale_1": {
            "schools": params.schools,
            "cohort_size": params.cohort_size,
            "pupils_grades_1_11": round(params.cohort_size * (9 + 2 * after_9)),
            "pupils_0_class": round(params.cohort_size * params.kg_share),
            "pupils_per_teacher": PUPILS_PER_TEACHER,
            "guardians_per_pupil": 1,
            "max_class_size": CLASS_SIZE,
        },
        "fixed_size": "the ministry, 20 regional administrations, ~200 district departments; "
                      "at least one school per region",
        "allocation": "pupils and schools by region in proportion to population; pupils over a "
                      f"region's schools by lognormal size (sigma {SCHOOL_SIZE_SIGMA}, cap "
                      f"{SCHOOL_SIZE_CAP} x median)",
        "flows": {"entrant_share": params.entrant_share, "exit_share": params.exit_share,
                  "leave_after_grade_9": params.leave_after_9, "zero_class_share": params.kg_share,
                  "start_grade_1_at_7_share": OLDER_SHARE},  # fmt: skip
        "calendar": {"year": [list(YEAR_START), list(YEAR_END)],
                     "terms": [[list(a), list(b)] for a, b in TERMS]},
        "grades": {"0-class": "KG", "1..11": "01..11"},
        "pii": ["users.identifier (IIN)", "users.givenName", "users.familyName", "users.middleName",
                "users.phone"],
        "defect_kinds": ["invalid_iin", "missing_required", "duplicate_record", "added_column",
                         "renamed_column"],
    }  # fmt: skip


# --- the fixed catalogue: orgs and teachers -------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    schools: pl.DataFrame  # one row per school, `school` = its index
    districts: pl.DataFrame
    pupil_p: np.ndarray  # the probability that a pupil goes to each school


def schools(seed: int, scale: float, params: Params = Params()) -> pl.DataFrame:
    """The schools, region by region (load_regions() order): school, region (index), sourced_id,
    name, prefix, kato_code (district), bin, weight (its share of the region's pupils). Other feeds
    (first-grade applications) refer to these ids."""
    return catalogue(seed, scale, params).schools


@lru_cache(maxsize=4)
def catalogue(seed: int, scale: float, params: Params = Params()) -> Catalogue:
    regions = load_regions()
    shares = population_shares()
    rng = rng_for(seed, FEED + ":schools", REFERENCE_DAY)
    counts = np.maximum(1, np.rint(params.schools * scale * shares)).astype(int)
    region = np.repeat(np.arange(len(regions)), counts)
    n = region.size
    n_districts = np.array([_district_count(r.kind, r.population) for r in regions])
    district = 10 + rng.integers(0, n_districts[region])
    size = np.minimum(rng.lognormal(0.0, SCHOOL_SIZE_SIGMA, n), SCHOOL_SIZE_CAP)
    region_size = np.bincount(region, weights=size, minlength=len(regions))
    weight = size / region_size[region]
    pupil_p = shares[region] * weight
    pupil_p /= pupil_p.sum()
    number = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts) + 1
    template = rng.integers(0, len(SCHOOL_NAMES), n)
    registered = np.datetime64("1996-01") + rng.integers(0, 240, n).astype("timedelta64[M]")
    prefixes = np.array([r.kato_prefix for r in regions])
    kato = np.char.add(np.char.add(prefixes[region], district.astype("U2")), "00000")
    names = np.char.add(np.char.add(np.array([t[0] for t in SCHOOL_NAMES])[template], number.astype("U4")),
                        np.array([t[1] for t in SCHOOL_NAMES])[template])  # fmt: skip
    school_frame = pl.DataFrame({
        "school": np.arange(n, dtype=np.int32), "region": region.astype(np.int32),
        "sourced_id": np.char.add("SCH-", np.char.zfill(np.arange(1, n + 1).astype("U5"), 5)),
        "name": names, "prefix": prefixes[region], "kato_code": kato,
        "bin": bin_(registered, np.full(n, 4), rng), "weight": weight,
    })  # fmt: skip
    district_frame = pl.DataFrame({
        "prefix": np.repeat(prefixes, n_districts),
        "kato_code": np.concatenate([np.char.add(np.char.add(p, (10 + np.arange(k)).astype("U2")), "00000")
                                     for p, k in zip(prefixes, n_districts, strict=True)]),
        "region_name": np.repeat(np.array([r.name_ru for r in regions]), n_districts),
    })  # fmt: skip
    expected = pupil_p * params.cohort_size * scale * (9 + 2 * (1 - params.leave_after_9) + params.kg_share)
    per_school = np.maximum(2, np.rint(expected / PUPILS_PER_TEACHER)).astype(int)
    school_frame = school_frame.with_columns(teacher_first=np.cumsum(per_school) - per_school,
                                             teacher_count=per_school)  # fmt: skip
    return Catalogue(school_frame, district_frame, pupil_p)


@lru_cache(maxsize=4)
def _teachers(seed: int, scale: float, params: Params) -> pl.DataFrame:
    """Every school's teachers (school by school, as the catalogue's teacher_first/teacher_count say)."""
    per_school = catalogue(seed, scale, params).schools["teacher_count"].to_numpy()
    school = np.repeat(np.arange(per_school.size), per_school)
    seq = np.arange(school.size) - np.repeat(np.cumsum(per_school) - per_school, per_school) + 1
    staff = people(rng_for(seed, FEED + ":teachers", REFERENCE_DAY), school.size, date(1960, 1, 1),
                   date(2001, 12, 31))  # fmt: skip
    return pl.DataFrame({
        "school": school.astype(np.int32), "seq": seq, "given": _text(staff["first_name"]),
        "family": _text(staff["last_name"]), "middle": _text(staff["patronymic"]), "iin": _text(staff["iin"]),
    }).select(
        "school", "given", "family", "middle", "iin",
        sourced_id=pl.concat_str(pl.lit("TCH-"), (pl.col("school") + 1).cast(pl.String).str.zfill(5),
                                 pl.lit("-"), pl.col("seq").cast(pl.String).str.zfill(3)),
    )  # fmt: skip


def _text(values: np.ndarray) -> pl.Series:
    """numpy unicode -> polars strings, through Python str objects: several times faster than
    polars' own conversion of numpy unicode arrays."""
    return pl.Series(values.tolist(), dtype=pl.String)


def _district_count(kind: str, population: int) -> int:
    """District education departments per region (the same rule as the KATO district codes of the
    road-accident register): cities have few, big regions up to 18."""
    if kind == "city":
        return min(max(population // 300_000, 3), 8)
    return min(max(population // 90_000, 4), 18)


# --- pupils: one cohort per year of entry to grade 1 ----------------------------------------------


def first_graders(rng: np.random.Generator, n: int, year: int) -> dict[str, np.ndarray]:
    """n children starting grade 1 on 1 September `year`: 6 years old on that day, or 7 for the
    OLDER_SHARE whose start was deferred (people(): IIN, names, sex, birth date).

    The 6-year-olds come first: pair the children with attributes drawn independently of their
    order (a shuffled region, an i.i.d. school), not with sorted ones."""
    older = int(rng.binomial(n, OLDER_SHARE))
    young = people(rng, n - older, date(year - 7, 9, 2), date(year - 6, 9, 1))
    old = people(rng, older, date(year - 8, 9, 2), date(year - 7, 9, 1))
    return {key: np.concatenate([young[key], old[key]]) for key in young}


@lru_cache(maxsize=14)
def _cohort(seed: int, entry_year: int, scale: float, params: Params) -> pl.DataFrame:
    """Every pupil of the cohort entering grade 1 on 1 September `entry_year`, with its school and
    the export days it `joined` (first shown) and `left` (first no longer shown)."""
    rng = rng_for(seed, FEED + ":cohort", date(entry_year, 9, 1))
    cat = catalogue(seed, scale, params)
    n_base = int(rng.poisson(params.cohort_size * scale))
    n = n_base + int(rng.poisson(params.cohort_size * scale * params.entrant_share))
    school = rng.choice(cat.pupil_p.size, size=n, p=cat.pupil_p)
    kid = first_graders(rng, n, entry_year)
    adult = people(rng, n, date(entry_year - 50, 1, 1), date(entry_year - 26, 12, 31))
    new = rng.permutation(n) >= n_base  # the entrants, anywhere in first_graders' age order
    kg = ~new & (rng.random(n) < params.kg_share)
    last_year = entry_year + np.where(rng.random(n) < params.leave_after_9, 8, 10)
    first_year = np.where(new, entry_year + (rng.random(n) * (last_year - entry_year + 1)).astype(int),
                          entry_year - kg)  # fmt: skip
    # Entrants are registered on a school day and shown from the next day's export.
    since = np.where(new, _school_day(rng, first_year), _sept1(first_year))
    joined = np.where(new, since + 1, since)
    leave_year = first_year + (rng.random(n) * (last_year - first_year + 1)).astype(int)
    leave_action = _school_day(rng, leave_year)
    leaves = (rng.random(n) < params.exit_share) & (leave_action >= joined)
    left = np.where(leaves, leave_action + 1, _sept1(last_year + 1))
    # Kazakh children get Kazakh guardians (pairing the two draws by name origin), and a guardian
    # shares the child's surname, in the guardian's gender.
    stem = _surname_stem(kid["last_name"])
    pairing = np.empty(n, dtype=np.int64)
    pairing[np.argsort(~np.isin(stem, KAZAKH_SURNAMES), kind="stable")] = np.argsort(
        ~np.isin(_surname_stem(adult["last_name"]), KAZAKH_SURNAMES), kind="stable")
    adult = {key: values[pairing] for key, values in adult.items()}
    g_family = np.where((adult["sex"] == "F") & ~np.isin(stem, ("Ким", "Пак")), np.char.add(stem, "а"), stem)
    text = {"iin": kid["iin"], "given": kid["first_name"], "family": kid["last_name"],
            "middle": kid["patronymic"], "g_iin": adult["iin"], "g_given": adult["first_name"],
            "g_family": g_family, "g_middle": adult["patronymic"], "g_phone": adult["phone"]}  # fmt: skip
    return pl.DataFrame({
        "idx": np.arange(n, dtype=np.int32), "school": school.astype(np.int32), "kg": kg,
        "since": since.astype(np.int32), "joined": joined.astype(np.int32), "left": left.astype(np.int32),
        "birth": kid["birth_date"],
        **{name: _text(values) for name, values in text.items()},
    })  # fmt: skip


def _surname_stem(surnames: np.ndarray) -> np.ndarray:
    """The masculine form of a surname (Ахметова -> Ахметов; Ким stays Ким)."""
    return np.char.rstrip(surnames.astype(str), "а")


def _sept1(years: np.ndarray) -> np.ndarray:
    """1 September of each year, as days since 1970-01-01."""
    months = (np.asarray(years) - 1970) * 12 + 8
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def _school_day(rng: np.random.Generator, years: np.ndarray) -> np.ndarray:
    """A registrar's working day (Monday-Friday) in the school year starting in each year."""
    day = _sept1(years) + rng.integers(0, SCHOOL_DAYS_SPAN, np.size(years))
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
    return day + np.select([weekday == 5, weekday == 6], [2, 1], 0)


@lru_cache(maxsize=2)
def _year(seed: int, year: int, scale: float, params: Params) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The pupils on the roster at any time of the school year starting in `year`, with their grade
    and homeroom section, and the year's classes (with their homeroom teacher)."""
    start, end = int(_sept1(year)), int(_sept1(year + 1))
    frames = []
    for entry_year in range(year - 10, year + 2):
        grade = year - entry_year + 1
        cohort = _cohort(seed, entry_year, scale, params).lazy()
        on_roster = cohort.filter((pl.col("joined") < end) & (pl.col("left") > start))
        if grade == 0:
            on_roster = on_roster.filter("kg")
        frames.append(on_roster.with_columns(entry_year=pl.lit(entry_year, pl.Int32),
                                             grade=pl.lit(grade, pl.Int8)))  # fmt: skip
    group = ["school", "grade"]
    pupils = (
        pl.concat(frames)
        .sort("school", "grade", "idx")
        .with_columns(rank=pl.int_range(pl.len()).over(group), size=pl.len().over(group))
        .with_columns(section=(pl.col("rank") % ((pl.col("size") + CLASS_SIZE - 1) // CLASS_SIZE)
                               .clip(upper_bound=len(CLASS_LETTERS))).cast(pl.Int8))
        .drop("rank", "size")
        .collect()
    )  # fmt: skip
    staff = catalogue(seed, scale, params).schools.select("school", "teacher_first", "teacher_count")
    # Each class's homeroom teacher: the school's teachers in turn.
    classes = (
        pupils.select("school", "grade", "section").unique().sort("school", "grade", "section")
        .with_columns(ordinal=pl.int_range(pl.len()).over("school"))
        .join(staff, on="school")
        .select("school", "grade", "section",
                teacher=pl.col("teacher_first") + pl.col("ordinal") % pl.col("teacher_count"))
    )  # fmt: skip
    return pupils, classes


# --- rendering ----------------------------------------------------------------------------------


def _ids() -> list[pl.Expr]:
    """The pupil's and its guardian's sourcedIds."""
    serial = pl.concat_str(pl.col("entry_year").cast(pl.String), pl.lit("-"),
                           pl.col("idx").cast(pl.String).str.zfill(7))  # fmt: skip
    return [
        pl.concat_str(pl.lit("STU-"), serial).alias("pupil_id"),
        pl.concat_str(pl.lit("PAR-"), serial).alias("guardian_id"),
    ]


def _grade_code(grade: pl.Expr) -> pl.Expr:
    return pl.when(grade == 0).then(pl.lit("KG")).otherwise(grade.cast(pl.String).str.zfill(2))


def _class_id(year: int, school_ids: pl.Series) -> pl.Expr:
    return pl.concat_str(pl.lit(f"CLS-{year}-"), pl.lit(school_ids).gather(pl.col("school")).str.slice(4),
                         pl.lit("-"), _grade_code(pl.col("grade")), pl.lit("-"),
                         (pl.col("section") + 1).cast(pl.String).str.zfill(2))  # fmt: skip


def _course_id(year: int, school_ids: pl.Series) -> pl.Expr:
    return pl.concat_str(pl.lit(f"CRS-{year}-"), pl.lit(school_ids).gather(pl.col("school")).str.slice(4),
                         pl.lit("-"), _grade_code(pl.col("grade")))  # fmt: skip


def _as_date(days: pl.Expr) -> pl.Expr:
    return days.cast(pl.Date).cast(pl.String)


def _people_frames(pupils: pl.DataFrame, year: int, seed: int, scale: float, params: Params,
                   with_teachers: bool) -> dict[str, pl.DataFrame]:  # fmt: skip
    """users, roles and enrollments of these pupils (with `status`/`dateLastModified` columns already
    on `pupils`), their guardians and, in a bulk, every teacher."""
    cat = catalogue(seed, scale, params)
    school_ids = cat.schools["sourced_id"]
    school = pl.lit(school_ids).gather(pl.col("school"))
    pupils = pupils.with_columns(*_ids(), school_id=school)
    blank = pl.lit(None, pl.String)
    empty_user = dict.fromkeys(("userIds", "email", "sms", "password", "userMasterIdentifier",
                                "preferredGivenName", "preferredMiddleName", "preferredFamilyName",
                                "pronouns"), blank)  # fmt: skip

    def users(who: str) -> pl.DataFrame:
        pupil = who == "pupil"
        me, other, prefix = ("pupil_id", "guardian_id", "") if pupil else ("guardian_id", "pupil_id", "g_")
        return pupils.select(
            sourcedId=me, status="status", dateLastModified="dateLastModified", enabledUser=pl.lit("true"),
            username=pl.col(me).str.to_lowercase(), givenName=prefix + "given", familyName=prefix + "family",
            middleName=prefix + "middle", identifier=prefix + "iin",
            phone=blank if pupil else pl.col("g_phone"), agentSourcedIds=other,
            grades=_grade_code(pl.col("grade")) if pupil else blank, primaryOrgSourcedId="school_id",
            **empty_user,
        )  # fmt: skip

    def roles(who: str, role: str) -> pl.DataFrame:
        me = "pupil_id" if who == "pupil" else "guardian_id"
        return pupils.select(
            sourcedId=pl.concat_str(pl.lit("ROL-"), me), status="status", dateLastModified="dateLastModified",
            userSourcedId=me, roleType=pl.lit("primary"), role=pl.lit(role),
            beginDate=_as_date(pl.col("since")), endDate=blank, orgSourcedId="school_id",
            userProfileSourcedId=blank,
        )  # fmt: skip

    begin = _as_date(pl.max_horizontal("since", pl.lit(int(_sept1(year)))))
    end = pl.lit(date(year + 1, *YEAR_END).isoformat())
    user_frames = [users("pupil"), users("guardian")]
    role_frames = [roles("pupil", "student"), roles("guardian", "parent")]
    enrollment_frames = [pupils.select(
        sourcedId=pl.concat_str(pl.lit(f"ENR-{year}-"), "pupil_id"), status="status",
        dateLastModified="dateLastModified", classSourcedId=_class_id(year, school_ids),
        schoolSourcedId="school_id", userSourcedId="pupil_id", role=pl.lit("student"), primary=blank,
        beginDate=begin, endDate=end,
    )]  # fmt: skip
    if with_teachers:
        teachers = _teachers(seed, scale, params)
        staff = teachers.with_columns(school_id=school)
        user_frames.append(staff.select(
            sourcedId="sourced_id", status=blank, dateLastModified=blank, enabledUser=pl.lit("true"),
            username=pl.col("sourced_id").str.to_lowercase(), givenName="given", familyName="family",
            middleName="middle", identifier="iin", phone=blank, agentSourcedIds=blank, grades=blank,
            primaryOrgSourcedId="school_id", **empty_user,
        ))  # fmt: skip
        role_frames.append(staff.select(
            sourcedId=pl.concat_str(pl.lit("ROL-"), "sourced_id"), status=blank, dateLastModified=blank,
            userSourcedId="sourced_id", roleType=pl.lit("primary"), role=pl.lit("teacher"), beginDate=blank,
            endDate=blank, orgSourcedId="school_id", userProfileSourcedId=blank,
        ))  # fmt: skip
        classes = _year(seed, year, scale, params)[1]
        class_id = _class_id(year, school_ids)
        enrollment_frames.append(classes.select(
            sourcedId=pl.concat_str(pl.lit(f"ENR-{year}-"), class_id.str.slice(9), pl.lit("-T")),
            status=blank, dateLastModified=blank, classSourcedId=class_id, schoolSourcedId=school,
            userSourcedId=pl.lit(teachers["sourced_id"]).gather(pl.col("teacher")),
            role=pl.lit("teacher"), primary=pl.lit("true"),
            beginDate=pl.lit(date(year, *YEAR_START).isoformat()), endDate=end,
        ))  # fmt: skip
    return {
        "users": pl.concat([f.select(COLUMNS["users"]) for f in user_frames]),
        "roles": pl.concat([f.select(COLUMNS["roles"]) for f in role_frames]),
        "enrollments": pl.concat([f.select(COLUMNS["enrollments"]) for f in enrollment_frames]),
    }


def _bulk(seed: int, day: date, scale: float, params: Params) -> dict[str, pl.DataFrame]:
    """The whole roster as of the export on `day`."""
    year = school_year(day)
    pupils, classes = _year(seed, year, scale, params)
    today = (day - date(1970, 1, 1)).days
    active = pupils.filter((pl.col("joined") <= today) & (pl.col("left") > today)).with_columns(
        status=pl.lit(None, pl.String), dateLastModified=pl.lit(None, pl.String))
    frames = _people_frames(active, year, seed, scale, params, with_teachers=True)
    cat = catalogue(seed, scale, params)
    return {
        "academicSessions": _sessions(year),
        "orgs": _orgs(cat),
        "courses": _courses(classes, year, cat),
        "classes": _classes(classes, year, cat),
        **frames,
    }


def _delta(seed: int, day: date, scale: float, params: Params,
           rng: np.random.Generator) -> dict[str, pl.DataFrame]:  # fmt: skip
    """The records changed on the day before `day`: pupils (and their guardians) who joined or left."""
    year = school_year(day - timedelta(days=1))
    pupils = _year(seed, year, scale, params)[0]
    today = (day - date(1970, 1, 1)).days
    changed = pupils.filter((pl.col("joined") == today) | (pl.col("left") == today))
    if changed.height == 0:
        return {}
    # The registrar's edit: a working-hours time on the previous day, local, sent in UTC.
    seconds = rng.integers(9 * 3600, 18 * 3600, changed.height)
    edited = (np.datetime64(day - timedelta(days=1), "s") + seconds).astype("datetime64[ms]")
    modified = (pl.Series(edited).dt.replace_time_zone(LOCAL_TZ).dt.convert_time_zone("UTC")
                .dt.strftime("%Y-%m-%dT%H:%M:%S.000Z"))  # fmt: skip
    changed = changed.with_columns(
        status=pl.when(pl.col("joined") == today).then(pl.lit("active")).otherwise(pl.lit("tobedeleted")),
        dateLastModified=modified,
    )
    return _people_frames(changed, year, seed, scale, params, with_teachers=False)


def _sessions(year: int) -> pl.DataFrame:
    label = f"{year}-{year + 1}"
    rows = [(f"AS-{year}", f"{label} оқу жылы / учебный год", "schoolYear", date(year, *YEAR_START),
             date(year + 1, *YEAR_END), None)]  # fmt: skip
    for i, (first, last) in enumerate(TERMS, start=1):
        begin = date(year if first[0] >= 9 else year + 1, *first)
        end = date(year if last[0] >= 9 else year + 1, *last)
        title = f"{label}, {i}-тоқсан / {i}-я четверть"
        rows.append((f"AS-{year}-T{i}", title, "term", begin, end, f"AS-{year}"))
    return pl.DataFrame(
        [(sid, None, None, title, kind, a.isoformat(), b.isoformat(), parent, str(year + 1))
         for sid, title, kind, a, b, parent in rows],
        schema=dict.fromkeys(COLUMNS["academicSessions"], pl.String), orient="row",
    )  # fmt: skip


def _orgs(cat: Catalogue) -> pl.DataFrame:
    regions = load_regions()
    blank = pl.lit(None, pl.String)
    top = pl.DataFrame(
        [("ORG-KZ", MINISTRY, "national", None, None)]
        + [(f"ORG-{r.kato_prefix}", f"{r.name_ru}: управление образования", "state", r.kato_code, "ORG-KZ")
           for r in regions],
        schema=["sourcedId", "name", "type", "identifier", "parentSourcedId"], orient="row",
    )  # fmt: skip
    districts = cat.districts.select(
        sourcedId=pl.concat_str(pl.lit("ORG-"), "kato_code"),
        name=pl.concat_str("region_name", pl.lit(": отдел образования района "),
                           pl.col("kato_code").str.slice(2, 2)),
        type=pl.lit("district"), identifier="kato_code",
        parentSourcedId=pl.concat_str(pl.lit("ORG-"), "prefix"),
    )  # fmt: skip
    school_rows = cat.schools.select(
        sourcedId="sourced_id", name="name", type=pl.lit("school"), identifier="bin",
        parentSourcedId=pl.concat_str(pl.lit("ORG-"), "kato_code"),
    )
    return pl.concat([top, districts, school_rows]).select(
        "sourcedId", status=blank, dateLastModified=blank, name="name", type="type", identifier="identifier",
        parentSourcedId="parentSourcedId")  # fmt: skip


def _courses(classes: pl.DataFrame, year: int, cat: Catalogue) -> pl.DataFrame:
    school_ids = cat.schools["sourced_id"]
    blank = pl.lit(None, pl.String)
    grade = pl.col("grade")
    title = pl.when(grade == 0).then(pl.lit("0-сынып, мектепалды даярлық / предшкольная подготовка"))
    title = title.otherwise(pl.concat_str(grade.cast(pl.String), pl.lit("-сынып / "), grade.cast(pl.String),
                                          pl.lit(" класс")))
    return classes.select("school", "grade").unique(maintain_order=True).select(
        sourcedId=_course_id(year, school_ids), status=blank, dateLastModified=blank,
        schoolYearSourcedId=pl.lit(f"AS-{year}"), title=title,
        courseCode=pl.concat_str(pl.lit("G"), _grade_code(grade)), grades=_grade_code(grade),
        orgSourcedId=pl.lit(school_ids).gather(pl.col("school")), subjects=blank, subjectCodes=blank,
    )  # fmt: skip


def _classes(classes: pl.DataFrame, year: int, cat: Catalogue) -> pl.DataFrame:
    school_ids = cat.schools["sourced_id"]
    blank = pl.lit(None, pl.String)
    code = pl.concat_str(pl.col("grade").cast(pl.String),
                         pl.lit(pl.Series(list(CLASS_LETTERS))).gather(pl.col("section")))  # fmt: skip
    terms = ",".join(f"AS-{year}-T{i}" for i in range(1, len(TERMS) + 1))
    return classes.select(
        sourcedId=_class_id(year, school_ids), status=blank, dateLastModified=blank,
        title=pl.concat_str(code, pl.lit(" сынып / класс")), grades=_grade_code(pl.col("grade")),
        courseSourcedId=_course_id(year, school_ids), classCode=code, classType=pl.lit("homeroom"),
        location=blank, schoolSourcedId=pl.lit(school_ids).gather(pl.col("school")),
        termSourcedIds=pl.lit(terms),
        subjects=blank, subjectCodes=blank, periods=blank,
    )  # fmt: skip


# --- defects and writing ----------------------------------------------------------------------------


class _InMember:
    """The day's context with every defect recorded against one member of the zip."""

    def __init__(self, ctx: DayContext, member: str):
        self._ctx, self._member = ctx, member

    def __getattr__(self, name: str):
        return getattr(self._ctx, name)

    def record(self, path: Path, kind: str, line: int | None = None, **extra) -> None:
        self._ctx.record(path, kind, line, member=self._member, **extra)


def _member_bytes(ctx: DayContext, path: Path, name: str, frame: pl.DataFrame, rarity: float) -> bytes:
    """One member's CSV, with its defects planted and logged (against the zip and member); row
    defects at `rarity` x their usual share."""
    member = f"{name}.csv"
    where = _InMember(ctx, member)
    if ctx.defect_rate > 0 and name in ("users", "enrollments") and frame.height:
        planter = RowDefects(where, frame, stream=f"row-defects:{name}")
        if name == "users":
            planter.break_iin("identifier", share=0.5 * rarity)
            planter.blank("familyName", share=0.3 * rarity)
            planter.blank("sourcedId", share=0.2 * rarity)
        planter.duplicate(share=0.5 * rarity)
        frame = planter.finish(path)
        if name == "users":
            frame = _drift(ctx, where, path, frame)
    return frame.write_csv().encode("utf-8")





def _drift(ctx: DayContext, where: _InMember, path: Path, frame: pl.DataFrame) -> pl.DataFrame:
    """Schema drift in users.csv: a birth date column no 1.2 reader knows, or a renamed column."""
    if ctx.maybe("added_column"):
        where.record(path, "added_column", None, column="birthDate",
                     detail="users.csv gained a column 'birthDate' (demographics data) after the last one")
        return frame.with_columns(birthDate=pl.lit(None, pl.String))
    if ctx.maybe("renamed_column"):
        where.record(path, "renamed_column", None, column="familyName", detail="sent as 'lastName'")
        return frame.rename({"familyName": "lastName"})
    return frame


def _zip(entries: list[tuple[str, bytes]], day: date) -> bytes:
    """A zip whose bytes depend only on its members: fixed order, times and attributes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(day.year, day.month, day.day, EXPORT_HOUR, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compresslevel=1)
    return buffer.getvalue()

