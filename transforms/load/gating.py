"""Step 3, the gate: Great Expectations validates each table's checked records of the batch
(Temp.clean, as a pandas frame built through Arrow); a batch it refuses is gated again file by
file, so only the files whose records fail a `block` expectation are blocked."""

from __future__ import annotations

from datetime import date

from transforms import gate
from transforms.contract import Table
from transforms.load.batch import Batch
from transforms.schema import Temp, ident, literal


def gate_table(batch: Batch, table: Table) -> None:
    outcome = validate(batch, table, None)
    batch.outcomes.append(outcome)
    batch.results += outcome.results
    if outcome.data_docs:
        batch.pages.append(outcome.data_docs)
    if not outcome.passed:
        for source_file, reason in blame(batch, table, outcome).items():
            batch.blocked.setdefault(source_file, reason)


def frame(batch: Batch, table: Table, source_file: str | None):
    where = "" if source_file is None else f"where _source_file = {literal(source_file)}"
    # INTEGER as BIGINT: GX compares int64 and float64 columns vectorised, but an int32 one
    # value by value in Python (expect_column_values_to_be_between: ~3 s per million rows).
    columns = ", ".join(f"cast({ident(c.name)} as bigint) as {ident(c.name)}"
                        if c.type == "INTEGER" and c.name not in table.pii else ident(c.name)
                        for c in table.published_columns)
    # Through Arrow: DuckDB's own .df() takes ~10x longer on text columns (pandas 3 strings).
    return batch.con.execute(f"select {columns}, _source_file from {Temp.clean(table.name)} {where}"
                             ).to_arrow_table().to_pandas()


def validate(batch: Batch, table: Table, source_file: str | None) -> gate.GateOutcome:
    return gate.validate(table, frame(batch, table, source_file), batch.batch_id, batch.root)


def blame(batch: Batch, table: Table, outcome: gate.GateOutcome) -> dict[str, str]:
    """The files whose records made the gate refuse the batch: each is gated alone."""
    files = [f for (f,) in batch.con.execute(
        f"select distinct _source_file from {Temp.clean(table.name)} order by 1").fetchall()]
    summary = outcome.summary(outcome.blocking_failures)
    if len(files) <= 1:
        return {f: blocked_reason(f, table, summary, outcome.data_docs) for f in files}
    guilty = {}
    for source_file in files:
        alone = validate(batch, table, source_file)
        batch.outcomes.append(alone)
        if not alone.passed:
            guilty[source_file] = blocked_reason(source_file, table, alone.summary(alone.blocking_failures),
                                                 alone.data_docs)
    # Per-record rules fail in some file when they fail in the batch; if none does, the batch
    # as a whole is refused rather than trusted.
    return guilty or {f: blocked_reason(f, table, summary, outcome.data_docs) for f in files}


def blocked_reason(source_file: str, table: Table, summary: str, docs: str | None) -> str:
    return f"{source_file}: gate blocked {table.silver}: {summary}" + (f" (Data Docs: {docs})" if docs else "")


def warnings(results: list[dict], day: date) -> list[str]:
    """The batch's failed warn expectations, and its history checks of this landing day."""
    warned = [r for r in results if not r["success"] and r["severity"] == gate.WARN
              and r.get("landing_date", day) == day]
    return [f"warn: {r['table']}: {r['expectation']}({r['column'] or ''}) observed {r['observed']}" for r in warned]
