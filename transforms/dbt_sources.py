"""The dbt project's `silver` sources, written from the feed contracts.

A silver table's columns, types and descriptions are declared once, in its contract; this module
renders them as `dbt_project/models/staging/_sources.yml` so the dbt docs describe every silver
table and column, and as `docs/silver_tables.md`, the analysts' data dictionary of the silver
tables. `python -m transforms.dbt_sources` rewrites both; a test checks that the committed files
are what the contracts give.
"""

from __future__ import annotations

import sys

import yaml

from transforms import settings
from transforms.contract import Table, all_feeds, load_contract
from transforms.schema import LINEAGE_DOCS, LINEAGE_TYPES, published_types

SOURCES_YML = settings.DBT_PROJECT_DIR / "models" / "staging" / "_sources.yml"
DICTIONARY_MD = settings.REPO_ROOT / "docs" / "silver_tables.md"


TREATMENT_DOCS = {
    "hash": "Pseudonymised: HMAC-SHA256 (hex) of the source value under the warehouse key; joins across feeds still work.",
    "year": "Coarsened to the year.",
}


def _column_doc(table: Table, name: str, description: str) -> str:
    treatment = table.pii.get(name)
    text = description.strip()
    if treatment in TREATMENT_DOCS:
        text = f"{text.rstrip('.')}. {TREATMENT_DOCS[treatment]}" if text else TREATMENT_DOCS[treatment]
    return text


def _table_entry(feed: str, table: Table, title: str) -> dict:
    where = f"transforms/contracts/{feed}.yaml"
    part = f", table {table.name}" if table.silver != feed.replace("/", "__") else ""
    description = (table.description or title).strip()
    return {
        "name": table.silver,
        "description": f"{description} (contract {where}{part}; primary key: {', '.join(table.primary_key)}).",
        "columns": [{"name": c.name, "description": _column_doc(table, c.name, c.description)}
                    for c in table.published_columns]
        + [{"name": name, "description": doc} for name, doc in LINEAGE_DOCS.items()],
    }


def render() -> str:
    tables = []
    for feed in all_feeds():
        contract = load_contract(feed)
        tables += [_table_entry(feed, t, contract.title) for t in contract.tables]
    doc = {
        "version": 2,
        "sources": [
            {
                "name": "silver",
                "description": (
                    "Feed tables published by the load path, one per contract table "
                    "(<domain>__<feed> or <domain>__<feed>__<table>), each batch in one lake transaction "
                    "after its Great Expectations gate. Every row traces to its landed file and line through "
                    "_batch_id, _landing_date, _source_file, _source_member and _source_line. "
                    "Generated from the contracts by `python -m transforms.dbt_sources`: edit the contract, "
                    "not this file."
                ),
                "database": settings.LAKE_ALIAS,
                "schema": "silver",
                "tables": tables,
            },
            {
                "name": "ops",
                "description": "Operational tables of the load path.",
                "database": settings.LAKE_ALIAS,
                "schema": "ops",
                "tables": [{
                    "name": "load_ledger",
                    "description": (
                        "One row per landed file and load attempt: rows in / published / quarantined / "
                        "skipped, status, reason and the lake snapshot that published it."
                    ),
                }],
            },
        ],
    }
    header = ("# GENERATED from transforms/contracts by `python -m transforms.dbt_sources`; "
              "do not edit by hand.\n")
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def render_dictionary() -> str:
    """docs/silver_tables.md: every silver table and column, its type and meaning."""
    lines = [
        "<!-- GENERATED from transforms/contracts by `python -m transforms.dbt_sources`; do not edit by hand. -->",
        "# Data dictionary: the silver tables",
        "",
        "One table per contract table, in the lake's `silver` schema (`make sql`, then e.g. "
        "`describe silver.safety__road_accidents`). Each is published by the load path after its Great "
        "Expectations gate; rows that fail a row rule are in the `quarantine` table of the same name, with "
        "the rule and reason. Personal identifiers never reach silver: a column the contract drops is not "
        "here, and a pseudonymised one holds an HMAC-SHA256 under the warehouse key. The models built on "
        "these tables, and the KPI marts, are described in the dbt docs (`make docs`).",
        "",
        "Every table also has these lineage columns:",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
        *[f"| `{name}` | {LINEAGE_TYPES[name]} | {doc} |" for name, doc in LINEAGE_DOCS.items()],
        "",
    ]
    for feed in all_feeds():
        contract = load_contract(feed)
        for table in contract.tables:
            description = (table.description or contract.title).strip()
            types = published_types(table)
            lines += [
                f"## `silver.{table.silver}`",
                "",
                f"{description}. Feed `{feed}` (contract `transforms/contracts/{feed}.yaml`); primary key: "
                + ", ".join(f"`{k}`" for k in table.primary_key) + ".",
                "",
                "| column | type | required | meaning |",
                "|---|---|---|---|",
                *[f"| `{c.name}` | {types[c.name]} | {'yes' if c.required else 'no'} | "
                  f"{_column_doc(table, c.name, c.description).replace('|', '/')} |"
                  for c in table.published_columns],
                "",
            ]
    return "\n".join(lines)


def main() -> int:
    SOURCES_YML.write_text(render(), encoding="utf-8")
    DICTIONARY_MD.write_text(render_dictionary(), encoding="utf-8")
    print(f"wrote {SOURCES_YML} and {DICTIONARY_MD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
