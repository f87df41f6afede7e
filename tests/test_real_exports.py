"""Real exports, as real systems send them: the public example files of each standard in
`../shared/conformance/` (written by others; read where they lie, never copied here) and this
repository's own small fixtures in `tests/fixtures/` for every case the standards allow that the
examples do not show. And every landed file accounted for: a ledger row for each, `not_read`
for the files a feed does not read. Real DuckDB, real GX (through load_files).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, HEADER, accident_rows, land, query
from transforms import runs
from transforms.ledger import NOT_READ, PUBLISHED
from transforms.load import LoadFailure, load_files

CONFORMANCE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
DAY = "2025-03-03"
GTFS, ROSTER, FHIR, OPEN311 = "transport/gtfs_static", "education/oneroster", "health/fhir_bulk", "housing/open311_requests"
QUEUE, ACCIDENTS = "education/kindergarten_queue", "safety/road_accidents"

needs_corpus = pytest.mark.skipif(
    not CONFORMANCE.is_dir(),
    reason=f"the conformance corpus {CONFORMANCE} is absent (it lives beside the repository, in ../shared)")


def zipped(folder: Path) -> bytes:
    """A folder's files as one zip, byte for byte (line ends, BOMs and missing final line breaks kept)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.writestr(path.name, path.read_bytes())
    return buffer.getvalue()


def load_day(root: Path, feed: str) -> list:
    """Every file landed for the feed on DAY, as a run loads them (failures included)."""
    day = date.fromisoformat(DAY)
    try:
        return load_files(feed, runs.landed_files(feed, day, day, root), run_id="real", root=root)
    except LoadFailure as failure:
        return failure.rows


def quarantined(root: Path, table: str) -> list[tuple]:
    return query(root, f"select _source_member, _source_line, _rule, _reason from quarantine.{table} "
                       f"order by _source_member, _source_line")


