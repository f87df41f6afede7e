"""The load path on a real DuckLake lake with the real Great Expectations gate."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pytest

from tests.conftest import HEADER, accident_rows, land, query
from transforms.load import LoadFailure, load_files
from transforms.pseudonymise import hmac_sql

FEED = "safety/road_accidents"


def test_a_clean_file_is_published_with_its_lineage(warehouse):
    path = land(warehouse, "2025-03-01", "ra.csv", HEADER + "\n" + accident_rows(30))
    (row,) = load_files(FEED, [path], run_id="r1")
    assert (row.status, row.rows_in, row.rows_published, row.rows_quarantined) == ("published", 30, 30, 0)
    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert Path(unquote(row.data_docs.removeprefix("file://"))).exists()
    (count, batches, first_line, last_line), = query(
        warehouse, "select count(*), count(distinct _batch_id), min(_source_line), max(_source_line) "
                   "from silver.safety__road_accidents")
    assert (count, batches, first_line, last_line) == (30, 1, 2, 31)
    # The ledger names the lake snapshot in which the batch became visible.
    (snapshot,), = query(warehouse, "select snapshot_id from ops.load_ledger")
    at_snapshot, = query(warehouse, f"select count(*) from silver.safety__road_accidents at (version => {snapshot})")
    assert at_snapshot == (30,)


def test_rerunning_a_day_replaces_its_batch(warehouse):
    path = land(warehouse, "2025-03-01", "ra.csv", HEADER + "\n" + accident_rows(25))
    land(warehouse, "2025-03-02", "ra.csv", HEADER + "\n" + accident_rows(5, "2025-03-02", prefix="RB"))
    other = warehouse / "landing" / FEED / "2025-03-02" / "ra.csv"
    load_files(FEED, [path, other], run_id="first")
    load_files(FEED, [path], run_id="again")
    rows = query(warehouse, "select _landing_date::varchar, count(*), count(distinct _batch_id) "
                            "from silver.safety__road_accidents group by 1 order by 1")
    assert rows == [("2025-03-01", 25, 1), ("2025-03-02", 5, 1)]
    current, = query(warehouse, "select distinct _batch_id from silver.safety__road_accidents where _landing_date = '2025-03-01'")
    latest, = query(warehouse, "select batch_id from ops.load_ledger where run_id = 'again'")
    assert current == latest


def test_bad_records_are_quarantined_with_their_line_and_rule(warehouse):
    body = textwrap.dedent("""\
        RA-1,2025-03-01 08:10:00,710110000,injury,1,0,2,проспект Абая,51.1,71.4
        RA-2,2025-03-01 09:10:00,710110000,fatal,0,1,2,"улица ""Кенесары"", 5",51.1,71.4
        RA-3,2025-03-01 09:10:00,71000000X,injury,1,0,2,x,51.1,71.4
        RA-4,not a date,710110000,injury,1,0,2,x,51.1,71.4
        RA-2,2025-03-01 09:10:00,710110000,fatal,0,1,2,again,51.1,71.4
        RA-5,2025-03-01 09:10:00,710110000,injury,1,0
        RA-6,2025-03-01 09:10:00,750110000,injury,1,0,2,x,60.0,71.4
        RA-7,2025-03-01 10:10:00,750110000,damage_only,0,0,3,"two
        lines",43.2,76.9
        ,2025-03-01 10:10:00,750110000,damage_only,0,0,3,,43.2,76.9
        RA-8,2025-03-01 11:10:00,750110000,crash,0,0,3,,43.2,76.9
        RA-9,2025-03-01 11:10:00,750110000,injury,1,0,2,,43.2,76.9
        """)
    path = land(warehouse, "2025-03-01", "ra.csv", HEADER + "\n" + body)
    (row,) = load_files(FEED, [path], run_id="r")
    assert (row.rows_in, row.rows_published, row.rows_quarantined) == (11, 4, 7)
    published = query(warehouse, "select accident_id, _source_line, street from silver.safety__road_accidents order by 2")
    assert published == [("RA-1", 2, "проспект Абая"), ("RA-2", 3, 'улица "Кенесары", 5'),
                         ("RA-7", 9, "two\nlines"), ("RA-9", 13, None)]
    quarantined = query(warehouse, "select _source_line, _rule from quarantine.safety__road_accidents order by 1")
    assert quarantined == [
        (4, "format"),
        (5, "type"),
        (6, "primary key"),
        (7, "required"),  # 6 of 10 fields: padded with NULLs, and `vehicles` is required
        (8, "expect_column_values_to_be_between(lat)"),
        (11, "required"),
        (12, "expect_column_values_to_be_in_set(severity)"),
    ]
    reasons = dict(query(warehouse, "select _source_line, _reason from quarantine.safety__road_accidents"))
    # every rule a record breaks is in its reason; the first names its `_rule`
    assert reasons[4].startswith("format: kato_code is not a 9-digit KATO code") and "match_regex(kato_code)" in reasons[4]
    assert 'got "not a date"' in reasons[5]
    assert reasons[6] == "primary key: duplicate of line 3"
    assert "got 60.0" in reasons[8]


def test_a_windows_1251_export_is_detected_and_loaded(warehouse):
    content = (HEADER + "\n" + accident_rows(10).replace("проспект Абая", "улица Жибек жолы")).encode("cp1251")
    path = land(warehouse, "2025-03-01", "ra.csv", content)
    (row,) = load_files(FEED, [path], run_id="r")
    assert (row.encoding, row.rows_published) == ("windows-1251", 10)
    assert query(warehouse, "select distinct street from silver.safety__road_accidents") == [("улица Жибек жолы",)]


UNREADABLE = {
    "binary garbage": (bytes(range(256)) * 40, "format", "binary file"),
    "wrong delimiter": ((HEADER + "\n" + accident_rows(3)).replace(",", ";"), "required columns", "wrong delimiter"),
    "required column missing": ((HEADER + "\n" + accident_rows(3)).replace("severity", "severity_code"),
                                "required columns", "severity"),
    "empty file": (b"", "format", "empty file"),
}


@pytest.mark.parametrize("case", UNREADABLE, ids=list(UNREADABLE))
def test_an_unreadable_file_fails_alone_with_a_ledger_row(warehouse, case):
    content, rule, words = UNREADABLE[case]
    bad = land(warehouse, "2025-03-01", "a_bad.csv", content)
    good = land(warehouse, "2025-03-01", "b_good.csv", HEADER + "\n" + accident_rows(7))
    with pytest.raises(LoadFailure) as failure:
        load_files(FEED, [bad, good], run_id="r")
    message = str(failure.value)
    assert "landing/safety/road_accidents/2025-03-01/a_bad.csv" in message
    assert f"[{rule}]" in message and words in message
    ledger = query(warehouse, "select source_file, status, rows_in, rows_published, rows_quarantined, reason "
                              "from ops.load_ledger order by source_file")
    assert [(Path(f).name, s, i, p, q) for f, s, i, p, q, _ in ledger] == [
        ("a_bad.csv", "failed", 0, 0, 0), ("b_good.csv", "published", 7, 7, 0)]
    assert words in ledger[0][5]
    # Nothing of the bad file was published; the good file of the same day was.
    assert query(warehouse, "select distinct _source_file from silver.safety__road_accidents") == [
        ("landing/safety/road_accidents/2025-03-01/b_good.csv",)]


def test_an_export_with_a_header_only_fails_and_leaves_silver_as_it_was(warehouse):
    path = land(warehouse, "2025-03-01", "ra.csv", HEADER + "\n" + accident_rows(12))
    load_files(FEED, [path], run_id="good")
    before = query(warehouse, "select * from silver.safety__road_accidents order by accident_id")
    path.unlink()
    header_only = land(warehouse, "2025-03-01", "ra.csv", HEADER + "\n")
    with pytest.raises(LoadFailure, match=r"ra.csv: \[min_rows\] 0 record\(s\)"):
        load_files(FEED, [header_only], run_id="empty")
    assert query(warehouse, "select * from silver.safety__road_accidents order by accident_id") == before
    (status, rows_in), = query(warehouse, "select status, rows_in from ops.load_ledger where run_id = 'empty'")
    assert (status, rows_in) == ("failed", 0)


def test_every_batch_keeps_rows_in_equal_published_plus_quarantined(warehouse):
    paths = [land(warehouse, f"2025-03-0{d}", "ra.csv",
                  HEADER + "\n" + accident_rows(20, f"2025-03-0{d}", prefix=f"R{d}") + "bad,line\n")
             for d in range(1, 4)]
    load_files(FEED, paths, run_id="r")
    ledger = query(warehouse, "select source_file, rows_in, rows_published, rows_quarantined from ops.load_ledger")
    assert len(ledger) == 3 and all(i == p + q == 21 and q == 1 for _, i, p, q in ledger)
    for source_file, _, published, quarantined in ledger:
        assert query(warehouse, "select count(*) from silver.safety__road_accidents where _source_file = ?", [source_file]) == [(published,)]
        assert query(warehouse, "select count(*) from quarantine.safety__road_accidents where _source_file = ?", [source_file]) == [(quarantined,)]


def test_hmac_in_sql_is_rfc_2104_hmac_sha256():
    for key in (b"k", b"x" * 100, b"dev-key"):
        for message in ("880101300123", "Әсел Қанатқызы", ""):
            got, = duckdb.sql(f"select {hmac_sql('m', key)} from (select ? as m)".replace("?", "'" + message + "'")).fetchone()
            assert got == hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


READER = """
import sys, duckdb, time
con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
seen = set()
deadline = time.time() + float(sys.argv[2])
while time.time() < deadline:
    try:
        n, = con.execute("select count(*) from silver.safety__road_accidents").fetchone()
    except duckdb.CatalogException:
        n = 0  # the table is created by the first publish
    seen.add(n)
