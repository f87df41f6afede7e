"""Row checks: split a read batch into records to publish and records to quarantine.

The rules come from where they are declared, once: column types, required columns and the
primary key from the feed's contract; value rules from the expectations of its GX suite
whose `meta.severity` is `row`. They are evaluated here as one vectorised DuckDB query, so a
bad record is quarantined with its line and rule; the GX gate then checks the same suite on
what is left.
"""

from __future__ import annotations

import json

import duckdb

from transforms.contract import Contract
from transforms.gate import ROW
from transforms.pseudonymise import hmac_sql, treated_sql
from transforms.readers import ReadResult


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value) -> str:
    """A SQL literal for a string or number."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _between(column: str, kwargs: dict) -> str:
    col = ident(column)
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    parts = []
    if low is not None:
        parts.append(f"{col} {'<=' if kwargs.get('strict_min') else '<'} {literal(low)}")
    if high is not None:
        parts.append(f"{col} {'>=' if kwargs.get('strict_max') else '>'} {literal(high)}")
    return " or ".join(parts) or "false"


# A row-severity expectation as the SQL condition that marks a record as breaking it.
# GX ignores nulls in column-value expectations; so do these (required-ness is the contract's).
ROW_RULES = {
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": lambda column, kw: (
        f"{ident(column)} not in ({', '.join(literal(v) for v in kw['value_set'])})"),
    "expect_column_values_to_not_be_in_set": lambda column, kw: (
        f"{ident(column)} in ({', '.join(literal(v) for v in kw['value_set'])})"),
    "expect_column_values_to_match_regex": lambda column, kw: (
        f"not regexp_matches(cast({ident(column)} as varchar), {literal(kw['regex'])})"),
    "expect_column_values_to_not_match_regex": lambda column, kw: (
        f"regexp_matches(cast({ident(column)} as varchar), {literal(kw['regex'])})"),
}


def row_expectations(suite: dict) -> list[dict]:
    rules = [e for e in suite["expectations"] if e.get("meta", {}).get("severity") == ROW]
    unsupported = sorted({e["type"] for e in rules if e["type"] not in ROW_RULES})
    if unsupported:
        raise ValueError(
            f"suite {suite['name']}: severity 'row' is not supported for {', '.join(unsupported)}; "
            f"use 'block' or 'warn', or one of {sorted(ROW_RULES)}")
    return rules


def rule_label(expectation: dict) -> str:
    kwargs = {k: v for k, v in expectation["kwargs"].items() if k != "column"}
    return f"{expectation['type']}({expectation['kwargs'].get('column', '')}): {json.dumps(kwargs, ensure_ascii=False)}"


def split(con: duckdb.DuckDBPyConnection, contract: Contract, read: ReadResult, suite: dict,
          key: bytes) -> None:
    """Create temp tables `clean` (typed, pseudonymised: what silver gets) and `quarantined`
    (records that broke a rule, with `_rule` and `_reason`, their fields as text)."""
    present = set(read.header)
    typed, texts = [], []
    violations: list[tuple[str, str]] = []  # (condition that breaks the rule, reason)
    for column in contract.columns:
        text_name = ident(column.name + "$text")
        text = f"nullif(trim({ident(column.name)}), '')" if column.name in present else "null::varchar"
        texts.append(f"{text} as {text_name}")
        cast = text if column.type == "VARCHAR" else f"try_cast({text} as {column.type})"
        typed.append(f"{cast} as {ident(column.name)}")
        # A personal identifier's value never goes into a reason.
        shown = "" if column.name in contract.pii else f" || ', got \"' || {text_name} || '\"'"
        if column.type != "VARCHAR":
            violations.append((f"{text_name} is not null and {ident(column.name)} is null",
                               f"'type: {column.name} must be {column.type}'{shown}"))
        if column.required:
            violations.append((f"{text_name} is null", f"'required: {column.name} is empty'"))
    for expectation in row_expectations(suite):
        column = expectation["kwargs"]["column"]
        if column not in contract.column_names:
            raise ValueError(f"suite {suite['name']}: {expectation['type']} on {column!r}, "
                             f"which is not a column of the contract of {contract.feed}")
        condition = ROW_RULES[expectation["type"]](column, expectation["kwargs"])
        shown = "" if column in contract.pii else f" || ', got ' || cast({ident(column)} as varchar)"
        violations.append((f"{ident(column)} is not null and ({condition})",
                           f"{literal(rule_label(expectation))}{shown}"))

    # Most records break no rule: the list of broken rules is only built for those that do.
    any_broken = " or ".join(f"({condition})" for condition, _ in violations) or "false"
    broken = ", ".join(f"case when {condition} then {message} end" for condition, message in violations)
    con.execute(
        f"""
        create or replace temp table checked as
        with typed as (
            select _source_line, {', '.join(texts)}, {', '.join(typed)} from raw
        )
        select *, case when {any_broken} then list_filter([{broken}], v -> v is not null)
                       else []::varchar[] end as _violations
        from typed
        """
    )
    if contract.primary_key:
        _quarantine_duplicate_keys(con, contract)
    published = []
    for column in contract.published_columns:
        published.append(f"{treated_sql(column.name, ident(column.name), contract.pii.get(column.name), key)} as {ident(column.name)}")
    con.execute(
        f"create or replace temp table clean as select {', '.join(published)}, _source_line "
        f"from checked where len(_violations) = 0")

    quarantined_text = []
    for column in contract.published_columns:
        text = ident(column.name + "$text")
        if contract.pii.get(column.name) == "hash":
            text = hmac_sql(text, key)
        elif contract.pii.get(column.name) == "year":
            text = f"left({text}, 4)"
        quarantined_text.append(f"{text} as {ident(column.name)}")
    raw_line = "null::varchar" if contract.pii else "raw_line"
    con.execute(
        f"""
        create or replace temp table quarantined as
        select _source_line, split_part(_violations[1], ': ', 1) as _rule,
               array_to_string(_violations, '; ') as _reason, null::varchar as _raw_line,
               {', '.join(quarantined_text)}
        from checked where len(_violations) > 0
        union all by name
        select _source_line, 'format' as _rule, reason as _reason, {raw_line} as _raw_line
        from rejected
        order by _source_line
        """
    )


def _quarantine_duplicate_keys(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """Among records that broke no other rule, the first of a primary key publishes; later ones
    are quarantined naming the line of the first. A hash aggregate, not a window over the batch."""
    keys = ", ".join(ident(k) for k in contract.primary_key)
    match = " and ".join(f"checked.{ident(k)} = first.{ident(k)}" for k in contract.primary_key)
    con.execute(
        f"""
        update checked set _violations = ['primary key: duplicate of line ' || first._first_line]
        from (select {keys}, min(_source_line) as _first_line from checked
              where len(_violations) = 0 group by {keys} having count(*) > 1) as first
        where {match} and len(checked._violations) = 0 and checked._source_line > first._first_line
        """
    )
