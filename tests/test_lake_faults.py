"""Faults under the lake (issue 20): a full disk during a publish, and a lake data file deleted or
corrupted under the catalog. Real DuckLake, the real load path and gate, a real small filesystem."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import HEADER, accident_rows, land, query
from tests.test_ingest_housing import PAYMENT_HEADER, PAYMENTS, payment_rows
from transforms import cli, lake, ledger
from transforms.errors import DiskFull, LakeDamaged
from transforms.load import LoadFailure, load_files
from transforms.pseudonymise import KEY_ENV
from transforms.runs import verdict

FEED = "safety/road_accidents"
SILVER = "silver.safety__road_accidents"
# Two records the row checks refuse, so quarantine has rows of its own to keep right.
DAY1 = HEADER + "\n" + accident_rows(28) + "RA-x,2025-03-01 08:00:00,71000000X,injury,1,0,2,x,51.1,71.4\n" \
    + "RA-y,not a time,710110000,injury,1,0,2,x,51.1,71.4\n"
DAY2 = HEADER + "\n" + accident_rows(20, "2025-03-02", prefix="RB")


def state(root: Path) -> dict[str, list]:
    """Everything a load writes that an undisturbed load must match: silver, quarantine and the
    file profiles row for row (batch ids aside: each load draws its own), and each landed file's
    latest ledger outcome."""
    return {
        "silver": query(root, f"select * exclude (_batch_id) from {SILVER} order by all"),
        "quarantine": query(root, "select * exclude (_batch_id) from quarantine.safety__road_accidents order by all"),
        "profiles": query(root, "select * exclude (batch_id) from ops.file_profiles where feed = ? order by all", [FEED]),
        "ledger": query(root, """select source_file, status, rows_in, rows_published, rows_quarantined
                                 from ops.load_ledger where feed = ?
                                 qualify row_number() over (partition by source_file order by finished_at desc) = 1
                                 order by all""", [FEED]),
    }


def undisturbed(tmp_path: Path, loads: list[list[tuple[str, str, str, str]]]) -> dict[str, list]:
    """The same landed files loaded the same way into a fresh warehouse on a healthy disk."""
    root = tmp_path / "undisturbed"
    root.mkdir()
    for files in loads:
        paths = [land(root, day, name, body, feed=feed) for feed, day, name, body in files]
        with contextlib.suppress(LoadFailure):
            load_files(files[0][0], paths, run_id="undisturbed", root=root)
    return state(root)


@pytest.fixture
def same_key(monkeypatch):
    """One pseudonymisation key for the warehouse under test and its undisturbed twin."""
    monkeypatch.setenv(KEY_ENV, "lake-faults-test-key")


# --- a lake data file deleted or corrupted under the catalog ----------------------------------

def damage(path: str, how: str) -> None:
    data = Path(path).read_bytes()
    if how == "deleted":
        os.remove(path)
    elif how == "truncated":
        Path(path).write_bytes(data[: len(data) // 2])
    else:  # bytes overwritten in place (same size): the footer's metadata
        Path(path).write_bytes(data[:-300] + bytes(292) + data[-8:])


@pytest.mark.parametrize("how", ["deleted", "overwritten"])  # truncated: the ledger test below
def test_a_damaged_silver_file_is_named_with_its_table_and_repair_reloads_it_as_undisturbed(
        warehouse, tmp_path, same_key, capsys, how):
    day1 = land(warehouse, "2025-03-01", "ra.csv", DAY1)
    day2 = land(warehouse, "2025-03-02", "ra.csv", DAY2)
    load_files(FEED, [day1, day2], run_id="day")  # one batch, one Parquet file per table
    other = land(warehouse, "2025-03-03", "ra.csv", HEADER + "\n" + accident_rows(5, "2025-03-03", prefix="RC"))
    load_files(FEED, [other], run_id="next")
    (victim,), = query(warehouse, f"""select data_file from ducklake_list_files('qala', 'safety__road_accidents',
        schema => 'silver') f where exists (select 1 from {SILVER} s where s.filename = f.data_file
        and s._landing_date = '2025-03-01')""")
    damage(victim, how)

    # A query, a load of the same feed (it deletes the file's old rows, which reads them): each
    # fails naming the table and the file, and the repair.
    named = rf"lake data file {victim} of table {SILVER} is (missing|damaged).*repair: qala repair"
    con = lake.connect(warehouse, read_only=True)
    with pytest.raises(LakeDamaged, match=named), lake.explained(warehouse):
        con.execute(f"select * from {SILVER}").fetchall()
    con.close()
    with pytest.raises(LakeDamaged, match=named):
        load_files(FEED, [day2], run_id="resend")
    (reason,), = query(warehouse, "select reason from ops.load_ledger where run_id = 'resend'")
    assert reason.startswith("landing/safety/road_accidents/2025-03-02/ra.csv: failed: lake data file ") and victim in reason

    # lake-check names it, its table and the landed files whose rows it held
    assert cli.main(["lake-check"]) == 1
    out = capsys.readouterr().out
    assert f"{SILVER}: lake data file {victim} is " in out
    assert "landing/safety/road_accidents/2025-03-01/ra.csv, landing/safety/road_accidents/2025-03-02/ra.csv" in out
    assert cli.main(["repair"]) == 0
    out = capsys.readouterr().out
    assert f"removed from {SILVER}: {victim}" in out and "reloaded landing/safety/road_accidents/2025-03-02/ra.csv" in out
    assert cli.main(["lake-check"]) == 0
    if how != "deleted":  # the damaged bytes are kept for a post-mortem, out of the data path
        assert len(list((warehouse / "lake" / "damaged").rglob(Path(victim).name))) == 1

    assert state(warehouse) == undisturbed(tmp_path, [
        [(FEED, "2025-03-01", "ra.csv", DAY1), (FEED, "2025-03-02", "ra.csv", DAY2)],
        [(FEED, "2025-03-03", "ra.csv", HEADER + "\n" + accident_rows(5, "2025-03-03", prefix="RC"))]])


def test_a_damaged_ledger_file_loses_its_history_rows_and_repair_gives_every_landed_file_a_row_again(
        warehouse, tmp_path, same_key, capsys):
    day1 = land(warehouse, "2025-03-01", "ra.csv", DAY2.replace("2025-03-02", "2025-03-01"))
    load_files(FEED, [day1], run_id="day")
    (victim,), = query(warehouse, "select data_file from ducklake_list_files('qala', 'load_ledger', schema => 'ops')")
    damage(victim, "truncated")
    assert cli.main(["lake-check"]) == 1
    assert f"ops.load_ledger: lake data file {victim} is damaged" in capsys.readouterr().out
    assert cli.main(["repair"]) == 0
    assert query(warehouse, "select source_file, status, rows_published, run_id like 'repair__%' from ops.load_ledger") == [
        ("landing/safety/road_accidents/2025-03-01/ra.csv", "published", 20, True)]


# --- a full disk during a publish -------------------------------------------------------------

@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "5m"):
    """A tmpfs of `size` mounted at `where` (root only). Where mounting is not permitted the test is
    skipped, saying why: RLIMIT_FSIZE, the other way to stop a write, fails with EFBIG per file
    (SIGXFSZ), not ENOSPC per filesystem, and the SQLite catalog's own writes never meet it, so it
    would not show what a full disk does."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here ({mounted.stderr.strip() or 'mount failed'}); "
                    "the full-disk test needs root (CI runs as root)")
    try:
        yield where
    finally:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)  # a handle still open: detach it