print(sorted(seen))
"""


def test_a_reader_through_attach_sql_sees_only_whole_batches_while_a_load_runs(warehouse, tmp_path, monkeypatch):
    monkeypatch.setenv("QALA_BATCH_DAYS", "1")  # one batch, one commit, per day
    sizes = [40, 55, 70, 85, 100, 115]
    paths = [land(warehouse, f"2025-03-{d + 1:02d}", "ra.csv",
                  HEADER + "\n" + accident_rows(n, f"2025-03-{d + 1:02d}", prefix=f"D{d}"))
             for d, n in enumerate(sizes)]
    script = tmp_path / "reader.py"
    script.write_text(READER)
    attach_sql = (warehouse / "attach.sql").stat()
    reader = subprocess.Popen([sys.executable, str(script), str(warehouse / "attach.sql"), "25"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    load_files(FEED, paths, run_id="r")
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err  # no lock error, no failure of any kind
    # the load did not rewrite the file the shells read (a shell once read it half-written)
    now = (warehouse / "attach.sql").stat()
    assert (now.st_ino, now.st_mtime_ns) == (attach_sql.st_ino, attach_sql.st_mtime_ns)
    seen = eval(out)  # noqa: S307 - our own script's printed list
    whole_batches = {sum(sizes[:k]) for k in range(len(sizes) + 1)}
    assert set(seen) <= whole_batches and len(seen) >= 2


@contextlib.contextmanager
def road_accident_suite(tmp_path: Path, monkeypatch, edit):
    """The road-accident suite as `edit(suite)` leaves it, in a copy of expectations/ that this
    process reads until the block ends (a contract or suite fixed by an engineer)."""
    from transforms import contract, gate, settings

    expectations = tmp_path / "expectations"
    shutil.copytree(settings.EXPECTATIONS_DIR, expectations)
    suite_path = expectations / "safety__road_accidents.json"
    suite = json.loads(suite_path.read_text())
    edit(suite)
    suite_path.write_text(json.dumps(suite))
    monkeypatch.setattr(settings, "EXPECTATIONS_DIR", expectations)
    contract.load_contract.cache_clear()
    gate._checkpoint.cache_clear()  # a new process starts without this one's GX objects
    try:
        yield
    finally:
        contract.load_contract.cache_clear()
        gate._checkpoint.cache_clear()


def block_killed_over_100(suite: dict) -> None:
    suite["expectations"].append({"type": "expect_column_values_to_be_between",
                                  "kwargs": {"column": "killed", "max_value": 100},
                                  "meta": {"severity": "block", "why": "a test: a day with such a record is suspect"}})


def test_a_batch_the_gate_refuses_blocks_only_the_offending_file(warehouse, tmp_path, monkeypatch):
    """A `block` expectation that fails for one day of a three-day batch: the batch is re-gated
    file by file; that day's records wait in quarantine, the other days publish."""
    with road_accident_suite(tmp_path, monkeypatch, block_killed_over_100):
        paths = [land(warehouse, f"2025-03-0{d}", "ra.csv", HEADER + "\n" + accident_rows(10, f"2025-03-0{d}", prefix=f"D{d}"))
                 for d in (1, 2, 3)]
        paths[1].write_text(paths[1].read_text(encoding="utf-8").replace(",injury,1,0,2,", ",fatal,0,150,2,", 1), encoding="utf-8")
        with pytest.raises(LoadFailure, match="ra.csv: gate blocked safety__road_accidents: expect_column_values_to_be_between"):
            load_files(FEED, paths, run_id="r")
    ledger = query(warehouse, "select _day, status, rows_in, rows_published, rows_quarantined from "
                              "(select split_part(source_file, '/', 4) as _day, * from ops.load_ledger) order by 1")
    assert ledger == [("2025-03-01", "published", 10, 10, 0), ("2025-03-02", "blocked", 10, 0, 10),
                      ("2025-03-03", "published", 10, 10, 0)]
    assert query(warehouse, "select count(*), count(distinct _source_file) from silver.safety__road_accidents") == [(20, 2)]
    assert query(warehouse, "select _rule, count(*) from quarantine.safety__road_accidents group by 1") == [("gate", 10)]
    assert query(warehouse, "select count(distinct batch_id) from ops.load_ledger") == [(1,)]


