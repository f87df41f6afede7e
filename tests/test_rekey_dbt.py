"""Key rotation reaches what dbt derives: after `qala rekey` no staging view, intermediate table
or mart holds a value hashed under the old key (int_health__fhir_bulk__patient_current keeps
patient ids), and the derived tables are rebuilt with the same rows. A dbt build of a small
world (two education feeds, a FHIR export): in the dbt tier."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from conftest import FIXTURES, land
from test_rekey import load_world

from transforms import lake, runs, settings
from transforms.load import load_files
from transforms.pseudonymise import KEY_ENV, NEXT_KEY_ENV
from transforms.rekey import rekey

FHIR = "health/fhir_bulk"
DAY = "2025-03-03"


def hmac_values(root: Path) -> tuple[set[str], dict[str, int]]:
    """Every HMAC-looking value (64 hex digits) in a text column of staging, intermediate and marts;
    and each derived table's row count."""
    con = lake.connect(root, read_only=True)
    try:
        columns = con.execute(
            """select table_schema, table_name, column_name, t.table_type from information_schema.columns
               join information_schema.tables t using (table_catalog, table_schema, table_name)
               where table_catalog = ? and table_schema in ('staging', 'intermediate', 'marts')
               and data_type = 'VARCHAR'""", [settings.LAKE_ALIAS]).fetchall()
        found: set[str] = set()
        counts = {}
        for schema, table, column, kind in columns:
            found |= {v for (v,) in con.execute(
                f'select distinct "{column}" from {schema}.{table} where regexp_full_match("{column}", \'[0-9a-f]{{64}}\')'
            ).fetchall()}
            if kind == "BASE TABLE":
                (counts[f"{schema}.{table}"],) = con.execute(f"select count(*) from {schema}.{table}").fetchone()
        return found, counts
    finally:
        con.close()


def test_a_rotation_rebuilds_every_model_that_holds_hashed_ids(warehouse, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(NEXT_KEY_ENV, raising=False)
    load_world(warehouse)
    for path in sorted((FIXTURES / "fhir" / "bulk_publish").iterdir()):
        land(warehouse, DAY, path.name, path.read_bytes(), feed=FHIR)
    load_files(FHIR, runs.landed_files(FHIR, date.fromisoformat(DAY), date.fromisoformat(DAY), warehouse),
               run_id="daily", root=warehouse)
    done = subprocess.run(
        # the project built as build_kpis builds it, but for its tests (the rotation's rebuild runs them)
        [str(Path(sys.executable).parent / "dbt"), "build", "--exclude", "resource_type:test", "resource_type:unit_test",
         "--profiles-dir", ".", "--target-path",
         str(warehouse / "dbt_target"), "--log-path", str(warehouse / "dbt_logs")],
        cwd=settings.DBT_PROJECT_DIR, capture_output=True, text=True,
        env={**os.environ, "QALA_WAREHOUSE": str(warehouse), "DBT_SEND_ANONYMOUS_USAGE_STATS": "False"})
    assert done.returncode == 0, done.stdout[-4000:]
    before, counts_before = hmac_values(warehouse)
    assert counts_before["intermediate.int_health__fhir_bulk__patient_current"] == 2

    summary = rekey(warehouse, out=lambda _: None)

    assert summary.done and summary.dbt.startswith("rebuilt")
    after, counts_after = hmac_values(warehouse)
    assert before and after and not before & after
    assert counts_after == counts_before
