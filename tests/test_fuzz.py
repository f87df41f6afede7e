"""A small sample of `make fuzz` (devkit/qala_devkit/fuzz.py): every format's reader gets fuzzed
landings through the real load path (real DuckDB, GX, DuckLake), and every input must end as
published, quarantined, failed with a reason naming its file, or not read, each with its ledger
row. The campaign itself (500 inputs per format) is `make fuzz`; its findings became the
regression tests named below."""

from __future__ import annotations

from datetime import date

import pytest

from qala_devkit import fuzz
from tests.conftest import HEADER, accident_rows, failure_of, land


@pytest.mark.parametrize("fmt", sorted(fuzz.FEEDS))
def test_fuzzed_landings_of_every_format_are_each_accounted_for(fmt, tmp_path, monkeypatch):
    root = tmp_path / "warehouse"
    (root / "tmp").mkdir(parents=True)
    monkeypatch.setenv("QALA_WAREHOUSE", str(root))
    monkeypatch.setenv("TMPDIR", str(root / "tmp"))
    report = fuzz.fuzz_format(fmt, inputs=4, root=root, per_example=4, seconds_per_input=120)
    assert report.inputs == 4 and report.findings == []
    assert sum(report.rows.values()) >= 4  # at least a ledger row per input
    assert not any((tmp_path / "outside").iterdir())


def test_the_property_catches_a_landed_file_without_a_ledger_row(warehouse):
    land(warehouse, "2030-01-01", "a.csv", HEADER + "\n" + accident_rows(2), feed="safety/road_accidents")
    (warehouse.parent / "outside").mkdir()
    assert fuzz.check_property(warehouse, "safety/road_accidents", [], [date(2030, 1, 1)]) == [
        "no ledger row: landing/safety/road_accidents/2030-01-01/a.csv"]


def test_a_record_of_millions_of_fields_fails_its_file_at_once_naming_the_line(warehouse):
    """Found by make fuzz: DuckDB files one reject per field beyond the header's, so a line of
    8 million fields kept a load busy for hours (100,000 fields: 80 s)."""
    path = land(warehouse, "2025-03-01", "ra.csv", HEADER + "\n" + accident_rows(2) + "x," * 4_000_000 + "\n")
    message = failure_of("safety/road_accidents", path)
    assert message.endswith("ra.csv, line 4: [format] 4,000,001 fields in one record (more than 4,096): "
                            "not a record of this feed")


def test_json_nested_100000_deep_in_an_export_or_its_manifest_is_refused_not_a_crash(warehouse):
    """Found by make fuzz: Python's json raised RecursionError out of the load (a manifest, or the
    first line of an NDJSON file without a manifest, nested 100,000 deep)."""
    from pathlib import Path

    from transforms import runs
    from transforms.load import LoadFailure, load_files

    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    patient = '{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1990"}'
    land(warehouse, "2030-01-01", "Patient.000.ndjson", deep + "\n" + patient + "\n", feed="health/fhir_bulk")
    land(warehouse, "2030-01-02", "Patient.000.ndjson", patient + "\n" + deep + "\n", feed="health/fhir_bulk")
    land(warehouse, "2030-01-03", "manifest.json", deep, feed="health/fhir_bulk")
    files = runs.landed_files("health/fhir_bulk", date(2030, 1, 1), date(2030, 1, 3), warehouse)
    try:
        rows = load_files("health/fhir_bulk", files, run_id="deep", root=warehouse)
    except LoadFailure as failure:
        rows = failure.rows
    outcome = {Path(r.source_file).parent.name: (r.status, r.rows_in, r.rows_quarantined) for r in rows}
    assert outcome == {"2030-01-01": ("not_read", 0, 0), "2030-01-02": ("published", 2, 1),
                       "2030-01-03": ("failed", 0, 0)}
    (manifest,) = [r for r in rows if r.status == "failed"]
    assert manifest.reason.endswith("manifest.json: [manifest] JSON nested too deeply to be a Bulk Data manifest")