def test_a_blocked_resend_leaves_silver_exactly_as_it_was_and_the_next_day_loads(warehouse, tmp_path, monkeypatch):
    """A day already published is sent again with a record a `block` expectation refuses: silver
    keeps the day's earlier rows, byte for byte; the ledger row names the expectation and the
    value GX observed; the next day loads as usual."""
    silver = "select * exclude (_batch_id) from silver.safety__road_accidents order by _source_file, _source_line"
    with road_accident_suite(tmp_path, monkeypatch, block_killed_over_100):
        first = land(warehouse, "2025-03-01", "ra.csv", HEADER + "\n" + accident_rows(10, "2025-03-01"))
        load_files(FEED, [first], run_id="day")
        before = query(warehouse, silver)
        first.write_text(HEADER + "\n" + accident_rows(12, "2025-03-01").replace(",injury,1,0,2,", ",fatal,0,150,2,", 1),
                         encoding="utf-8")
        with pytest.raises(LoadFailure, match="ra.csv: gate blocked"):
            load_files(FEED, [first], run_id="resend")
        assert query(warehouse, silver) == before
        (status, reason), = query(warehouse, "select status, reason from ops.load_ledger where run_id = 'resend'")
        assert status == "blocked" and "expect_column_values_to_be_between(killed) observed" in reason
        (observed,), = query(warehouse, "select observed from ops.gate_results where not success and severity = 'block'")
        assert "150" in observed
        (row,) = load_files(FEED, [land(warehouse, "2025-03-02", "ra.csv", HEADER + "\n" + accident_rows(7, "2025-03-02"))],
                            run_id="next")
        assert (row.status, row.rows_published) == ("published", 7)
        assert query(warehouse, "select count(*) from silver.safety__road_accidents") == [(17,)]


