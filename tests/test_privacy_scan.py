"""The privacy audit reads every text column of a Parquet file, lists of text included; and no raw
personal value that the simulator landed in the registers of three areas reaches silver."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from pathlib import Path

import duckdb

from qala_devkit.simulate import simulate
from tests.conftest import query
from transforms.contract import load_contract
from transforms.load import load_files
from transforms.privacy import scan_files, scan_lake


def _iin(first11: str) -> str:
    """A 12-digit IIN with a right check digit (the official algorithm)."""
    digits = [int(c) for c in first11]
    check = sum(w * d for w, d in zip(range(1, 12), digits)) % 11
    if check == 10:
        check = sum(w * d for w, d in zip([3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2], digits)) % 11
    assert check != 10
    return first11 + str(check)


def test_an_iin_inside_a_list_column_is_found(tmp_path: Path):
    iin = _iin("90010130012")
    clean, leaky = tmp_path / "clean.parquet", tmp_path / "leaky.parquet"
    con = duckdb.connect()
    con.execute(f"copy (select 'KZ' as region, ['b1', 'b2'] as batch_ids, 1.5 as actual) to '{clean}'")
    con.execute(f"copy (select 'KZ' as region, ['b1', 'child {iin}'] as batch_ids) to '{leaky}'")
    con.close()
    assert scan_files([clean]) == []
    (finding,) = scan_files([leaky])
    assert (finding.column, finding.kind, finding.values) == ("batch_ids", "iin", 1)
    assert iin not in str(finding)  # the audit never prints the value


SERGEK = "safety/sergek_violations"
OPEN311 = "housing/open311_requests"
PAYMENTS = "housing/utility_payments"
CAMERAS = "safety/camera_registry"
FEEDS = ["housing/street_lighting", PAYMENTS, OPEN311, CAMERAS, SERGEK, "programme/public_services",
         "programme/events", "programme/alatau_projects", "programme/alatau_workforce"]


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
