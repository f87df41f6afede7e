"""Safety feeds through the one load path: Sergek's JSON Lines camera events and the camera
registry's CSV; bad inputs of each, and two load-path rules shown on a safety feed beside another."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from tests.conftest import failure_of, land, query
from transforms.load import load_files

SERGEK = "safety/sergek_violations"
CAMERAS = "safety/camera_registry"


def violation(i: int, **fields) -> dict:
    event = {"event_id": f"SRG-ALA-00001-20250301-{i:05d}", "camera_id": "SRG-ALA-00001",
             "detected_at": f"2025-03-01T08:{i:02d}:00+05:00", "plate": f"{100 + i}ABC02",
             "violation_type": "red_light", "speed_kmh": None, "speed_limit_kmh": None,
             "lat": 43.25, "lon": 76.9, "kato_code": "751100000"}
    return event | fields


def jsonl(*events: dict) -> str:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)


CAMERA_HEADER = "camera_id,kato_code,city,address,lat,lon,camera_type,speed_limit_kmh,installed_on,decommissioned_on,status\n"


def camera_rows(n: int) -> str:
    return "".join(f"SRG-ALA-{i:05d},751100000,Алматы,\"проспект Абая, {i}\",43.2{i % 10},76.9,speed,60,2020-01-01,,active\n"
                   for i in range(1, n + 1))


def test_a_line_that_is_not_json_is_one_quarantined_record_and_the_rest_publish(warehouse):
    body = jsonl(violation(1), violation(2)) + '{"event_id": "SRG-ALA-00001-20250301-00003", "plate": "103ABC02",\n' \
        + jsonl(violation(4), violation(5))
    path = land(warehouse, "2025-03-01", "sergek_violations_almaty_2025-03-01.jsonl", body, feed=SERGEK)
    (row,) = load_files(SERGEK, [path], run_id="r")
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 5, 4, 1)
    assert query(warehouse, "select _source_line from silver.safety__sergek_violations order by 1") == [(1,), (2,), (4,), (5,)]
    (line, rule, reason, raw), = query(warehouse, "select _source_line, _rule, _reason, _raw_line "
                                                  "from quarantine.safety__sergek_violations")
    assert (line, rule, raw) == (3, "format", None)  # the broken line may hold a plate: not kept
    assert "not valid JSON" in reason and "103ABC02" not in reason
    # Plates reach silver only as HMAC-SHA256 hex; times are instants.
    plates = [p for (p,) in query(warehouse, "select plate from silver.safety__sergek_violations")]
    assert all(re.fullmatch("[0-9a-f]{64}", p) for p in plates)
    first, = query(warehouse, "select detected_at from silver.safety__sergek_violations where _source_line = 1")
    assert first[0] == datetime(2025, 3, 1, 3, 1, tzinfo=timezone.utc)


def test_an_empty_jsonl_day_between_full_ones_loads_in_one_batch(warehouse):
    """A small city's quiet day (0 bytes) among full days, as in a history run's batch."""
    paths = [land(warehouse, day, "sergek.jsonl", body, feed=SERGEK)
             for day, body in (("2025-03-01", jsonl(violation(1), violation(2))), ("2025-03-02", ""),
                               ("2025-03-03", jsonl(violation(3))), ("2025-03-04", ""))]
    rows = load_files(SERGEK, paths, run_id="r")
    assert [(r.status, r.rows_in, r.rows_published) for r in rows] == [
        ("published", 2, 2), ("published", 0, 0), ("published", 1, 1), ("published", 0, 0)]
    assert query(warehouse, "select count(*) from silver.safety__sergek_violations") == [(3,)]


def test_a_jsonl_file_in_which_no_line_is_an_object_fails_naming_the_line(warehouse):
    path = land(warehouse, "2025-03-01", "sergek.jsonl", json.dumps([violation(1), violation(2)]) + "\n", feed=SERGEK)
    message = failure_of(SERGEK, path)
    assert "landing/safety/sergek_violations/2025-03-01/sergek.jsonl, line 1: [format]" in message
    assert "not JSON Lines" in message and "a JSON array" in message


@pytest.mark.parametrize("feed", ["programme/alatau_workforce", SERGEK])
def test_a_required_column_missing_from_the_whole_file_fails_naming_it(warehouse, feed):
    if feed == SERGEK:
        body = jsonl(*[{k: v for k, v in violation(i).items() if k != "plate"} for i in (1, 2)])
        name, missing = "sergek.jsonl", "plate ($.plate)"
    else:
        body = ("employer_bin,employer_name,employee_iin,passport_no,last_name,first_name,patronymic,citizenship,"
                "position_category,hired_on,left_on\n"
                "161050674199,Tengri Development,880101300123,,Есенов,Бауыржан,Ерланұлы,KZ,managerial,2023-02-16,\n")
        name, missing = "alatau_workforce_2025-02.csv", "position_level"
    path = land(warehouse, "2025-03-01", name, body, feed=feed)
    message = failure_of(feed, path)
    assert f"{name}, line" in message and "[required columns]" in message and missing in message


def test_a_camera_listed_twice_in_a_snapshot_is_quarantined_naming_the_first(warehouse):
    rows = camera_rows(4)
    path = land(warehouse, "2025-03-01", "camera_registry_2025-03-01.csv",
                CAMERA_HEADER + rows + rows.splitlines(keepends=True)[1], feed=CAMERAS)
    (row,) = load_files(CAMERAS, [path], run_id="r")
    assert (row.rows_in, row.rows_published, row.rows_quarantined) == (5, 4, 1)
    assert query(warehouse, "select _source_line, _rule, _reason from quarantine.safety__camera_registry") == [
        (6, "primary key", "primary key: duplicate of line 3")]
    # The same camera in the next day's snapshot is not a duplicate: the key holds within a file.
    again = land(warehouse, "2025-03-02", "camera_registry_2025-03-02.csv", CAMERA_HEADER + rows, feed=CAMERAS)
    (row,) = load_files(CAMERAS, [again], run_id="r2")
    assert (row.rows_published, row.rows_quarantined) == (4, 0)
    assert query(warehouse, "select count(*), count(distinct camera_id) from silver.safety__camera_registry") == [(8, 4)]


def test_values_of_the_wrong_type_quarantine_their_record_alone(warehouse):
    header = "cabinet_id,kato_code,interval_start,interval_minutes,energy_kwh,lamps,burning_hours\n"
    body = (header
            + "ALM-SL-000001,751500000,2025-03-01T00:00:00+05:00,60,15.921,55,1.000\n"
            + "ALM-SL-000002,751500000,2025-03-01T00:00:00+05:00,60,lots,57,1.000\n"
            + "ALM-SL-000003,751500000,yesterday,60,16.1,57,1.000\n"
            + "ALM-SL-000004,751500000,2025-03-01T00:00:00+05:00,sixty,16.1,57,1.000\n")
    feed = "housing/street_lighting"
    path = land(warehouse, "2025-03-01", "street_lighting_2025-03-01.csv", body, feed=feed)
    (row,) = load_files(feed, [path], run_id="r")
    assert (row.rows_published, row.rows_quarantined) == (1, 3)
    assert query(warehouse, "select _source_line, _reason from quarantine.housing__street_lighting order by 1") == [
        (3, 'type: energy_kwh must be DOUBLE, got "lots"'),
        (4, 'type: interval_start must be TIMESTAMPTZ, got "yesterday"'),
        (5, 'type: interval_minutes must be INTEGER, got "sixty"')]
    # In JSON a number sent as a word is the same: one record.
    events = land(warehouse, "2025-03-01", "sergek.jsonl",
                  jsonl(violation(1, violation_type="speeding", speed_kmh="fast", speed_limit_kmh=60), violation(2)), feed=SERGEK)
    (row,) = load_files(SERGEK, [events], run_id="r")
    assert (row.rows_published, row.rows_quarantined) == (1, 1)
    assert query(warehouse, "select _reason from quarantine.safety__sergek_violations") == [
        ('type: speed_kmh must be INTEGER, got "fast"',)]


def test_a_windows_1251_file_is_refused_where_the_contract_allows_only_utf_8(warehouse):
    content = (CAMERA_HEADER + camera_rows(3)).encode("cp1251")
    path = land(warehouse, "2025-03-01", "camera_registry_2025-03-01.csv", content, feed=CAMERAS)
    assert "camera_registry_2025-03-01.csv: [encoding] not valid UTF-8" in failure_of(CAMERAS, path)
    events = land(warehouse, "2025-03-01", "sergek.jsonl",
                  jsonl(violation(1), violation(2, camera_id="Камера")).encode("cp1251"), feed=SERGEK)
    message = failure_of(SERGEK, events)
    assert "sergek.jsonl, line 2: [encoding] not valid UTF-8" in message and "RFC 8259" in message