def test_a_column_that_changed_type_blocks_its_file_and_the_other_days_publish(warehouse):
    """Schema drift: the register starts sending `injured` as words. Every value of the column
    fails its type, so the file is blocked as drift (a typo in one record stays a row defect);
    the day before and the day after publish in the same batch."""
    days = ("2025-03-01", "2025-03-02", "2025-03-03")
    paths = [land(warehouse, day, "ra.csv", HEADER + "\n" + accident_rows(6, day, prefix=day)) for day in days]
    paths[1].write_text(paths[1].read_text(encoding="utf-8").replace(",injury,1,0,2,", ",injury,one,0,2,"), encoding="utf-8")
    typo = paths[2].read_text(encoding="utf-8").replace(",injury,1,0,2,", ",injury,one,0,2,", 1)
    paths[2].write_text(typo, encoding="utf-8")
    with pytest.raises(LoadFailure, match=r"2025-03-02/ra.csv: schema drift in safety__road_accidents: changed type: "
                                          r"injured must be INTEGER, but none of its 6 values is, e\.g\. 'one'"):
        load_files(FEED, paths, run_id="r")
    ledger = query(warehouse, "select split_part(source_file, '/', 4), status, rows_published, rows_quarantined "
                              "from ops.load_ledger order by 1")
    assert ledger == [("2025-03-01", "published", 6, 0), ("2025-03-02", "blocked", 0, 6),
                      ("2025-03-03", "published", 5, 1)]
    assert query(warehouse, "select split_part(_source_file, '/', 4), _rule, count(*) from quarantine.safety__road_accidents "
                            "group by all order by all") == [("2025-03-02", "type", 6), ("2025-03-03", "type", 1)]


