"""A privacy audit of the lake: does any Parquet file hold something that looks like a raw
personal identifier?

It reads EVERY Parquet file under the lake's data path (old snapshots' files included) and
every text column in them (text inside lists and structs too), and looks for:

* an IIN/BIN: 12 digits standing alone whose check digit is right (the official algorithm:
  weights 1..11, then 3..11,1,2 when the first sum gives 10);
* a Kazakh mobile number: +7 / 8 then 7XX and seven digits, spaces, dashes or brackets allowed;
* a Kazakh plate number: 3 digits, 2 or 3 Latin capitals, the 2-digit region (123ABC02, 123 AB 02).

Pseudonymised values are lower-case hex (HMAC-SHA256), which none of these can match. Findings
name the file, the column, the kind and how many values; never the values.

    .venv/bin/qala privacy-scan        # exit code 1 if anything is found
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from transforms import lake

PATTERNS = {
    "iin": r"\b[0-9]{12}\b",
    "phone": r"(\+7|\b8)[ \-]?\(?7[0-9]{2}\)?[ \-]?[0-9]{3}[ \-]?[0-9]{2}[ \-]?[0-9]{2}\b",
    "plate": r"\b[0-9]{3} ?[A-Z]{2,3} ?[0-9]{2}\b",
}
_W1 = list(range(1, 12))
_W2 = [3, 4, 5, 6, 7, 8, 9, 10, 11, 1, 2]


def _iin_valid_sql(value: str) -> str:
    def weighted(weights):
        return " + ".join(f"{w} * cast(substr({value}, {i + 1}, 1) as integer)" for i, w in enumerate(weights))
    first, second = f"(({weighted(_W1)}) % 11)", f"(({weighted(_W2)}) % 11)"
    check = f"cast(substr({value}, 12, 1) as integer)"
    return f"(case when {first} != 10 then {first} = {check} else {second} != 10 and {second} = {check} end)"


@dataclass(frozen=True)
class Finding:
    file: str
    column: str
    kind: str
    values: int

    def __str__(self) -> str:
        return f"{self.file}: column {self.column}: {self.values} value(s) that look like a raw {self.kind}"


def scan_files(files: list[Path]) -> list[Finding]:
    con = duckdb.connect()
    findings = []
    try:
        for path in files:
            # every top-level column holding text, nested ones too (a list of batch ids is scanned
            # as its text '[a, b]'); Parquet's own schema names a list's leaf 'element', not the column
            columns = [name for name, kind, *_ in con.execute(
                "describe select * from read_parquet(?)", [str(path)]).fetchall()
                if "VARCHAR" in kind or "BLOB" in kind]
            for column in columns:
                quoted = '"' + column.replace('"', '""') + '"'
                counts = con.execute(
                    f"""with v as (select cast({quoted} as varchar) as v from read_parquet(?) where {quoted} is not null)
                        select
                          (select count(*) from (select unnest(regexp_extract_all(v, '{PATTERNS['iin']}')) as c from v)
                           where {_iin_valid_sql('c')}),
                          (select count(*) from v where regexp_matches(v, '{PATTERNS['phone']}')),
                          (select count(*) from v where regexp_matches(v, '{PATTERNS['plate']}'))""",
                    [str(path)]).fetchone()
                findings += [Finding(str(path), column, kind, n) for kind, n in zip(PATTERNS, counts) if n]
    finally:
        con.close()
    return findings


def scan_lake(root: Path | None = None) -> list[Finding]:
    return scan_files(sorted(lake.data_path(root).rglob("*.parquet")))