def fill(where: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free on the filesystem of `where`."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, bytes(1 << 16))
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def files_on_disk_not_in_catalog(root: Path) -> list[str]:
    catalog = sqlite3.connect(lake.catalog_path(root))
    try:
        known = {Path(p).name for (p,) in catalog.execute(
            "select path from ducklake_data_file union all select path from ducklake_delete_file")}
    finally:
        catalog.close()
    return sorted(str(p) for p in lake.data_path(root).rglob("*.parquet") if p.name not in known)


def test_a_full_disk_during_a_publish_rolls_back_and_the_ledger_says_so_once_space_is_back(
        tmp_path, monkeypatch, same_key):
    root = tmp_path / "warehouse"
    monkeypatch.setenv("QALA_WAREHOUSE", str(root))
    big_body = HEADER + "\n" + accident_rows(20000, "2025-03-02", prefix="RB")
    with small_filesystem(root / "lake") as small:  # Parquet data and the SQLite catalog on 5 MiB
        day1 = land(root, "2025-03-01", "ra.csv", DAY1)
        load_files(FEED, [day1], run_id="day1")
        before = state(root)
        big = land(root, "2025-03-02", "ra.csv", big_body)
        filler = fill(small, leave=60_000)

        with pytest.raises(DiskFull) as full:
            load_files(FEED, [big], run_id="full")
        message = str(full.value)
        assert "no space left on device under " + str(small) in message
        assert "while loading landing/safety/road_accidents/2025-03-02/ra.csv" in message
        assert "bytes free of 5,242,880" in message
        # rolled back: silver, quarantine, profiles and ledger exactly as before; no Parquet file
        # of the failed transaction left behind; the catalog opens
        assert state(root) == before
        assert files_on_disk_not_in_catalog(root) == []
        # its ledger row: written at once if the small ledger write still fitted, else kept aside
        written = query(root, "select reason from ops.load_ledger where run_id = 'full'")
        kept = [r for r in ledger.pending(root) if r.run_id == "full"]
        assert len(written) + len(kept) == 1
        print("ledger row of the failed load:", "written at once" if written else f"kept in {ledger.pending_path(root)}")
        # the run's `check` names the file with the full disk, not as a file without a ledger row
        failures, _ = verdict(FEED, "full", date(2025, 3, 2), date(2025, 3, 2), root)
        assert "no space left on device" in failures[1] and "no ledger row" not in "\n".join(failures)
        assert (written[0][0] if written else kept[0].reason).startswith(
            "landing/safety/road_accidents/2025-03-02/ra.csv: failed: no space left on device under ")

        filler.unlink()  # space is back: another feed loads, and the kept ledger row is written
        payments = land(root, "2025-03-01", "utility_payments_2025-03-01.csv", PAYMENT_HEADER + payment_rows(4),
                        feed=PAYMENTS)
        (paid,) = load_files(PAYMENTS, [payments], run_id="after")
        assert paid.status == "published"
        assert not ledger.pending_path(root).exists()
        assert query(root, "select status, reason like '%failed: no space left on device under %' "
                           "from ops.load_ledger where run_id = 'full'") == [("failed", True)]

        # the same load again publishes exactly what an undisturbed load publishes
        (row,) = load_files(FEED, [big], run_id="again")
        assert (row.status, row.rows_published) == ("published", 20000)
        after = state(root)
    twin = undisturbed(tmp_path, [[(FEED, "2025-03-01", "ra.csv", DAY1)], [(FEED, "2025-03-02", "ra.csv", big_body)]])
    assert after == twin