def records_of(data: bytes) -> int:
    """Records of a CSV text as Python's csv module reads it (blank lines are no records)."""
    return sum(1 for fields in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")) if fields) - 1


def assert_accounted(root: Path, feed: str, rows: list) -> None:
    """Every landed file has a ledger row (or is read by a manifest that has one), and each row
    balances: rows_in = published + quarantined."""
    day = date.fromisoformat(DAY)
    files = runs.landed_files(feed, day, day, root)
    assert runs.unaccounted(feed, files, {r.source_file for r in rows}, root) == []
    for row in rows:
        assert row.rows_in == row.rows_published + row.rows_quarantined, row


# --- the conformance corpus: files no one here wrote ---------------------------------------------


@needs_corpus
def test_the_gtfs_reference_example_feed_publishes_every_record(warehouse):
    """google/transit's sample-feed-1.zip: CRLF, members without a final line break, stop_times
    records that omit trailing optional fields, a column outside the reference."""
    data = (CONFORMANCE / "gtfs" / "sample-feed-1.zip").read_bytes()
    land(warehouse, DAY, "sample-feed-1.zip", data, feed=GTFS)
    (row,) = load_day(warehouse, GTFS)
    assert_accounted(warehouse, GTFS, [row])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        expected = {name.removesuffix(".txt"): records_of(archive.read(name)) for name in archive.namelist()
                    if name.removesuffix(".txt") in row.tables}
    # Every record of every member the contract takes: none cut off, none quarantined.
    assert (row.status, row.rows_quarantined) == (PUBLISHED, 0)
    assert {t: c["published"] for t, c in row.tables.items()} == expected
    assert sum(expected.values()) == 57 and expected["stop_times"] == 28
    assert "record(s) (stop_times) omit trailing optional fields: read with NULLs for them" in row.reason
    # The last record of a member without a final line break is whole.
    last = query(warehouse, "select trip_id, stop_id, stop_sequence, _source_line from "
                            "silver.transport__gtfs_static__stop_times order by _source_line desc limit 1")
    assert last == [("AAMV4", "BEATTY_AIRPORT", 2, 29)]


@needs_corpus
def test_a_bulk_export_without_a_manifest_loads_each_file_and_counts_the_types_qala_does_not_use(warehouse):
    """smart-on-fhir's 10 Synthea patients: the NDJSON files a bulk client saves, no manifest."""
    folder = CONFORMANCE / "fhir" / "synthea-10-patients"
    for path in sorted(folder.iterdir()):
        land(warehouse, DAY, path.name, path.read_bytes(), feed=FHIR)
    rows = {Path(r.source_file).name: r for r in load_day(warehouse, FHIR)}
    assert_accounted(warehouse, FHIR, list(rows.values()))
    lines = {p.name: sum(1 for line in p.read_bytes().splitlines() if line.strip()) for p in folder.iterdir()}
    assert set(rows) == set(lines)
    for name in ("Patient.000.ndjson", "Encounter.000.ndjson", "Immunization.000.ndjson"):
        assert (rows[name].status, rows[name].rows_in, rows[name].rows_quarantined) == (PUBLISHED, lines[name], 0)
    # Condition is not a type Qala reads: counted per type, skipped, and the file is accounted for.
    condition = rows["Condition.000.ndjson"]
    assert (condition.status, condition.rows_in, condition.rows_skipped, condition.skipped) == (
        PUBLISHED, 0, lines["Condition.000.ndjson"], {"Condition": lines["Condition.000.ndjson"]})
    assert query(warehouse, "select count(*) from silver.health__fhir_bulk__patient") == [(lines["Patient.000.ndjson"],)]


@needs_corpus
def test_a_oneroster_1_2_bulk_zip_with_blank_manifest_modes_loads_and_only_bad_records_are_quarantined(warehouse):
    """catalyst's v1p2_full_dataset.zip: blank modes, roles with two unnamed trailing columns and
    short records, a non-ISO date, a misspelled optional column."""
    data = (CONFORMANCE / "oneroster" / "v1p2_full_dataset.zip").read_bytes()
    land(warehouse, DAY, "v1p2_full_dataset.zip", data, feed=ROSTER)
    (row,) = load_day(warehouse, ROSTER)
    assert_accounted(warehouse, ROSTER, [row])
    assert row.status == PUBLISHED
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sent = {name: records_of(archive.read(name)) for name in archive.namelist()}
    assert {t: c["in"] for t, c in row.tables.items()} == {
        "orgs": sent["orgs.csv"], "academic_sessions": sent["academicSessions.csv"], "classes": sent["classes.csv"],
        "users": sent["users.csv"], "roles": sent["roles.csv"], "enrollments": sent["enrollments.csv"]}
    assert "manifest.csv leaves file.scoreScales blank (line 21): taken as absent" in row.reason
    # What is quarantined breaks a rule the contract states, and says which.
    rules = {(table, rule) for table in ("users", "academic_sessions", "classes")
             for _, _, rule, _ in quarantined(warehouse, f"education__oneroster__{table}")}
    assert rules == {("users", "type"), ("academic_sessions", "expect_column_values_to_be_in_set(status)"),
                     ("classes", "expect_column_values_to_match_regex(class_type)")}
    dates = [reason for _, _, _, reason in quarantined(warehouse, "education__oneroster__users")]
    assert dates and all(r.startswith("type: date_last_modified must be TIMESTAMPTZ") for r in dates)
    assert row.rows_quarantined == len(dates) + 2


@needs_corpus
def test_real_open311_requests_outside_kazakhstan_are_quarantined_with_their_rule(warehouse):
    land(warehouse, DAY, "service_requests.json", (CONFORMANCE / "open311" / "service_requests.json").read_bytes(),
         feed=OPEN311)
    (row,) = load_day(warehouse, OPEN311)
    assert_accounted(warehouse, OPEN311, [row])
    sent = json.loads((CONFORMANCE / "open311" / "service_requests.json").read_text())
    assert (row.status, row.rows_in, row.rows_published) == (PUBLISHED, len(sent), 0)
    assert {rule for _, _, rule, _ in quarantined(warehouse, "housing__open311_requests")} == {
        "expect_column_values_to_be_between(lat)"}


# --- our own fixtures: what the standards allow that the examples do not show ---------------------


def test_a_csv_with_bom_crlf_mixed_line_ends_a_blank_line_omitted_fields_and_no_final_break_publishes_all(warehouse):
    data = (FIXTURES / "csv" / "queue_events_75_2025-03-03.csv").read_bytes()
    land(warehouse, DAY, "queue_events_75_2025-03-03.csv", data, feed=QUEUE)
    (row,) = load_day(warehouse, QUEUE)
    assert (row.status, row.rows_in, row.rows_published) == (PUBLISHED, 5, 5)
    assert row.reason == "3 record(s) omit trailing optional fields: read with NULLs for them"
    # Each record keeps its physical line (line 4 is blank); the last, without its line break, is whole.
    assert query(warehouse, "select event_id, _source_line, queue_number from silver.education__kindergarten_queue "
                            "order by _source_line") == [
        ("KQ-20250303-75-00001-R", 2, 2), ("KQ-20250303-75-00002-R", 3, None), ("KQ-20250303-75-00003-R", 5, 7),
        ("KQ-20250303-75-00004-R", 6, None), ("KQ-20250303-75-00005-R", 7, 4)]


@pytest.mark.parametrize("last, why", [
    ("RA-9,2025-03-01 08:09:00,710110000,injury,1,0,2,просп", "missing columns"),  # a short last record
    ('RA-9,2025-03-01 08:09:00,710110000,injury,1,0,2,"проспект Аб', "unquoted value"),  # a quote left open
])
def test_a_bare_csv_cut_off_is_told_only_from_evidence_in_its_last_record(warehouse, last, why):
    land(warehouse, "2025-03-01", "ra.csv", HEADER + "\n" + accident_rows(3) + last, feed=ACCIDENTS)
    (row,) = load_files(ACCIDENTS, runs.landed_files(ACCIDENTS, date(2025, 3, 1), date(2025, 3, 1), warehouse))
    assert (row.rows_in, row.rows_published, row.rows_quarantined) == (4, 3, 1)
    ((line, reason),) = query(warehouse, "select _source_line, _reason from quarantine.safety__road_accidents")
    assert line == 5 and reason.startswith(f"truncated: the file ends inside this record (no line break after "
                                           f"line 5; {why}): the export was cut off")


def test_a_bare_csv_cut_inside_a_utf8_character_is_told_truncated(warehouse):
    cut = (HEADER + "\n" + accident_rows(3) + "RA-9,2025-03-01 08:09:00,710110000,injury,1,0,2,проспект").encode()[:-1]
    land(warehouse, "2025-03-01", "ra.csv", cut, feed=ACCIDENTS)
    (row,) = load_files(ACCIDENTS, [warehouse / "landing" / ACCIDENTS / "2025-03-01" / "ra.csv"])
    assert (row.rows_in, row.rows_published, row.rows_quarantined) == (4, 3, 1)
    ((reason,),) = query(warehouse, "select _reason from quarantine.safety__road_accidents")
    assert reason.startswith("truncated: the file ends inside this record")


def test_a_bare_csv_whose_whole_last_record_lacks_its_line_break_publishes_it(warehouse):
    path = land(warehouse, "2025-03-01", "ra.csv", HEADER + "\n" + accident_rows(4).rstrip("\n"), feed=ACCIDENTS)
    (row,) = load_files(ACCIDENTS, [path])
    assert (row.rows_in, row.rows_published, row.rows_quarantined) == (4, 4, 0)


def test_a_gtfs_zip_as_the_reference_allows_publishes_and_quarantines_only_broken_records(warehouse):
    """BOM, CRLF, LF, mixed line ends, a blank line, members without a final line break, records
    omitting trailing optional fields; a record with more fields than its header and one omitting
    a required value are the only ones quarantined."""
    land(warehouse, DAY, "qala_transit.zip", zipped(FIXTURES / "gtfs" / "reference_allowances"), feed=GTFS)
    (row,) = load_day(warehouse, GTFS)
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == (PUBLISHED, 12, 10, 2)
    assert quarantined(warehouse, "transport__gtfs_static__stops") == [
        ("stops.txt", 4, "format", "TOO MANY COLUMNS: Expected Number of Columns: 6 Found: 7")]
    assert quarantined(warehouse, "transport__gtfs_static__stop_times") == [
        ("stop_times.txt", 4, "required", "required: stop_sequence is empty")]
    assert query(warehouse, "select agency_id, agency_name from silver.transport__gtfs_static__agency") == [
        ("QT", "Qala Transit")]  # the BOM is no part of the first column's name
    assert query(warehouse, "select trip_id, stop_id, stop_sequence, shape_dist_traveled, _source_line "
                            "from silver.transport__gtfs_static__stop_times order by _source_line") == [
        ("T1", "S1", 1, None, 2), ("T1", "S2", 2, 1.2, 3), ("T2", "S2", 2, None, 5)]
    assert "3 record(s) (stop_times) omit trailing optional fields" in row.reason
    assert "1 record(s) (trips) omit trailing optional fields" in row.reason


def test_a_damaged_zip_member_is_a_zip_error_never_a_cut_off_record(warehouse):
    data = bytearray(zipped(FIXTURES / "gtfs" / "reference_allowances"))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("stop_times.txt")
    data[info.header_offset + 30 + len(info.filename) + 5] ^= 0xFF  # a byte of the member's data
    land(warehouse, DAY, "qala_transit.zip", bytes(data), feed=GTFS)
    (row,) = load_day(warehouse, GTFS)
    assert row.status == "failed" and "stop_times.txt cannot be read" in row.reason


def test_an_export_without_a_manifest_reads_each_resource_by_its_own_type(warehouse):
    for path in sorted((FIXTURES / "fhir" / "no_manifest").iterdir()):
        land(warehouse, DAY, path.name, path.read_bytes(), feed=FHIR)
    rows = {Path(r.source_file).name: r for r in load_day(warehouse, FHIR)}
    assert_accounted(warehouse, FHIR, list(rows.values()))
    assert {n: (r.status, r.rows_in, r.rows_skipped) for n, r in rows.items()} == {
        "Patient.000.ndjson": (PUBLISHED, 2, 0),
        "export_2.ndjson": (PUBLISHED, 2, 0),  # an Encounter and a Patient, whatever the file's name
        "Observation.000.ndjson": (PUBLISHED, 0, 2),
        "log.ndjson": (NOT_READ, 0, 0), "desktop.ini": (NOT_READ, 0, 0)}
    assert rows["export_2.ndjson"].tables == {"patient": {"in": 1, "published": 1, "quarantined": 0},
                                              "encounter": {"in": 1, "published": 1, "quarantined": 0}}
    assert rows["log.ndjson"].reason.endswith("log.ndjson: not read: NDJSON whose first record is no FHIR resource "
                                              "(no resourceType): not an export file")
    assert query(warehouse, "select count(*) from silver.health__fhir_bulk__patient") == [(3,)]


def test_a_bulk_publish_manifest_reads_the_files_it_lists_and_no_other(warehouse):
    for path in sorted((FIXTURES / "fhir" / "bulk_publish").iterdir()):
        land(warehouse, DAY, path.name, path.read_bytes(), feed=FHIR)
    rows = {Path(r.source_file).name: r for r in load_day(warehouse, FHIR)}
    assert_accounted(warehouse, FHIR, list(rows.values()))
    assert set(rows) == {"manifest.json", "patient_old.ndjson"}
    manifest = rows["manifest.json"]
    assert (manifest.status, manifest.rows_in, manifest.skipped) == (
        PUBLISHED, 2, {"Observation": 1, "OperationOutcome": 1})
    assert "the server reported 1 OperationOutcome(s) (1 × warning/processing)" in manifest.reason
    assert rows["patient_old.ndjson"].status == NOT_READ
    assert "an NDJSON file that manifest.json does not list: not part of that export" in rows["patient_old.ndjson"].reason


def test_a_manifest_naming_a_file_that_did_not_land_fails_that_manifest(warehouse):
    folder = FIXTURES / "fhir" / "bulk_publish"
    for path in sorted(folder.iterdir()):
        if path.name != "observation_1.ndjson":  # a type Qala does not read, but the manifest names it
            land(warehouse, DAY, path.name, path.read_bytes(), feed=FHIR)
    rows = {Path(r.source_file).name: r for r in load_day(warehouse, FHIR)}
    assert rows["manifest.json"].status == "failed"
    assert rows["manifest.json"].reason.endswith(
        "manifest.json: [manifest] output[1] (Observation) lists observation_1.ndjson, which is not in the folder "
        "beside the manifest: the export was not fully downloaded")


def test_a_oneroster_1_1_vendor_set_with_a_header_only_member_lacking_a_column_loads_the_others(warehouse):
    land(warehouse, DAY, "vendor.zip", zipped(FIXTURES / "oneroster" / "v1p1_vendor"), feed=ROSTER)
    (row,) = load_day(warehouse, ROSTER)
    assert (row.status, row.rows_in, row.rows_published) == (PUBLISHED, 6, 6)
    assert set(row.tables) == {"orgs", "classes", "users", "enrollments"}
    assert row.reason == ("academicSessions.csv is marked bulk but holds no records: as a bulk it would empty the table; "
                          "users.csv: vendor extension column(s) kept out of silver: ext_vendor_house")
    assert query(warehouse, "select role, org_sourced_ids from silver.education__oneroster__users "
                            "order by _source_line") == [("teacher", "sch-1"), ("student", "sch-1")]


def test_a_oneroster_1_2_set_with_blank_modes_and_metadata_columns_quarantines_only_the_bad_date(warehouse):
    land(warehouse, DAY, "roster.zip", zipped(FIXTURES / "oneroster" / "v1p2_blank_modes"), feed=ROSTER)
    (row,) = load_day(warehouse, ROSTER)
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == (PUBLISHED, 7, 6, 1)
    assert quarantined(warehouse, "education__oneroster__users") == [
        ("users.csv", 3, "type", 'type: date_last_modified must be TIMESTAMPTZ, got "01.03.2025"')]
    assert "manifest.csv leaves file.enrollments blank (line 11): taken as absent" in row.reason
    assert "orgs.csv: vendor extension column(s) kept out of silver: metadata.region" in row.reason
    assert "schema drift" not in row.reason


# --- every landed file accounted for ---------------------------------------------------------------


STRAYS = {"desktop.ini": b"[.ShellClassInfo]\r\n", ".DS_Store": b"\x00\x00\x00\x01Bud1",
          "accidents.csv.part": b"accident_id,occ", "README.txt": b"exported by hand\n", "export.xlsx": b"PK\x03\x04"}


def test_a_landing_folder_with_stray_files_publishes_the_good_ones_and_names_every_stray(warehouse):
    land(warehouse, "2025-03-01", "a.csv", HEADER + "\n" + accident_rows(5), feed=ACCIDENTS)
    for name, data in STRAYS.items():
        land(warehouse, "2025-03-01", name, data, feed=ACCIDENTS)
    day = date(2025, 3, 1)
    rows = load_files(ACCIDENTS, runs.landed_files(ACCIDENTS, day, day, warehouse), run_id="strays", root=warehouse)
    statuses = {Path(r.source_file).name: r.status for r in rows}
    assert statuses == {"a.csv": PUBLISHED, **{name: NOT_READ for name in STRAYS}}
    ledger = query(warehouse, "select source_file, status, reason, bytes from ops.load_ledger where status = 'not_read' "
                              "order by 1")
    assert [(Path(f).name, b) for f, _, _, b in ledger] == sorted((n, len(d)) for n, d in STRAYS.items())
    assert all(reason == f"{f}: not read: not a file this feed reads (its contract takes *.csv)"
               for f, _, reason, _ in ledger)
    # What the run's `check` says: nothing fails, and every stray is named.
    failures, remarks = runs.verdict(ACCIDENTS, "strays", day, day, warehouse)
    assert failures == []
    assert remarks[0] == f"{ACCIDENTS}: {len(STRAYS)} landed file(s) this feed does not read:"
    assert all(any(name in remark for remark in remarks) for name in STRAYS)


def test_a_landed_file_without_a_ledger_row_fails_the_check_naming_it(warehouse):
    land(warehouse, "2025-03-01", "a.csv", HEADER + "\n" + accident_rows(5), feed=ACCIDENTS)
    day = date(2025, 3, 1)
    load_files(ACCIDENTS, runs.landed_files(ACCIDENTS, day, day, warehouse), run_id="late", root=warehouse)
    land(warehouse, "2025-03-01", "b.csv", HEADER + "\n" + accident_rows(5, prefix="RB"), feed=ACCIDENTS)  # after the load
    failures, _ = runs.verdict(ACCIDENTS, "late", day, day, warehouse)
    assert failures == [f"{ACCIDENTS}: 1 landed file(s) not published or not accounted for:",
                        f"  no ledger row: landing/{ACCIDENTS}/2025-03-01/b.csv"]


def test_the_files_a_manifest_lists_are_accounted_for_by_its_row_and_travel_with_it(warehouse, monkeypatch):
    folder = FIXTURES / "fhir" / "bulk_publish"
    for path in folder.iterdir():
        land(warehouse, DAY, path.name, path.read_bytes(), feed=FHIR)
    land(warehouse, "2025-03-04", "Patient.000.ndjson", (FIXTURES / "fhir" / "no_manifest" / "Patient.000.ndjson")
         .read_bytes(), feed=FHIR)
    files = runs.landed_files(FHIR, date(2025, 3, 3), date(2025, 3, 4), warehouse)
    # A history run's load tasks never split a day: a manifest and its files load together.
    monkeypatch.setattr(runs, "MAX_LOAD_TASKS", 2)
    groups = runs.group_files(files, date(2025, 3, 3), date(2025, 3, 4))
    assert [sorted(Path(f).name for f in g) for g in groups] == [
        sorted(p.name for p in folder.iterdir()), ["Patient.000.ndjson"]]
    rows = load_files(FHIR, files, run_id="history", root=warehouse)
    assert sorted(Path(r.source_file).name for r in rows) == ["Patient.000.ndjson", "manifest.json",
                                                             "patient_old.ndjson"]
    assert runs.verdict(FHIR, "history", date(2025, 3, 3), date(2025, 3, 4), warehouse)[0] == []


def test_files_with_mixed_line_ends_load_beside_others_of_the_same_header(warehouse):
    """Several files of a day are read in one scan; one that mixes CRLF and LF (which DuckDB's
    strict parser refuses in a shared scan) is read alone, and every record is published."""
    rows = accident_rows(6).splitlines()
    land(warehouse, "2025-03-01", "a.csv", HEADER + "\n" + "\n".join(rows[:2]) + "\n", feed=ACCIDENTS)
    land(warehouse, "2025-03-01", "b.csv", HEADER + "\r\n" + rows[2] + "\r\n" + rows[3] + "\n", feed=ACCIDENTS)
    land(warehouse, "2025-03-01", "c.csv", HEADER + "\n" + "\n".join(rows[4:]) + "\n", feed=ACCIDENTS)
    day = date(2025, 3, 1)
    loaded = load_files(ACCIDENTS, runs.landed_files(ACCIDENTS, day, day, warehouse))
    assert [(Path(r.source_file).name, r.rows_published) for r in loaded] == [("a.csv", 2), ("b.csv", 2), ("c.csv", 2)]
    assert query(warehouse, "select count(*) from silver.safety__road_accidents where street like '%\r%'") == [(0,)]


def test_a_symbolic_link_and_a_pipe_in_landing_are_never_opened_and_are_accounted_for(warehouse, tmp_path):
    import os

    land(warehouse, "2025-03-01", "a.csv", HEADER + "\n" + accident_rows(2), feed=ACCIDENTS)
    outside = tmp_path / "secret.csv"
    outside.write_text(HEADER + "\n" + accident_rows(3, prefix="XX"))
    folder = warehouse / "landing" / ACCIDENTS / "2025-03-01"
    (folder / "b.csv").symlink_to(outside)
    os.mkfifo(folder / "c.csv")  # reading it would wait for ever
    day = date(2025, 3, 1)
    rows = load_files(ACCIDENTS, runs.landed_files(ACCIDENTS, day, day, warehouse), run_id="links", root=warehouse)
    assert {Path(r.source_file).name: (r.status, r.sha256 is None) for r in rows} == {
        "a.csv": (PUBLISHED, False), "b.csv": (NOT_READ, True), "c.csv": (NOT_READ, True)}
    assert query(warehouse, "select count(*) from silver.safety__road_accidents where accident_id like 'XX%'") == [(0,)]
    assert runs.verdict(ACCIDENTS, "links", day, day, warehouse)[0] == []
