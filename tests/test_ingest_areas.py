"""Housing, safety (Sergek) and programme feeds through the one load path: contracts, the JSON
reader (JSON Lines, Open311 GeoReport v2), bad inputs, and the simulator's days end to end."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from tests.conftest import land, query, valid_iin
from transforms.contract import load_contract
from transforms.load import LoadFailure, load_files
from transforms.privacy import scan_lake
from qala_devkit.simulate import simulate

SERGEK = "safety/sergek_violations"
OPEN311 = "housing/open311_requests"
CAMERAS = "safety/camera_registry"
PAYMENTS = "housing/utility_payments"
FEEDS = ["housing/street_lighting", PAYMENTS, OPEN311, CAMERAS, SERGEK, "programme/public_services",
         "programme/events", "programme/alatau_projects", "programme/alatau_workforce"]


def violation(i: int, **fields) -> dict:
    event = {"event_id": f"SRG-ALA-00001-20250301-{i:05d}", "camera_id": "SRG-ALA-00001",
             "detected_at": f"2025-03-01T08:{i:02d}:00+05:00", "plate": f"{100 + i}ABC02",
             "violation_type": "red_light", "speed_kmh": None, "speed_limit_kmh": None,
             "lat": 43.25, "lon": 76.9, "kato_code": "751100000"}
    return event | fields


def jsonl(*events: dict) -> str:
    return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)


def request(i: int, **fields) -> dict:
    """A service request with every field of the GeoReport v2 response, in the spec's order."""
    item = {"service_request_id": f"7520250301{i:06d}", "status": "open", "status_notes": None,
            "service_name": "Нет отопления", "service_code": "heating",
            "description": f"Нет отопления. Мой номер +7 701 555 {i:02d} {i:02d}",
            "agency_responsible": "Управление энергетики", "service_notice": "Срок устранения — 24 часа",
            "requested_datetime": f"2025-03-01T09:{i:02d}:00+05:00", "updated_datetime": f"2025-03-01T09:{i:02d}:00+05:00",
            "expected_datetime": "2025-03-02T09:00:00+05:00", "address": f"г. Алматы, ул. Абая, {i + 1}",
            "address_id": f"19{i:014d}", "zipcode": "050000", "lat": 43.24, "long": 76.91, "media_url": None}
    return item | fields


CAMERA_HEADER = "camera_id,kato_code,city,address,lat,lon,camera_type,speed_limit_kmh,installed_on,decommissioned_on,status\n"


def camera_rows(n: int) -> str:
    return "".join(f"SRG-ALA-{i:05d},751100000,Алматы,\"проспект Абая, {i}\",43.2{i % 10},76.9,speed,60,2020-01-01,,active\n"
                   for i in range(1, n + 1))


PAYMENT_HEADER = "payment_id,account_id,payer_iin,payer_name,kato_code,service,period,amount_kzt,paid_at,channel\n"


def payment_rows(n: int) -> str:
    return "".join(f"2025030100000{i:02d},114000000{i:02d},{valid_iin(i)},Әбенова Гүлнәр Серікқызы,114020100,gas,2025-02,"
                   f"{1000 + i}.50,2025-03-01 10:{i:02d}:00,{('auto_debit', 'online', 'bank', 'cash')[i % 4]}\n"
                   for i in range(1, n + 1))


def failure_of(feed: str, path: Path) -> str:
    with pytest.raises(LoadFailure) as failure:
        load_files(feed, [path], run_id="r")
    (row,) = failure.value.rows
    assert row.status == "failed" and (row.rows_in, row.rows_published) == (0, 0)
    return str(failure.value)


# --- JSON Lines ------------------------------------------------------------------------------


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


# --- Open311 GeoReport v2 --------------------------------------------------------------------


def test_an_open311_file_that_is_not_json_fails_naming_the_file_and_line(warehouse):
    body = "[\n" + json.dumps(request(1), ensure_ascii=False) + ",\n" \
        + json.dumps(request(2), ensure_ascii=False).replace('"status": "open",', '"status": "open",,') + "\n]\n"
    path = land(warehouse, "2025-03-01", "requests_2025-03-01.json", body, feed=OPEN311)
    message = failure_of(OPEN311, path)
    assert "landing/housing/open311_requests/2025-03-01/requests_2025-03-01.json, line 3: [format]" in message
    assert "not valid JSON" in message and "line 3, column" in message
    assert "+7 701" not in message  # the parser's quote of the input is never passed on


def test_an_open311_xml_response_fails_saying_so(warehouse):
    body = '<?xml version="1.0" encoding="utf-8"?>\n<service_requests><request></request></service_requests>\n'
    path = land(warehouse, "2025-03-01", "requests.json", body, feed=OPEN311)
    assert "requests.json, line 1: [format] the file is XML, not JSON" in failure_of(OPEN311, path)


