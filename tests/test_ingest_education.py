"""Education feeds through the one load path: the school roster (1EdTech OneRoster CSV sets, 1.2
and 1.1, driven by their manifest.csv), first-grade applications and kindergarten queue events.
Hand-written files of the standard, bad inputs, and simulated days end to end on a real lake."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
import zipfile
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import land, query
from transforms import lake
from transforms.load import LoadFailure, load_files
from transforms.privacy import scan_lake
from transforms.pseudonymise import hmac_key
from qala_devkit.simulate import simulate

ROSTER = "education/oneroster"
APPLICATIONS = "education/school_applications"
QUEUE = "education/kindergarten_queue"
DAY = "2025-03-03"

# The data files each version's manifest lists (OneRoster 1.1 CSV tables, 1.2 CSV binding).
FILES_1_1 = ["academicSessions", "categories", "classes", "classResources", "courses", "courseResources",
             "demographics", "enrollments", "lineItems", "orgs", "resources", "results", "users"]
FILES_1_2 = ["academicSessions", "categories", "classes", "classResources", "courses", "courseResources",
             "demographics", "enrollments", "lineItemLearningObjectiveIds", "lineItems", "lineItemScoreScales",
             "orgs", "resources", "resultLearningObjectiveIds", "results", "resultScoreScales", "roles",
             "scoreScales", "userProfiles", "userResources", "users"]

# A minimal OneRoster 1.2 bulk set written from the 1.2 CSV binding (RFC 4180: CRLF line ends,
# every column of each file in the header, status and dateLastModified blank in a bulk).
SET_1_2 = {
    "orgs.csv": """\
sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId
9f1c2e4a-district,,,Отдел образования района Алмалы,district,751110000,
3b7e99d0-school,,,КГУ «Школа-гимназия № 12»,school,960940001234,9f1c2e4a-district
""",
    "academicSessions.csv": """\
sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,schoolYear
as-2024,,,2024-2025,schoolYear,2024-09-01,2025-05-25,,2025
as-2024-t3,,,"2024-2025, 3-я четверть",term,2025-01-08,2025-03-19,as-2024,2025
""",
    "classes.csv": """\
sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,termSourcedIds,subjects,subjectCodes,periods
cls-5a,,,5А класс,05,crs-5,5А,homeroom,каб. 204,3b7e99d0-school,"as-2024-t3",,,
""",
    "users.csv": """\
sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,resourceSourcedIds,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId,pronouns
u-teacher-1,,,true,a.seitova,{LDAP:a.seitova},Айгерим,Сейітова,Маратқызы,850312450286,a.seitova@school12.kz,,+7 701 111 22 33,,,,,,,,,3b7e99d0-school,
u-pupil-1,,,true,d.akhmetov,,Дәулет,Ахметов,Ерланұлы,140105500127,,,,u-parent-1,05,,,,,,,3b7e99d0-school,
u-pupil-2,,,true,o.ivanova,,Ольга,Иванова,Сергеевна,131220600219,,,,,05,,,,,,,3b7e99d0-school,
u-parent-1,,,true,e.akhmetov,,Ерлан,Ахметов,Бауыржанұлы,800715300416,,+7 777 555 44 33,,u-pupil-1,,,,,,,,3b7e99d0-school,
""",
    "roles.csv": """\
sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,userProfileSourcedId
r-teacher-1,,,u-teacher-1,primary,teacher,2024-09-01,,3b7e99d0-school,
r-pupil-1,,,u-pupil-1,primary,student,2024-09-01,,3b7e99d0-school,
r-pupil-2,,,u-pupil-2,primary,student,2024-09-01,,3b7e99d0-school,
r-parent-1,,,u-parent-1,primary,parent,,,3b7e99d0-school,
""",
    "enrollments.csv": """\
sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate
e-1,,,cls-5a,3b7e99d0-school,u-teacher-1,teacher,true,2024-09-01,2025-05-25
e-2,,,cls-5a,3b7e99d0-school,u-pupil-1,student,false,2024-09-01,2025-05-25
e-3,,,cls-5a,3b7e99d0-school,u-pupil-2,student,false,2024-09-01,2025-05-25
""",
}
# The 1.1 users.csv: the user's role and orgs in the file itself (no roles.csv).
USERS_1_1 = """\
sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password
u-teacher-1,,,true,3b7e99d0-school,teacher,a.seitova,,Айгерим,Сейітова,Маратқызы,850312450286,a.seitova@school12.kz,,,,,
u-pupil-1,,,true,3b7e99d0-school,student,d.akhmetov,,Дәулет,Ахметов,Ерланұлы,140105500127,,,,,05,
"""


def manifest(version: str = "1.2", **modes: str) -> str:
    files = FILES_1_2 if version == "1.2" else FILES_1_1
    rows = [("manifest.version", "1.0"), ("oneroster.version", version)]
    rows += [(f"file.{name}", modes.get(name, "absent")) for name in files]
    rows += [("source.systemName", "Kundelik SIS"), ("source.systemCode", "KDL")]
    return "propertyName,value\n" + "".join(f"{k},{v}\n" for k, v in rows)


def roster_zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text.replace("\n", "\r\n").encode("utf-8"))
    return buffer.getvalue()


def bulk_1_2(**replace: str | None) -> dict[str, str]:
    """The 1.2 set with its manifest; `replace` swaps (text) or removes (None) a member."""
    members = {"manifest.csv": manifest(**{name.removesuffix(".csv"): "bulk" for name in SET_1_2}), **SET_1_2}
    for key, text in replace.items():
        name = f"{key}.csv"
        if text is None:
            members.pop(name)
        else:
            members[name] = text
    return members


def land_roster(root: Path, members: dict[str, str] | bytes, name: str = "roster.zip") -> Path:
    return land(root, DAY, name, members if isinstance(members, bytes) else roster_zip(members), feed=ROSTER)


def refused(feed: str, path: Path) -> str:
    with pytest.raises(LoadFailure) as failure:
        load_files(feed, [path])
    (row,) = failure.value.rows
    assert row.status == "failed"
    return row.reason


def pseudonym(root: Path, value: str) -> str:
    return hmac.new(hmac_key(root), value.encode("utf-8"), hashlib.sha256).hexdigest()


# --- OneRoster: sets of the standard load -------------------------------------------------------


def test_a_hand_written_oneroster_1_2_bulk_set_loads_with_people_pseudonymised(warehouse):
    path = land_roster(warehouse, bulk_1_2())
    (row,) = load_files(ROSTER, [path])
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 16, 16, 0)
    assert {t: c["published"] for t, c in row.tables.items()} == {
        "orgs": 2, "academic_sessions": 2, "classes": 1, "users": 4, "roles": 4, "enrollments": 3}
    # Every record carries the manifest's mode; a person's sourcedId and IIN are HMACs, the
    # people's names, usernames, e-mails and phones are not published at all.
    users = query(warehouse, "select sourced_id, identifier, delivery_mode, grades, primary_org_sourced_id, "
                             "_source_member, _source_line from silver.education__oneroster__users order by _source_line")
    assert users[1] == (pseudonym(warehouse, "u-pupil-1"), pseudonym(warehouse, "140105500127"), "bulk", "05",
                        "3b7e99d0-school", "users.csv", 3)
    columns = {c for (c,) in query(warehouse, "select column_name from duckdb_columns() "
                                              "where table_name = 'education__oneroster__users'")}
    assert not columns & {"given_name", "family_name", "middle_name", "username", "email", "phone", "password",
                          "agent_sourced_ids", "user_ids"}
    # Pupils are found by joining their pseudonymised ids across tables.
    pupils = query(warehouse, """
        select count(*) from silver.education__oneroster__enrollments e
        join silver.education__oneroster__users u on u.sourced_id = e.user_sourced_id
        join silver.education__oneroster__roles r on r.user_sourced_id = u.sourced_id
        join silver.education__oneroster__classes c on c.sourced_id = e.class_sourced_id
        where e.role = 'student' and r.role = 'student' and c.class_code = '5А'""")
    assert pupils == [(2,)]
    sessions = query(warehouse, "select type, start_date, school_year from silver.education__oneroster__academic_sessions "
                                "order by start_date")
    assert sessions == [("schoolYear", date(2024, 9, 1), 2025), ("term", date(2025, 1, 8), 2025)]


def test_a_oneroster_1_1_bulk_set_loads_with_roles_in_users_csv(warehouse):
    members = {
        "manifest.csv": manifest("1.1", orgs="bulk", users="bulk", enrollments="bulk"),
        "orgs.csv": SET_1_2["orgs.csv"],
        "users.csv": USERS_1_1,
        "enrollments.csv": "\n".join(SET_1_2["enrollments.csv"].splitlines()[:3]) + "\n",
    }
    (row,) = load_files(ROSTER, [land_roster(warehouse, members)])
    assert (row.status, row.rows_published) == ("published", 6)
    assert set(row.tables) == {"orgs", "users", "enrollments"}
    users = query(warehouse, "select role, org_sourced_ids, primary_org_sourced_id from "
                             "silver.education__oneroster__users order by _source_line")
    assert users == [("teacher", "3b7e99d0-school", None), ("student", "3b7e99d0-school", None)]


def test_a_delta_set_keeps_status_and_modification_time_and_files_the_contract_does_not_take_are_counted(warehouse):
    members = {
        "manifest.csv": manifest(users="delta", courses="delta"),
        "users.csv": SET_1_2["users.csv"].splitlines()[0] + "\n"
                     "u-pupil-3,active,2025-03-02T06:12:09.000Z,true,a.nurlanov,,Алихан,Нұрланов,,150301500321,,,,,04,,,,,,,3b7e99d0-school,\n"
                     "u-pupil-2,tobedeleted,2025-03-02T07:00:00.000Z,true,o.ivanova,,Ольга,Иванова,Сергеевна,131220600219,,,,,05,,,,,,,3b7e99d0-school,\n",
        "courses.csv": "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,orgSourcedId,subjects,subjectCodes\n"
                       "crs-4,active,2025-03-02T06:00:00.000Z,as-2024,4 класс,G04,04,3b7e99d0-school,,\n",
        "readme.txt": "exported by hand\n",
    }
    (row,) = load_files(ROSTER, [land_roster(warehouse, members)])
    assert (row.status, row.rows_in, row.rows_skipped, row.skipped) == ("published", 2, 1, {"courses.csv": 1})
    assert row.reason == "readme.txt is not described by manifest.csv: not read"
    users = query(warehouse, "select status, date_last_modified, delivery_mode from silver.education__oneroster__users "
                             "order by _source_line")
    assert users == [("active", datetime(2025, 3, 2, 6, 12, 9, tzinfo=timezone.utc), "delta"),
                     ("tobedeleted", datetime(2025, 3, 2, 7, 0, tzinfo=timezone.utc), "delta")]


def test_duplicate_sourced_ids_are_quarantined_naming_the_first_line(warehouse):
    users = SET_1_2["users.csv"] + SET_1_2["users.csv"].splitlines()[2] + "\n"
    (row,) = load_files(ROSTER, [land_roster(warehouse, bulk_1_2(users=users))])
    assert (row.status, row.tables["users"]) == ("published", {"in": 5, "published": 4, "quarantined": 1})
    quarantined = query(warehouse, "select _source_member, _source_line, _rule, _reason, sourced_id, _raw_line "
                                   "from quarantine.education__oneroster__users")
    # The person's id is quarantined as its HMAC and the raw line (names, IIN) is not kept.
    assert quarantined == [("users.csv", 6, "primary key", "primary key: duplicate of line 3 of users.csv",
                            pseudonym(warehouse, "u-pupil-1"), None)]


def test_a_header_only_users_csv_loads_no_users_and_says_so(warehouse):
    header_only = SET_1_2["users.csv"].splitlines()[0] + "\n"
    (row,) = load_files(ROSTER, [land_roster(warehouse, bulk_1_2(users=header_only))])
    assert (row.status, row.rows_published) == ("published", 12)
    assert "users" not in row.tables
    assert row.reason == "users.csv is marked bulk but holds no records: as a bulk it would empty the table"
    assert query(warehouse, "select count(*) from silver.education__oneroster__users") == [(0,)]


def test_a_file_the_manifest_marks_absent_is_not_read(warehouse):
    members = bulk_1_2()
    members["manifest.csv"] = members["manifest.csv"].replace("file.roles,bulk", "file.roles,absent")
    (row,) = load_files(ROSTER, [land_roster(warehouse, members)])
    assert (row.status, row.rows_published, "roles" in row.tables) == ("published", 12, False)
    assert row.reason == "roles.csv is in the zip but manifest.csv marks it absent: not read"


# --- OneRoster: bad inputs -----------------------------------------------------------------------


def test_a_zip_without_manifest_csv_is_refused(warehouse):
    members = bulk_1_2()
    del members["manifest.csv"]
    reason = refused(ROSTER, land_roster(warehouse, members))
    assert reason == (f"landing/{ROSTER}/{DAY}/roster.zip: [manifest] the zip has no manifest.csv: a OneRoster CSV "
                      "set is described by its manifest (propertyName,value: oneroster.version, "
                      "file.<name> bulk|delta|absent)")


def test_a_file_the_manifest_lists_but_the_zip_lacks_is_refused(warehouse):
    reason = refused(ROSTER, land_roster(warehouse, bulk_1_2(users=None)))
    assert reason == (f"landing/{ROSTER}/{DAY}/roster.zip: [manifest] manifest.csv marks users.csv as bulk, "
                      "but the zip has no users.csv")


def test_an_unreadable_zip_is_refused(warehouse):
    data = roster_zip(bulk_1_2())
    reason = refused(ROSTER, land_roster(warehouse, data[: len(data) // 2]))
    assert reason == (f"landing/{ROSTER}/{DAY}/roster.zip: [format] not a zip archive (no zip directory found): "
                      "unreadable or truncated")


def test_another_oneroster_version_is_refused_naming_the_manifest_line(warehouse):
    members = bulk_1_2()
    members["manifest.csv"] = members["manifest.csv"].replace("oneroster.version,1.2", "oneroster.version,1.0")
    reason = refused(ROSTER, land_roster(warehouse, members))
    assert reason == (f"landing/{ROSTER}/{DAY}/roster.zip!manifest.csv, line 3: [manifest] oneroster.version '1.0': "
                      "this reader takes OneRoster 1.1 and 1.2 CSV sets")


def test_an_unknown_file_mode_is_refused_naming_the_manifest_line(warehouse):
    members = bulk_1_2()
    members["manifest.csv"] = members["manifest.csv"].replace("file.users,bulk", "file.users,full")
    reason = refused(ROSTER, land_roster(warehouse, members))
    assert reason == (f"landing/{ROSTER}/{DAY}/roster.zip!manifest.csv, line 24: [manifest] file.users is 'full'; "
                      "a file's mode is bulk, delta or absent")


def test_a_1_1_users_csv_without_role_is_refused(warehouse):
    users = "\n".join(",".join(v for i, v in enumerate(line.split(",")) if i != 5)
                      for line in USERS_1_1.splitlines()) + "\n"
    members = {"manifest.csv": manifest("1.1", users="bulk"), "users.csv": users}
    reason = refused(ROSTER, land_roster(warehouse, members))
    assert reason == (f"landing/{ROSTER}/{DAY}/roster.zip!users.csv, line 1: [required columns] OneRoster 1.1 "
                      "requires column(s) role in users.csv")


def test_a_member_without_a_required_column_is_refused_naming_the_member(warehouse):
    users = SET_1_2["users.csv"].replace(",familyName,", ",lastName,")
    reason = refused(ROSTER, land_roster(warehouse, bulk_1_2(users=users)))
    assert reason == (f"landing/{ROSTER}/{DAY}/roster.zip!users.csv, line 1: [required columns] required column(s) "
                      "missing from the header: familyName.")


def test_an_empty_member_never_blocks_the_others_and_is_noted(warehouse):
    (row,) = load_files(ROSTER, [land_roster(warehouse, bulk_1_2(enrollments=""))])
    assert row.status == "published" and "enrollments" not in row.tables and row.tables["users"]["published"] > 0
    assert "enrollments.csv is marked bulk but holds no records: as a bulk it would empty the table" in row.reason


# --- first-grade applications and the kindergarten queue -----------------------------------------

APPLICATION_HEADER = ("application_id,child_iin,child_birth_date,child_name,parent_iin,parent_phone,kato_code,"
                      "school_id,submitted_at,channel,status")
QUEUE_HEADER = ("event_id,child_iin,child_birth_date,kato_code,event_type,priority_category,event_at,"
                "kindergarten_id,queue_number,child_name")


def test_an_application_file_without_the_channel_column_is_refused(warehouse):
    header = APPLICATION_HEADER.replace(",channel", "")
    path = land(warehouse, DAY, "applications_75_2025-03-03.csv", header + "\n", feed=APPLICATIONS)
    reason = refused(APPLICATIONS, path)
    assert reason == (f"landing/{APPLICATIONS}/{DAY}/applications_75_2025-03-03.csv, line 1: [required columns] "
                      "required column(s) missing from the header: channel.")


def test_applications_of_an_unknown_channel_are_quarantined_without_personal_data(warehouse):
    body = ("ZP-1,190418694641,2019-04-18,Новикова Ольга Михаиловна,030201639042,+7 701 394 31 45,751100000,"
            "SCH-00002,2025-03-03 00:04:39,egov,submitted\n"
            "ZP-2,181125537832,2018-11-25,Сейітов Тимур Ерланұлы,950128432107,+7 747 134 64 52,751100000,"
            "SCH-00002,2025-03-03 09:27:21,telegram,submitted\n")
    path = land(warehouse, DAY, "applications_75_2025-03-03.csv", APPLICATION_HEADER + "\n" + body, feed=APPLICATIONS)
    (row,) = load_files(APPLICATIONS, [path])
    assert (row.rows_in, row.rows_published, row.rows_quarantined) == (2, 1, 1)
    assert query(warehouse, "select application_id, child_iin, child_birth_date, channel "
                            "from silver.education__school_applications") == [
        ("ZP-1", pseudonym(warehouse, "190418694641"), 2019, "egov")]
    (line, rule, raw, iin, born), = query(warehouse, "select _source_line, _rule, _raw_line, child_iin, child_birth_date "
                                                     "from quarantine.education__school_applications")
    assert (line, rule, raw, iin, born) == (3, "expect_column_values_to_be_in_set(channel)", None,
                                            pseudonym(warehouse, "181125537832"), "2018")


def test_a_queue_file_without_the_event_type_column_is_refused(warehouse):
    header = QUEUE_HEADER.replace(",event_type", "")
    path = land(warehouse, DAY, "queue_events_75_2025-03-03.csv", header + "\n", feed=QUEUE)
    reason = refused(QUEUE, path)
    assert reason == (f"landing/{QUEUE}/{DAY}/queue_events_75_2025-03-03.csv, line 1: [required columns] "
                      "required column(s) missing from the header: event_type.")


def test_queue_events_of_an_unknown_type_are_quarantined(warehouse):
    body = ("KQ-20250303-75-00001-R,240601531544,2024-06-01,751100000,registered,none,2025-03-03 12:55:59,,2,"
            "Бекмұхамбетов Шыңғыс Ғалымұлы\n"
            "KQ-20250303-75-00002-R,240601531554,2024-06-01,751100000,postponed,none,2025-03-03 12:56:59,,3,"
            "Ахметова Ұлжан Ілиясқызы\n")
    path = land(warehouse, DAY, "queue_events_75_2025-03-03.csv", QUEUE_HEADER + "\n" + body, feed=QUEUE)
    (row,) = load_files(QUEUE, [path])
    assert (row.rows_in, row.rows_published, row.rows_quarantined) == (2, 1, 1)
    assert query(warehouse, "select _source_line, _rule from quarantine.education__kindergarten_queue") == [
        (3, "expect_column_values_to_be_in_set(event_type)")]


# --- simulated days, end to end -------------------------------------------------------------------


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1251")


def _records(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


# What in each landed file is a person's: the columns whose raw values must never reach silver.
PERSONAL = {
    "users.csv": ("sourcedId", "username", "givenName", "familyName", "middleName", "identifier", "phone",
                  "agentSourcedIds"),
    "roles.csv": ("sourcedId", "userSourcedId"),
    "enrollments.csv": ("userSourcedId",),
    APPLICATIONS: ("child_iin", "child_name", "parent_iin", "parent_phone", "child_birth_date"),
    QUEUE: ("child_iin", "child_name", "child_birth_date"),
}


def test_simulated_days_load_end_to_end_without_raw_personal_data(warehouse):
    # Monday 31 March 2025 (a OneRoster bulk) and Tuesday 1 April (a delta; first-grade
    # applications open).
    written = simulate(warehouse, date(2025, 3, 31), 2, scale=0.002, seed=1, defect_rate=0, workers=1,
                       feeds=[ROSTER, APPLICATIONS, QUEUE])
    landed: dict[str, int] = {}  # silver table -> records landed
    personal: set[str] = set()
    courses = 0  # the roster file the contract does not take
    for feed in (ROSTER, APPLICATIONS, QUEUE):
        paths = sorted((warehouse / "landing" / feed).glob("*/*"))
        rows = load_files(feed, paths)
        assert len(rows) == len(paths) and all(r.status == "published" for r in rows)
        for row in rows:
            assert row.rows_in == row.rows_published + row.rows_quarantined
            assert row.rows_quarantined == 0
        for path in paths:
            if feed == ROSTER:
                with zipfile.ZipFile(path) as archive:
                    members = {n: _text(archive.read(n)) for n in archive.namelist() if n != "manifest.csv"}
                tables = {"orgs.csv": "orgs", "academicSessions.csv": "academic_sessions", "classes.csv": "classes",
                          "users.csv": "users", "roles.csv": "roles", "enrollments.csv": "enrollments"}
                for member, text in members.items():
                    if member not in tables:
                        assert member == "courses.csv"
                        courses += len(_records(text))
                        continue
                    records = _records(text)
                    silver = f"education__oneroster__{tables[member]}"
                    landed[silver] = landed.get(silver, 0) + len(records)
                    for column in PERSONAL.get(member, ()):
                        personal |= {r[column] for r in records if r[column]}
            else:
                records = _records(_text(path.read_bytes()))
                silver = feed.replace("/", "__")
                landed[silver] = landed.get(silver, 0) + len(records)
                for column in PERSONAL[feed]:
                    personal |= {r[column] for r in records if r[column]}
        assert sum(r.rows_skipped for r in rows) == (courses if feed == ROSTER else 0)
    assert landed["education__oneroster__users"] > 1000 and landed["education__school_applications"] > 0
    assert sum(n for t, n in landed.items() if "oneroster" in t) + courses == written[ROSTER]
    assert (landed["education__school_applications"], landed["education__kindergarten_queue"]) == (
        written[APPLICATIONS], written[QUEUE])

    # Nothing personal of the landed files is in silver, as a value or inside one (an
    # enrollment's sourcedId is composed from its pupil's id, so it is published as an HMAC).
    assert len(personal) > 10_000
    person_id = re.compile(r"(STU|PAR|TCH)-")
    con = lake.connect(warehouse, read_only=True)
    try:
        for silver, count in landed.items():
            assert con.execute(f"select count(*) from silver.{silver}").fetchall() == [(count,)], silver
        con.execute("create temp table personal as select unnest(?::varchar[]) as v", [sorted(personal)])
        columns = con.execute("select table_name, column_name from duckdb_columns() where schema_name = 'silver' "
                              "and table_name like 'education__%' and data_type = 'VARCHAR' "
                              "and not starts_with(column_name, '_')").fetchall()
        for table, column in columns:
            values = {v for (v,) in con.execute(f'select distinct "{column}" from silver.{table}').fetchall() if v}
            leaked, = con.execute(f'select count(*) from (select distinct "{column}" as v from silver.{table}) '
                                  f"join personal using (v)").fetchone()
            assert leaked == 0, f"{table}.{column}"
            assert not any(person_id.search(v) for v in values), f"{table}.{column}"
    finally:
        con.close()
    # ... nor anything the lake's privacy audit takes for an IIN, BIN or phone number.
    assert [str(f) for f in scan_lake(warehouse)] == []