def test_history_checks_warn_on_a_day_out_of_its_feeds_band_and_the_day_publishes(warehouse):
    """Sixteen ordinary days, then a day cut to a few records, a day whose accidents injure five
    times as many, and a day whose newest accident is four days old: each publishes, and its
    own ledger row (only its own) says which history check warned, with the day's value and the
    band of the trailing days. The same files loaded again in one batch warn on the same days."""
    def day(d: int) -> str:
        return f"2025-03-{d:02d}"

    paths = [land(warehouse, day(d), "ra.csv", HEADER + "\n" + accident_rows(20 + d % 3, day(d), prefix=day(d)))
             for d in range(1, 17)]
    paths.append(land(warehouse, day(17), "ra.csv", HEADER + "\n" + accident_rows(3, day(17), prefix=day(17))))
    paths.append(land(warehouse, day(18), "ra.csv", HEADER + "\n" + accident_rows(20, day(18), prefix=day(18)).replace(
        ",injury,1,0,2,", ",injury,5,0,2,")))
    paths.append(land(warehouse, day(19), "ra.csv", HEADER + "\n" + accident_rows(20, day(15), prefix=day(19))))
    load_files(FEED, paths[:16], run_id="history")
    load_files(FEED, paths[16:], run_id="then")

    def warnings(run_id: str) -> dict[str, str]:
        return dict(query(warehouse, "select logical_date::varchar, reason from ops.load_ledger "
                                     "where run_id = ? and status = 'published' and reason is not null", [run_id]))

    assert query(warehouse, "select count(*) from ops.load_ledger where status = 'published'") == [(19,)]
    assert warnings("history") == {}
    warned = warnings("then")
    assert set(warned) == {day(17), day(18), day(19)}
    assert warned[day(17)] == ("warn: safety__road_accidents: history_volume() observed 2025-03-17: 3 records; "
                               "band 6.58..44 from 16 loaded day(s) 2025-03-01..2025-03-16 (20..22)")
    assert warned[day(18)].startswith("warn: safety__road_accidents: history_measure() observed 2025-03-18: "
                                      "people injured per accident 5; band 0.5..2 ")
    assert warned[day(19)] == ("warn: safety__road_accidents: history_freshness(occurred_at) observed 2025-03-19: "
                               "newest occurred_at 2025-03-15 08:19, 111.7 h before the end of the landing day (at most 48 h)")
    # no band before enough history: the first day's volume check passed and says why
    (first,), = query(warehouse, "select observed from ops.gate_results g join ops.load_ledger l using (batch_id) "
                                 "where l.run_id = 'history' and g.expectation = 'history_volume' "
                                 "and g.observed like '2025-03-01:%' group by 1")
    assert first == "2025-03-01: 21 records; no band yet: 0 loaded day(s) before it, a band needs 14"
    # the same days in one batch: the same warnings, each on its own day
    load_files(FEED, paths, run_id="again")
    assert warnings("again") == warned
    assert query(warehouse, "select count(*), count(distinct source_file) from ops.file_profiles") == [(19, 19)]


