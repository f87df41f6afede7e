"""The dbt project's silver sources are the contracts' tables, columns and descriptions."""

from __future__ import annotations

import yaml

from transforms import dbt_sources, schema
from transforms.contract import all_feeds, load_contract


def test_committed_sources_are_what_the_contracts_give():
    committed = dbt_sources.SOURCES_YML.read_text(encoding="utf-8")
    assert committed == dbt_sources.render(), (
        "models/staging/_sources.yml is out of date with the contracts: run "
        "`.venv/bin/python -m transforms.dbt_sources` and commit the result")


def test_every_silver_table_and_published_column_is_described():
    doc = yaml.safe_load(dbt_sources.render())
    silver = next(s for s in doc["sources"] if s["name"] == "silver")
    tables = {t["name"]: t for t in silver["tables"]}
    for feed in all_feeds():
        for table in load_contract(feed).tables:
            entry = tables[table.silver]
            columns = {c["name"]: c["description"] for c in entry["columns"]}
            assert [c.name for c in table.published_columns] == list(columns)[: len(table.published_columns)]
            # a column the contract drops as PII is not in silver, so not in the docs either
            assert not set(columns) & {c for c, t in table.pii.items() if t == "drop"}
            assert all(columns.values()), f"{table.silver}: a column without a description"
            assert {"_batch_id", "_source_file", "_source_line"} <= set(columns)


def test_committed_data_dictionary_is_what_the_contracts_give():
    assert dbt_sources.DICTIONARY_MD.read_text(encoding="utf-8") == dbt_sources.render_dictionary(), (
        "docs/silver_tables.md is out of date with the contracts: run "
        "`.venv/bin/python -m transforms.dbt_sources` and commit the result")


def test_the_data_dictionary_has_every_silver_table_and_column_of_a_real_lake_with_its_type(kpi_world):
    import re

    from tests.conftest import query

    documented, table = {}, None
    for line in dbt_sources.render_dictionary().splitlines():
        if heading := re.match(r"## `silver\.(\w+)`", line):
            table = heading[1]
        elif table and (row := re.match(r"\| `(\w+)` \| (\w+) \|", line)):
            documented[(table, row[1])] = row[2]
    lineage = dict(schema.LINEAGE_TYPES)
    real = query(kpi_world.root, "select table_name, column_name, replace(data_type, 'TIMESTAMP WITH TIME ZONE', "
                                 "'TIMESTAMPTZ') from duckdb_columns() where database_name = 'qala' and schema_name = 'silver'")
    assert {(t, c): ty for t, c, ty in real if c not in lineage} == documented
    assert all(lineage[c] == ty for _, c, ty in real if c in lineage)
