"""transforms/schema.py owns the lake's tables: what a fresh lake holds is what it declares."""

from __future__ import annotations

from dataclasses import fields

from tests.conftest import query
from transforms import schema
from transforms.contract import all_feeds, load_contract


def columns(root, schema_name: str, table: str) -> list[tuple[str, str, bool]]:
    return [(name, kind, nullable == "YES") for name, kind, nullable in query(
        root, "select column_name, data_type, is_nullable from information_schema.columns "
              "where table_catalog = 'qala' and table_schema = ? and table_name = ? order by ordinal_position",
        [schema_name, table])]


def test_the_ledger_table_is_the_ledger_row_column_for_column(warehouse):
    names = [name for name, _, _ in columns(warehouse, "ops", "load_ledger")]
    assert names == schema.ledger_columns()
    assert "gate_results" not in names  # a field of the row, not a column
    assert names == [f.name for f in fields(schema.LedgerRow) if f.name != "gate_results"]


def test_every_contract_table_has_silver_and_quarantine_with_the_lineage_declared_once(warehouse):
    lineage = {name: kind for name, kind in schema.LINEAGE_TYPES.items()}
    for feed in all_feeds():
        for table in load_contract(feed).tables:
            silver = {name: kind for name, kind, _ in columns(warehouse, "silver", table.silver)}
            assert {n: silver[n] for n in lineage} == lineage, table.silver
            published = schema.published_types(table)
            assert {n: k for n, k in silver.items() if n not in lineage} == {
                n: k.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE") for n, k in published.items()}
            quarantine = [name for name, _, _ in columns(warehouse, "quarantine", table.silver)]
            assert quarantine == [*lineage, *schema.QUARANTINE_COLUMNS, *published], table.silver
