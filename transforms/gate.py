"""The Great Expectations gate: every batch is validated by a checkpoint before it publishes.

The suite is the feed's JSON file in expectations/, plus what its contract declares (the
published columns, required columns not null, the primary key unique). Row-severity
expectations must hold on the clean batch, since the row checks already quarantined the records
that broke them; if GX disagrees, the batch is blocked rather than trusted. Every gate run's
results go to ops.gate_results and to a Data Docs page under reports/data_docs.

great_expectations takes seconds to import: it is imported here, inside functions, and one
context serves every batch a process loads.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from transforms import settings
from transforms.contract import Table, load_contract

# The severities a suite states in each expectation's meta.severity.
BLOCK, WARN, ROW = "block", "warn", "row"


@dataclass
class GateOutcome:
    passed: bool
    results: list[dict]
    data_docs: str | None
    identifier: object = None

    @property
    def blocking_failures(self) -> list[dict]:
        return [r for r in self.results if not r["success"] and r["severity"] != WARN]

    @property
    def warnings(self) -> list[dict]:
        return [r for r in self.results if not r["success"] and r["severity"] == WARN]

    def summary(self, failures: list[dict]) -> str:
        return "; ".join(f"{r['expectation']}({r['column'] or ''}) observed {r['observed']}" for r in failures)


# The batch GX sees: the published columns and the landed file each record came from (a batch
# may hold several files; a primary key is unique within one file).
FILE_COLUMN = "_source_file"


def contract_expectations(table: Table) -> list[dict]:
    published = [c.name for c in table.published_columns]
    rules = [{"type": "expect_table_columns_to_match_set",
              "kwargs": {"column_set": published + [FILE_COLUMN], "exact_match": True}}]
    rules += [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": c.name}}
              for c in table.published_columns if c.required]
    if table.primary_key:
        rules.append({"type": "expect_compound_columns_to_be_unique",
                      "kwargs": {"column_list": [FILE_COLUMN, *table.primary_key]}})
    for rule in rules:
        rule["meta"] = {"severity": BLOCK, "declared_in": "contract"}
    return rules


# Expectations that hold for a batch of files exactly when they hold for each file: the only ones
# that may block (or quarantine). Others (row counts, means, proportions) may only warn, so that a
# day loads the same whether it comes alone or inside a backfill.
_PER_RECORD_PREFIXES = ("expect_column_values_", "expect_column_pair_values_", "expect_multicolumn_",
                        "expect_select_column_values_", "expect_compound_columns_to_be_unique",
                        "expect_table_columns_", "expect_column_to_exist")


def check_severities(suite: dict) -> None:
    for expectation in suite["expectations"]:
        severity = (expectation.get("meta") or {}).get("severity", BLOCK)
        if severity == WARN:
            continue
        if not expectation["type"].startswith(_PER_RECORD_PREFIXES) or expectation["kwargs"].get("mostly", 1) != 1:
            raise ValueError(
                f"suite {suite['name']}: {expectation['type']} has severity {severity!r}, but only per-record "
                f"expectations (without `mostly`) may block or quarantine: make it 'warn', or declare a per-file "
                f"minimum as `min_rows` in the contract")


@cache
def _context(root: Path):
    """An ephemeral GX context per process: the suite comes from expectations/ and the contract
    each time, so concurrent load tasks never trip over each other's saved GX objects. Data Docs
    pages are written to the warehouse (reports/data_docs), one page per batch."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no calls home from a ministry network
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.add_data_docs_site(site_name="qala", site_config={
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(settings.reports_dir(root) / "data_docs")},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    return context


@cache
def _checkpoint(root: Path, feed: str, table_name: str):
    """A table's checkpoint in this process: suite (from expectations/ and the contract),
    dataframe asset and validation definition, registered once."""
    import great_expectations as gx

    context = _context(root)
    spec = load_contract(feed).get_table(table_name)
    table = spec.silver
    declared = spec.suite()
    check_severities(declared)
    suite = context.suites.add_or_update(gx.ExpectationSuite(
        name=table,
        expectations=declared["expectations"] + contract_expectations(spec),
        meta=declared.get("meta", {}),
    ))
    try:
        source = context.data_sources.get("qala")
    except KeyError:
        source = context.data_sources.add_pandas("qala")
    try:
        asset = source.get_asset(table)
    except LookupError:
        asset = source.add_dataframe_asset(table)
    try:
        batch_definition = asset.get_batch_definition("whole batch")
    except KeyError:
        batch_definition = asset.add_batch_definition_whole_dataframe("whole batch")
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=table, data=batch_definition, suite=suite))
    # Data Docs are built once per load task (build_data_docs), not per batch: rendering them
    # costs about a second, more than validating a day's batch.
    return context.checkpoints.add_or_update(gx.Checkpoint(
        name=table, validation_definitions=[definition], actions=[],
        result_format={"result_format": "BASIC"}))


def validate(table: Table, batch: pd.DataFrame, batch_id: str, root: Path | None = None) -> GateOutcome:
    """Run the table's checkpoint on one batch (the published columns and `_source_file`)."""
    from great_expectations.core.run_identifier import RunIdentifier

    root = root or settings.warehouse_root()
    checkpoint = _checkpoint(root, table.feed, table.name)
    result = checkpoint.run(batch_parameters={"dataframe": batch},
                            run_id=RunIdentifier(run_name=batch_id))
    ((identifier, validation),) = result.run_results.items()
    results = []
    for outcome in validation.results:
        config = outcome.expectation_config
        observed = outcome.result.get("observed_value")
        if observed is None and "unexpected_count" in outcome.result:
            observed = f"{outcome.result['unexpected_count']} unexpected, e.g. {outcome.result.get('partial_unexpected_list', [])[:3]}"
        results.append({
            "table": table.silver,
            "expectation": config.type,
            "column": config.kwargs.get("column"),
            "severity": (config.meta or {}).get("severity", BLOCK),
            "success": bool(outcome.success),
            "observed": json.dumps(observed, default=str, ensure_ascii=False) if observed is not None else None,
        })
    (page,) = _context(root).get_docs_sites_urls(resource_identifier=identifier, site_name="qala",
                                                 only_if_exists=False)
    outcome = GateOutcome(passed=True, results=results, data_docs=page["site_url"], identifier=identifier)
    outcome.passed = not outcome.blocking_failures
    return outcome


def build_data_docs(outcomes: list[GateOutcome], root: Path | None = None) -> None:
    """Render the Data Docs pages of these gate runs, and the index."""
    identifiers = [o.identifier for o in outcomes if o.identifier is not None]
    if identifiers:
        _context(root or settings.warehouse_root()).build_data_docs(
            site_names=["qala"], resource_identifiers=identifiers)
