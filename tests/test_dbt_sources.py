"""The dbt project's silver sources are the contracts' tables, columns and descriptions."""

from __future__ import annotations

import yaml

from transforms import dbt_sources
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
