"""Rotating the pseudonymisation key (`qala rekey`, transforms/rekey.py) on a real DuckLake through
the real load path: two feeds that share a person identifier (a child's IIN: first-grade
applications and kindergarten queue events) are loaded, the key rotated, and every hashed value
must have moved to the new key while the joins line up as before, in silver and in quarantine;
a rotation killed between feeds completes when run again, equal to a warehouse keyed under the
new key from the start."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import land, query, valid_iin

from transforms import lake
from transforms.load import load_files
from transforms.pseudonymise import (KEY_ENV, NEXT_KEY_ENV, KeyRefused, fingerprint, key_file, next_key_file,
                                     pin_file, rotation, rotation_file)
from transforms.rekey import RekeyRefused, hashed_feeds, rekey

APPS, QUEUE = "education/school_applications", "education/kindergarten_queue"
APP_HEADER = ("application_id,child_iin,child_birth_date,child_name,parent_iin,parent_phone,kato_code,"
              "school_id,submitted_at,channel,status")
QUEUE_HEADER = ("event_id,child_iin,child_birth_date,kato_code,event_type,priority_category,event_at,"
                "kindergarten_id,queue_number,child_name")
TABLES = ("education__school_applications", "education__kindergarten_queue")
LIGHTING = ("cabinet_id,kato_code,interval_start,interval_minutes,energy_kwh,lamps,burning_hours\n"
            "ALM-SL-000001,751500000,2025-03-05T00:00:00+05:00,60,15.921,55,1.000\n")
JOIN = ("select count(*) from silver.education__school_applications a "
        "join silver.education__kindergarten_queue q using (child_iin)")


def child(i: int) -> str:
    return valid_iin(i, born="190418", century="5")


def application(n: int, i: int, day: str, channel: str = "egov") -> str:
    return (f"ZP-{n},{child(i)},2019-04-18,Сейітов Тимур,{valid_iin(i, born='880101')},+7 701 394 31 45,751100000,"
            f"SCH-00002,{day} 09:{n:02d}:00,{channel},submitted\n")


def event(n: int, i: int, day: str, kind: str = "registered") -> str:
    return f"KQ-{day.replace('-', '')}-75-{n:05d}-R,{child(i)},2019-04-18,751100000,{kind},none,{day} 10:{n:02d}:00,,{n},Ахметова Ұлжан\n"


def land_world(root: Path) -> dict[str, list[Path]]:
    """Children 0-3 applied to school (child 4's application is quarantined: unknown channel);
    children 0, 2, 1 and 5 are in the kindergarten queue (child 1's first event is quarantined)."""
    d1, d2 = "2025-03-03", "2025-03-04"
    return {
        APPS: [land(root, d1, f"applications_75_{d1}.csv",
                    APP_HEADER + "\n" + application(1, 0, d1) + application(2, 1, d1) + application(3, 4, d1, "telegram"),
                    feed=APPS),
               land(root, d2, f"applications_75_{d2}.csv",
                    APP_HEADER + "\n" + application(4, 2, d2) + application(5, 3, d2, "in_person"), feed=APPS)],
        QUEUE: [land(root, d1, f"queue_events_75_{d1}.csv",
                     QUEUE_HEADER + "\n" + event(1, 0, d1) + event(2, 2, d1) + event(3, 1, d1, "postponed"), feed=QUEUE),
                land(root, d2, f"queue_events_75_{d2}.csv",
                     QUEUE_HEADER + "\n" + event(1, 1, d2) + event(2, 5, d2), feed=QUEUE)],
    }


def load_world(root: Path) -> None:
    for feed, paths in land_world(root).items():
        load_files(feed, paths, run_id="daily", root=root)


def read(root: Path, queries: dict[str, str]) -> dict[str, list[tuple]]:
    """Several queries on one read-only attach (each attach costs most of a second)."""
    con = lake.connect(root, read_only=True)
    try:
        return {name: con.execute(sql).fetchall() for name, sql in queries.items()}
    finally:
        con.close()


def hashed(root: Path) -> dict[str, list[str]]:
    """Every child_iin value in silver and quarantine, per table."""
    found = read(root, {f"{layer}.{t}": f"select child_iin from {layer}.{t} order by 1"
                        for t in TABLES for layer in ("silver", "quarantine")})
    return {name: [v for (v,) in rows] for name, rows in found.items()}


def outcomes(root: Path) -> dict[str, tuple]:
    """Each file's latest ledger row: status and counts."""
    return {f: tuple(rest) for f, *rest in query(root, """
        select source_file, status, rows_in, rows_published, rows_quarantined from ops.load_ledger
        qualify row_number() over (partition by source_file order by finished_at desc) = 1""")}


def contents(root: Path, before: str = "9999-12-31") -> dict[str, list[tuple]]:
    """silver and quarantine of both tables but for the batch ids, child_iin first (files landed
    before a day)."""
    found = read(root, {f"{layer}.{t}": f"select child_iin, * exclude (_batch_id, child_iin) from {layer}.{t} "
                                         f"where _landing_date < '{before}'"
                        for t in TABLES for layer in ("silver", "quarantine")})
    return {name: sorted(rows, key=repr) for name, rows in found.items()}


def pseudonym(key: str, raw: str) -> str:
    return hmac.new(key.encode(), raw.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def file_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(NEXT_KEY_ENV, raising=False)


def test_rotation_rekeys_every_hashed_value_and_joins_still_line_up(warehouse, file_key):
    load_world(warehouse)
    old_key = key_file(warehouse).read_text().strip()
    before, ledger_before = hashed(warehouse), outcomes(warehouse)
    raws = {pseudonym(old_key, child(i)): child(i) for i in range(6)}
    assert all(v in raws for values in before.values() for v in values)
    assert query(warehouse, JOIN) == [(3,)]  # children 0, 1 and 2

    lines = []
    summary = rekey(warehouse, out=lines.append)

    new_key = key_file(warehouse).read_text().strip()
    assert summary.done and not summary.resumed and new_key != old_key
    assert {f: s["files"] for f, s in summary.feeds.items()} == {f: 2 if f in (APPS, QUEUE) else 0 for f in hashed_feeds()}
    assert summary.feeds[APPS]["rows"] == 5 and summary.feeds[QUEUE]["rows"] == 5
    after = hashed(warehouse)
    # every value moved to the new key, none kept or raw, and is the raw id's HMAC under the new key
    assert {t: sorted(pseudonym(new_key, raws[v]) for v in values) for t, values in before.items()} == after
    assert not set().union(*before.values()) & set().union(*after.values())
    assert not set(raws.values()) & set().union(*after.values())
    assert query(warehouse, JOIN) == [(3,)]
    # the old key is gone from the warehouse's secrets, the rotation's state with it; the new key pinned
    secrets = [p for p in key_file(warehouse).parent.iterdir()]
    assert not any(old_key in p.read_text() for p in secrets)
    assert not next_key_file(warehouse).exists() and not rotation_file(warehouse).exists()
    assert pin_file(warehouse).read_text() == fingerprint(new_key.encode())
    assert oct(key_file(warehouse).stat().st_mode & 0o777) == "0o600"
    # every file's counts as before, its latest row the rotation's
    assert outcomes(warehouse) == ledger_before
    assert {r for (r,) in query(warehouse, """select max_by(run_id, finished_at) from ops.load_ledger
                                              group by source_file""")} == {summary.run_id}

    # a file landed after the rotation joins the re-keyed rows: child 3 enters the queue
    path = land(warehouse, "2025-03-05", "queue_events_75_2025-03-05.csv",
                QUEUE_HEADER + "\n" + event(1, 3, "2025-03-05"), feed=QUEUE)
    (row,) = load_files(QUEUE, [path], run_id="daily-after", root=warehouse)
    assert row.status == "published"
    assert query(warehouse, JOIN) == [(4,)]


def test_an_environment_held_key_is_rotated_only_to_the_key_the_operator_gives(warehouse, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "old-" + "1" * 60)
    monkeypatch.delenv(NEXT_KEY_ENV, raising=False)
    (first, _) = land_world(warehouse)[APPS]
    load_files(APPS, [first], run_id="daily", root=warehouse)
    with pytest.raises(RekeyRefused, match=f"put it in {NEXT_KEY_ENV}"):
        rekey(warehouse, out=lambda _: None)
    assert rotation(warehouse) is None and not pin_file(warehouse).exists()

    new_key = "new-" + "2" * 60
    monkeypatch.setenv(NEXT_KEY_ENV, new_key)
    summary = rekey(warehouse, out=lambda _: None)
    assert summary.done and summary.mode == "env" and summary.feeds[APPS] == {"files": 1, "rows": 3}
    assert hashed(warehouse)["silver.education__school_applications"] == sorted(
        pseudonym(new_key, child(i)) for i in (0, 1))
    # the environment still holds the old key: a load under it is refused, not published unjoinable
    path = land(warehouse, "2025-03-05", "queue_events_75_2025-03-05.csv",
                QUEUE_HEADER + "\n" + event(1, 1, "2025-03-05"), feed=QUEUE)
    with pytest.raises(KeyRefused, match="must hold the new key"):
        load_files(QUEUE, [path], run_id="daily-after", root=warehouse)
    monkeypatch.setenv(KEY_ENV, new_key)
    monkeypatch.delenv(NEXT_KEY_ENV)
    load_files(QUEUE, [path], run_id="daily-after", root=warehouse)
    assert query(warehouse, JOIN) == [(1,)]


def test_a_rotation_killed_between_feeds_completes_when_run_again(warehouse, file_key):
    load_world(warehouse)
    old_key = key_file(warehouse).read_text().strip()
    ledger_before, before = outcomes(warehouse), contents(warehouse)

    # SIGKILL as soon as the first feed (the queue: feeds go in name order) is re-keyed
    child_process = subprocess.Popen(
        [sys.executable, "-u", "-m", "transforms.cli", "rekey"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "QALA_WAREHOUSE": str(warehouse)})
    printed = []
    for line in child_process.stdout:
        printed.append(line)
        if line.startswith(f"  {QUEUE}:"):
            child_process.send_signal(signal.SIGKILL)
            break
    child_process.wait()
    assert child_process.returncode == -signal.SIGKILL, "".join(printed)
    state = rotation(warehouse)
    assert state is not None, "the rotation completed before the kill"
    new_key = next_key_file(warehouse).read_text().strip()
    assert key_file(warehouse).read_text().strip() == old_key and fingerprint(new_key.encode()) == state["new_fingerprint"]
    assert hashed(warehouse)["silver.education__kindergarten_queue"] == sorted(
        pseudonym(new_key, child(i)) for i in (0, 1, 2, 5))
    # meanwhile a load of a feed that hashes is refused, with a ledger row saying why (the
    # rotation loads that file too: it is in the ledger); a feed without personal ids loads
    late = land(warehouse, "2025-03-05", "queue_events_75_2025-03-05.csv",
                QUEUE_HEADER + "\n" + event(1, 3, "2025-03-05"), feed=QUEUE)
    with pytest.raises(KeyRefused, match="rotation .* is in progress"):
        load_files(QUEUE, [late], run_id="daily-during", root=warehouse)
    late_label = f"landing/{QUEUE}/2025-03-05/{late.name}"
    assert outcomes(warehouse)[late_label][:2] == ("failed", 0)
    lighting = land(warehouse, "2025-03-05", "lighting_2025-03-05.csv", LIGHTING, feed="housing/street_lighting")
    (row,) = load_files("housing/street_lighting", [lighting], run_id="daily-during", root=warehouse)
    assert row.status == "published"

    summary = rekey(warehouse, out=lambda _: None)
    assert summary.done and summary.resumed and summary.run_id == state["run_id"]
    assert summary.feeds[QUEUE]["files"] == 1 and summary.feeds[APPS]["files"] == 2
    assert key_file(warehouse).read_text().strip() == new_key and rotation(warehouse) is None
    after = outcomes(warehouse)
    assert after.pop(late_label) == ("published", 1, 1, 0)
    after.pop(f"landing/housing/street_lighting/2025-03-05/{lighting.name}")
    assert after == ledger_before
    # what an uninterrupted rotation gives (the first test): every row as before, its child's IIN
    # hashed under the new key instead of the old; the late file's child joins
    rekeyed = {pseudonym(old_key, child(i)): pseudonym(new_key, child(i)) for i in range(6)}
    assert contents(warehouse, before="2025-03-05") == {
        t: sorted(((rekeyed[r[0]], *r[1:]) for r in rows), key=repr) for t, rows in before.items()}
    assert query(warehouse, JOIN) == [(4,)]


def test_a_key_in_the_airflow_connection_is_not_mistaken_for_the_file_key(warehouse, file_key, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_QALA_PSEUDONYMISATION", '{"conn_type": "generic", "password": "' + "3" * 64 + '"}')
    with pytest.raises(RekeyRefused, match=f"Airflow connection qala_pseudonymisation.*export its key as {KEY_ENV}"):
        rekey(warehouse, out=lambda _: None)
    assert rotation(warehouse) is None and not next_key_file(warehouse).exists()
