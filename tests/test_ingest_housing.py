"""Housing feeds through the one load path: Open311 GeoReport v2 service requests (the JSON
reader) and the Aqkol gas payments' CSV; bad inputs of each."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import failure_of, land, query, valid_iin
from transforms.load import load_files

OPEN311 = "housing/open311_requests"
PAYMENTS = "housing/utility_payments"


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


PAYMENT_HEADER = "payment_id,account_id,payer_iin,payer_name,kato_code,service,period,amount_kzt,paid_at,channel\n"


def payment_rows(n: int) -> str:
    return "".join(f"2025030100000{i:02d},114000000{i:02d},{valid_iin(i)},Әбенова Гүлнәр Серікқызы,114020100,gas,2025-02,"
                   f"{1000 + i}.50,2025-03-01 10:{i:02d}:00,{('auto_debit', 'online', 'bank', 'cash')[i % 4]}\n"
                   for i in range(1, n + 1))


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


def test_a_windows_1251_billing_export_loads_where_the_contract_allows_it(warehouse):
    content = (PAYMENT_HEADER + payment_rows(8).replace("Әбенова Гүлнәр Серікқызы", "Абенова Гулнар Сериккызы")).encode("cp1251")
    path = land(warehouse, "2025-03-01", "utility_payments_2025-03-01.csv", content, feed=PAYMENTS)
    (row,) = load_files(PAYMENTS, [path], run_id="r")
    assert (row.encoding, row.rows_published) == ("windows-1251", 8)
    channels = query(warehouse, "select channel, count(*) from silver.housing__utility_payments group by 1 order by 1")
    assert channels == [("auto_debit", 2), ("bank", 2), ("cash", 2), ("online", 2)]
    ids = query(warehouse, "select payer_iin, account_id from silver.housing__utility_payments")
    assert all(re.fullmatch("[0-9a-f]{64}", v) for pair in ids for v in pair)
