"""The privacy audit reads every text column of a Parquet file, lists of text included."""

from __future__ import annotations

from pathlib import Path

import duckdb

from transforms.privacy import scan_files


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
