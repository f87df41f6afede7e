"""The row checks and the gate against the simulator's planted defects: every defect caught by the
rule meant for it (recall), no clean record quarantined (precision), per feed. Five days of every
feed at a defect rate of 0.2, loaded through the load path (`load_files`)."""

from __future__ import annotations

import pytest

from qala_devkit import gate_audit


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    audits = gate_audit.run(tmp_path_factory.mktemp("audit") / "warehouse")  # `make gate-audit`'s run
    print("\n" + gate_audit.report(audits))
    return audits


def test_every_planted_defect_is_caught_by_its_rule(audited):
    assert sum(a.planted for a in audited.values()) > 10_000
    missed = {feed: [(m["kind"], m["file"], m.get("line"), m.get("column")) for m in a.missed[:3]]
              for feed, a in audited.items() if a.missed}
    assert missed == {}
    assert all(a.recall == 1.0 for a in audited.values())


def test_no_clean_record_is_quarantined(audited):
    assert {feed: a.alarms[:3] for feed, a in audited.items() if a.false_alarms} == {}
    assert all(a.precision == 1.0 for a in audited.values())


def test_most_bad_records_are_caught_by_their_own_rule_not_by_their_file_failing(audited):
    # A bad record inside a file that failed whole (a renamed column, a missing GTFS file) counts
    # as caught; the rules themselves must have done most of the work.
    caught = sum(a.caught for a in audited.values())
    by_file = sum(a.caught_by_file for a in audited.values())
    assert by_file < caught * 0.2