def test_an_open311_error_response_fails_with_the_servers_error(warehouse):
    path = land(warehouse, "2025-03-01", "requests.json", '[{"code":403,"description":"Invalid api_key"}]', feed=OPEN311)
    assert "requests.json, line 1: [open311 error]" in (message := failure_of(OPEN311, path))
    assert "403 Invalid api_key" in message


# The GeoReport v2 wiki's own example response (numbers where this server sends strings).
SPEC_EXAMPLE = """[
  {
    "service_request_id":638344,
    "status":"closed",
    "status_notes":"Duplicate request.",
    "service_name":"Sidewalk and Curb Issues",
    "service_code":"006",
    "description":null,
    "agency_responsible":null,
    "service_notice":null,
    "requested_datetime":"2010-04-14T06:37:38-08:00",
    "updated_datetime":"2010-04-14T06:37:38-08:00",
    "expected_datetime":"2010-04-15T06:37:38-08:00",
    "address":"8TH AVE and JUDAH ST",
    "address_id":545483,
    "zipcode":94122,
    "lat":37.762221815,
    "long":-122.4651145,
    "media_url":"http://city.gov.s3.amazonaws.com/requests/media/638344.jpg"
  },
  {
    "service_request_id":638349,
    "status":"open",
    "status_notes":null,
    "service_name":"Sidewalk and Curb Issues",
    "service_code":"006",
    "description":null,
    "agency_responsible":null,
    "service_notice":null,
    "requested_datetime":"2010-04-19T06:37:38-08:00",
    "updated_datetime":"2010-04-19T06:37:38-08:00",
    "expected_datetime":"2010-04-19T06:37:38-08:00",
    "address":"8TH AVE and JUDAH ST",
    "address_id":545483,
    "zipcode":94122,
    "lat":37.762221815,
    "long":-122.4651145,
    "media_url":"http://city.gov.s3.amazonaws.com/requests/media/638349.jpg"
  }
]
"""


@pytest.mark.parametrize("form", ["array", "wrapped"])
def test_the_spec_example_response_loads_bare_or_wrapped_in_service_requests(warehouse, form):
    body = SPEC_EXAMPLE if form == "array" else '{"service_requests":\n' + SPEC_EXAMPLE + "}\n"
    path = land(warehouse, "2010-04-20", "requests.json", body, feed=OPEN311)
    (row,) = load_files(OPEN311, [path], run_id="r")
    # The spec's example is read whole; its requests are in San Francisco, which no akimat serves:
    # both go to quarantine by the bounding-box rule (and by no format rule).
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 2, 0, 2)
    shift = 0 if form == "array" else 1
    rows = query(warehouse, "select service_request_id, status, service_code, zipcode, requested_datetime, lat, long, "
                            "_source_line, _rule from quarantine.housing__open311_requests order by 1")
    assert [(*r[:5], float(r[5]), float(r[6]), *r[7:]) for r in rows] == [
        ("638344", "closed", "006", "94122", "2010-04-14T06:37:38-08:00", 37.762221815, -122.4651145, 2 + shift,
         "expect_column_values_to_be_between(lat)"),
        ("638349", "open", "006", "94122", "2010-04-19T06:37:38-08:00", 37.762221815, -122.4651145, 21 + shift,
         "expect_column_values_to_be_between(lat)")]
    columns = {c for (c,) in query(warehouse, "select column_name from information_schema.columns "
                                              "where table_name = 'housing__open311_requests' and table_schema = 'quarantine'")}
    assert not columns & {"description", "status_notes", "address"}
    address_ids = query(warehouse, "select distinct address_id from quarantine.housing__open311_requests")
    assert len(address_ids) == 1 and re.fullmatch("[0-9a-f]{64}", address_ids[0][0])


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


# --- duplicate keys, wrong types, encodings --------------------------------------------------


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


def test_a_windows_1251_billing_export_loads_where_the_contract_allows_it(warehouse):
    content = (PAYMENT_HEADER + payment_rows(8).replace("Әбенова Гүлнәр Серікқызы", "Абенова Гулнар Сериккызы")).encode("cp1251")
    path = land(warehouse, "2025-03-01", "utility_payments_2025-03-01.csv", content, feed=PAYMENTS)
    (row,) = load_files(PAYMENTS, [path], run_id="r")
    assert (row.encoding, row.rows_published) == ("windows-1251", 8)
    channels = query(warehouse, "select channel, count(*) from silver.housing__utility_payments group by 1 order by 1")
    assert channels == [("auto_debit", 2), ("bank", 2), ("cash", 2), ("online", 2)]
    ids = query(warehouse, "select payer_iin, account_id from silver.housing__utility_payments")
    assert all(re.fullmatch("[0-9a-f]{64}", v) for pair in ids for v in pair)