def test_a_file_larger_than_the_contract_allows_fails_before_it_is_read(warehouse, monkeypatch):
    from transforms.readers import archive

    monkeypatch.setitem(archive.DEFAULT_LIMITS, "max_bytes", 1000)
    big = land(warehouse, "2025-03-01", "a_big.csv", HEADER + "\n" + accident_rows(40))
    small = land(warehouse, "2025-03-01", "b_small.csv", HEADER + "\n" + accident_rows(3))
    with pytest.raises(LoadFailure, match=r"a_big.csv: \[size limit\] [0-9,]+ bytes is more than the contract's max_bytes 1,000"):
        load_files(FEED, [big, small], run_id="r")
    assert query(warehouse, "select split_part(source_file, '/', 5), status, bytes > 1000 from ops.load_ledger order by 1") == [
        ("a_big.csv", "failed", True), ("b_small.csv", "published", False)]


def test_replaying_a_batch_after_a_suite_fix_publishes_what_now_passes_exactly_once(warehouse, tmp_path, monkeypatch, capsys):
    """Two accidents of a severity the suite did not know wait in quarantine; the suite learns
    it; `qala replay` publishes them under a batch and ledger rows of its own; a second replay
    publishes nothing twice; an unknown batch is refused, naming it."""
    from transforms import cli

    path = land(warehouse, "2025-03-01", "ra.csv",
                HEADER + "\n" + accident_rows(6).replace(",injury,", ",minor_injury,", 2))
    (row,) = load_files(FEED, [path], run_id="day")
    assert (row.rows_published, row.rows_quarantined) == (4, 2)
    batch = row.batch_id
    quarantined = "select _source_line, _rule from quarantine.safety__road_accidents order by 1"
    assert query(warehouse, quarantined) == [(2, "expect_column_values_to_be_in_set(severity)"),
                                             (3, "expect_column_values_to_be_in_set(severity)")]

    def learn_minor_injury(suite: dict) -> None:
        next(e for e in suite["expectations"] if e["kwargs"].get("column") == "severity")["kwargs"]["value_set"].append("minor_injury")

    with road_accident_suite(tmp_path, monkeypatch, learn_minor_injury):
        assert cli.main(["replay", "--feed", FEED, "--batch", batch]) == 0
        shown = capsys.readouterr().out
        assert f"batch {batch}: published, 4 published + 2 quarantined" in shown and "6 published + 0 quarantined" in shown
        silver = "select accident_id, severity, _source_line from silver.safety__road_accidents order by 3"
        published = query(warehouse, silver)
        assert len(published) == 6 and [s for _, s, _ in published].count("minor_injury") == 2
        assert query(warehouse, quarantined) == []
        replays = query(warehouse, "select run_id, batch_id, status, rows_published from ops.load_ledger "
                                   "where run_id like 'replay__%'")
        assert len(replays) == 1 and replays[0][0].startswith(f"replay__{batch}__") and replays[0][1] != batch
        assert replays[0][2:] == ("published", 6)
        # twice: its rows are published once
        assert cli.main(["replay", "--feed", FEED, "--batch", batch]) == 0
        assert query(warehouse, silver) == published
        assert query(warehouse, "select count(*) from ops.load_ledger where run_id like 'replay__%'") == [(2,)]
        assert cli.main(["replay", "--feed", FEED, "--batch", "no-such-batch"]) == 2
        assert "no batch no-such-batch of safety/road_accidents" in capsys.readouterr().err