def test_a_windows_1251_file_is_refused_where_the_contract_allows_only_utf_8(warehouse):
    content = (CAMERA_HEADER + camera_rows(3)).encode("cp1251")
    path = land(warehouse, "2025-03-01", "camera_registry_2025-03-01.csv", content, feed=CAMERAS)
    assert "camera_registry_2025-03-01.csv: [encoding] not valid UTF-8" in failure_of(CAMERAS, path)
    events = land(warehouse, "2025-03-01", "sergek.jsonl",
                  jsonl(violation(1), violation(2, camera_id="Камера")).encode("cp1251"), feed=SERGEK)
    message = failure_of(SERGEK, events)
    assert "sergek.jsonl, line 2: [encoding] not valid UTF-8" in message and "RFC 8259" in message


# --- the simulator's days, end to end --------------------------------------------------------


# A Kazakh mobile number as the requesters write it: +7 7XX XXX XX XX, +77XXXXXXXXX or 87XXXXXXXXX.
PHONE = re.compile(r"(?<![0-9A-Za-z])(\+7 ?7\d\d ?\d{3} ?\d\d ?\d\d|87\d{9})(?!\d)")


def landed_personal_data(root: Path) -> tuple[set[str], int]:
    """Every personal value the simulator put in the landed files of these feeds (identifiers,
    BINs, names, addresses, free text), and how many descriptions carry a phone number."""
    values: set[str] = set()
    phones = 0
    for path in (root / "landing" / PAYMENTS).rglob("*.csv"):
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1251")
        for row in csv.DictReader(io.StringIO(text)):
            values |= {row["account_id"], row["payer_iin"], row["payer_name"]}
    for path in (root / "landing" / "programme/alatau_workforce").rglob("*.csv"):
        for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))):
            values |= {row[k] for k in ("employer_bin", "employee_iin", "passport_no", "last_name", "first_name", "patronymic")}
    for path in (root / "landing" / "programme/alatau_projects").rglob("*.csv"):
        values |= {row["investor_bin"] for row in csv.DictReader(io.StringIO(path.read_text(encoding="utf-8")))}
    for path in (root / "landing" / SERGEK).rglob("*.jsonl"):
        values |= {json.loads(line)["plate"] for line in path.read_text(encoding="utf-8").splitlines()}
    for path in (root / "landing" / OPEN311).rglob("*.json"):
        for item in json.loads(path.read_text(encoding="utf-8")):
            values |= {item["description"], item["status_notes"], item["address"], item["address_id"]}
            phones += bool(item["description"] and PHONE.search(item["description"]))
    return {v for v in values if v}, phones


def test_three_simulated_days_of_every_feed_load_whole_with_no_raw_personal_data(warehouse):
    # Three days across the 1st of a month (the workforce report); the gas payments at a scale
    # that never leaves a day without a payment (min_rows).
    written = simulate(warehouse, date(2025, 1, 31), 3, scale=0.02, scales={PAYMENTS: 0.2}, seed=1, feeds=FEEDS,
                       defect_rate=0, workers=1)
    personal, phones = landed_personal_data(warehouse)
    assert phones > 0 and len(personal) > 500  # the check below has something to find
    for feed in FEEDS:
        contract = load_contract(feed)
        paths = sorted((warehouse / "landing" / feed).glob("*/" + contract.format["files"]))
        assert paths, feed
        rows = load_files(feed, paths, run_id="e2e")
        assert all(r.status == "published" and r.rows_in == r.rows_published + r.rows_quarantined for r in rows)
        table = contract.single.silver
        (silver,), = query(warehouse, f"select count(*) from silver.{table}")
        (quarantined,), = query(warehouse, f"select count(*) from quarantine.{table}")
        # At defect rate 0 every simulated record is published, once.
        assert (silver, quarantined) == (written[feed], 0), feed
        assert sum(r.rows_published for r in rows) == written[feed]
        texts = [c for (c,) in query(warehouse, "select column_name from information_schema.columns where table_schema = "
                                                "'silver' and table_name = ? and data_type = 'VARCHAR'", [table])]
        for column in texts:
            values = {v for (v,) in query(warehouse, f'select distinct "{column}" from silver.{table}') if v}
            assert not values & personal, f"raw personal data in silver.{table}.{column}"
            assert not any(PHONE.search(v) for v in values), f"a phone number in silver.{table}.{column}"
    # The lake's own audit of every Parquet file: no IIN, phone number or plate.
    assert [str(f) for f in scan_lake(warehouse)] == []
