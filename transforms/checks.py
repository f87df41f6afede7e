"""Row checks: split a read batch into records to publish and records to quarantine.

The rules come from where they are declared, once: column types, required columns, identifier
formats (IIN, BIN, KATO: checked here, before pseudonymisation), times not after the landing
day, and the primary key from the feed's contract; value rules from the expectations of its GX
suite whose `meta.severity` is `row`. They are evaluated here as one vectorised DuckDB query, so a
bad record is quarantined with its line and rule; the GX gate then checks the same suite on
what is left.
"""

from __future__ import annotations

import csv
import json
from functools import cache

import duckdb

from transforms import settings
from transforms.contract import FORMATS, Column, Table
from transforms.gate import ROW
from transforms.pseudonymise import hmac_sql, treated_sql
from transforms.schema import Temp, ident, literal


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


def iin_valid_sql(text: str) -> str:
    """SQL: whether `text` is 12 digits whose 12th is the IIN/BIN check digit: the weighted sum of
    the first 11 digits (weights 1..11) mod 11, or if that is 10, with weights 3..11, 1, 2; a
    number whose check would be 10 both times is never issued."""
    digit = "(ascii(substr({t}, i + 1, 1)) - 48)".format(t=text)
    first = f"list_sum(list_transform(range(11), i -> {digit} * (i + 1))) % 11"
    second = f"list_sum(list_transform(range(11), i -> {digit} * ((i + 2) % 11 + 1))) % 11"
    return (f"(regexp_full_match({text}, '[0-9]{{12}}') and coalesce(nullif({first}, 10), nullif({second}, 10)) "
            f"is not distinct from (ascii(substr({text}, 12, 1)) - 48))")


@cache
def kato_prefixes() -> tuple[str, ...]:
    """The two-digit KATO prefixes of the regions and cities of reference.regions (its seed)."""
    with (settings.SEEDS_DIR / "regions.csv").open(encoding="utf-8") as handle:
        return tuple(sorted({row["kato_prefix"].zfill(2) for row in csv.DictReader(handle)}))


def format_violation(column: Column, text: str, shown: str) -> tuple[str, str]:
    """(condition, reason) of a record whose `column` (its text `text`) breaks its declared format."""
    if column.format in ("iin", "bin"):
        condition = f"not {iin_valid_sql(text)}"
    else:  # kato
        prefixes = ", ".join(literal(p) for p in kato_prefixes())
        condition = f"not regexp_full_match({text}, '[0-9]{{9}}') or left({text}, 2) not in ({prefixes})"
    return (f"{text} is not null and ({condition})",
            f"{literal(f'format: {column.name} is not {FORMATS[column.format]}')}{shown}")


def before_violation(column: Column) -> tuple[str, str]:
    """(condition, reason) of a record whose date `column` is after its `before` column's date, or
    more than `max_years` before it (a child in a kindergarten queue aged 9, or not yet born)."""
    other, years = column.before["column"], column.before["max_years"]
    value, limit = ident(column.name), f"cast({ident(other)} as date)"
    return (f"{value} > {limit} or {value} < {limit} - interval {int(years)} year",
            literal(f"range: {column.name} must be on {other}'s date or up to {years} years before it"))


def future_violations(table: Table) -> list[tuple[str, str]]:
    """(condition, reason) of a record with a time after the end of its landing day (local time,
    the session's time zone): an export cannot hold what had not happened when it was written.
    The end itself is allowed: an hourly snapshot of 23:00-24:00 is stamped 00:00."""
    out = []
    for name in table.not_after_landing_day:
        column = ident(name)
        end = "_landing_date" if table.column(name).type == "DATE" else "(_landing_date + 1)::timestamp"
        shown = "" if name in table.pii else f" || ', got ' || cast({column} as varchar)"
        out.append((f"{column} > {end}",
                    f"'future: {name} is after the landing day ' || cast(_landing_date as varchar){shown}"))
    return out


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


def split(con: duckdb.DuckDBPyConnection, table: Table, relation: str, rejected: str | None, suite: dict,
          key: bytes, references: dict[str, str] | None = None) -> tuple[str, str, dict[str, str]]:
    """Check the records of `relation` (every contract column as text, plus `_source_file`,
    `_source_line`, `_source_member`, `_landing_date`; records of several landed files) and
    create two temp tables: `clean__<table>` (typed, pseudonymised: what silver gets) and
    `quarantined__<table>` (records that broke a rule, with `_rule` and `_reason`, their fields as
    text, personal identifiers already treated). `references` maps a column to the relation and
    column its value must be found in, within the same landed file. Returns their names, and the
    files in which a column changed type ({source file: reason}, `changed_types`)."""
    typed, texts = [], []
    violations: list[tuple[str, str]] = []  # (condition that breaks the rule, reason)
    for column in table.columns:
        text_name = ident(column.name + "$text")
        text = f"nullif(trim({ident(column.name)}), '')"
        texts.append(f"{text} as {text_name}")
        cast = text if column.type == "VARCHAR" else f"try_cast({text} as {column.type})"
        typed.append(f"{cast} as {ident(column.name)}")
        # A personal identifier's value never goes into a reason.
        shown = "" if column.name in table.pii else f" || ', got \"' || {text_name} || '\"'"
        if column.type != "VARCHAR":
            violations.append((f"{text_name} is not null and {ident(column.name)} is null",
                               f"'type: {column.name} must be {column.type}'{shown}"))
        if column.required:
            violations.append((f"{text_name} is null", f"'required: {column.name} is empty'"))
        if column.format:
            violations.append(format_violation(column, text_name, shown))
        if column.before:
            violations.append(before_violation(column))
    violations += future_violations(table)
    for expectation in row_expectations(suite):
        column = expectation["kwargs"]["column"]
        if column not in table.column_names:
            raise ValueError(f"suite {suite['name']}: {expectation['type']} on {column!r}, "
                             f"which is not a column of {table.silver} in the contract of {table.feed}")
        condition = ROW_RULES[expectation["type"]](column, expectation["kwargs"])
        shown = "" if column in table.pii else f" || ', got ' || cast({ident(column)} as varchar)"
        violations.append((f"{ident(column)} is not null and ({condition})",
                           f"{literal(rule_label(expectation))}{shown}"))

    # Most records break no rule: the list of broken rules is only built for those that do.
    any_broken = " or ".join(f"({condition})" for condition, _ in violations) or "false"
    broken = ", ".join(f"case when {condition} then {message} end" for condition, message in violations)
    lineage = "_source_file, _landing_date, _source_line, _source_member"
    checked = f"checked__{table.name}"
    con.execute(
        f"""
        create or replace temp table {checked} as
        with typed as (
            select {lineage}, {', '.join(texts)}, {', '.join(typed)} from {relation}
        )
        select *, case when {any_broken} then list_filter([{broken}], v -> v is not null)
                       else []::varchar[] end as _violations
        from typed
        """
    )
    for column, (other, other_column) in (references or {}).items():
        _quarantine_broken_references(con, table, checked, column, other, other_column)
    if table.primary_key:
        _quarantine_duplicate_keys(con, table, checked)
    published = []
    for column in table.published_columns:
        published.append(f"{treated_sql(column.name, ident(column.name), table.pii.get(column.name), key)} as {ident(column.name)}")
    clean, quarantined = Temp.clean(table.name), Temp.quarantined(table.name)
    con.execute(
        f"create or replace temp table {clean} as select {', '.join(published)}, {lineage} "
        f"from {checked} where len(_violations) = 0")

    quarantined_text = []
    for column in table.published_columns:
        text = ident(column.name + "$text")
        if table.pii.get(column.name) == "hash":
            text = hmac_sql(text, key)
        elif table.pii.get(column.name) == "year":
            text = f"left({text}, 4)"
        quarantined_text.append(f"{text} as {ident(column.name)}")
    # A record that could not be split into fields may hold a personal identifier anywhere.
    raw_line = "null::varchar" if table.pii else "raw_line"
    unsplit = (f"""union all by name
        select {lineage}, 'format' as _rule, reason as _reason, {raw_line} as _raw_line
        from {rejected}""" if rejected else "")
    con.execute(
        f"""
        create or replace temp table {quarantined} as
        select {lineage}, split_part(_violations[1], ': ', 1) as _rule,
               array_to_string(_violations, '; ') as _reason, null::varchar as _raw_line,
               {', '.join(quarantined_text)}
        from {checked} where len(_violations) > 0
        {unsplit}
        """
    )
    changed = changed_types(con, table, checked)
    con.execute(f"drop table {checked}")
    return clean, quarantined, changed


# A typed column of a file whose every non-empty value fails its type, at least this many of
# them, was changed by the sender (a number sent as words, a date in another format): the file
# is blocked as schema drift rather than quarantined record by record. Fewer is a row defect.
CHANGED_TYPE_MIN_VALUES = 3


def changed_types(con: duckdb.DuckDBPyConnection, table: Table, checked: str) -> dict[str, str]:
    """The files of `checked` in which a contract column changed type: {source file: reason}."""
    typed = [c for c in table.columns if c.type != "VARCHAR"]
    if not typed:
        return {}
    counts = ", ".join(
        f"count({ident(c.name + '$text')}) as {ident(c.name + '$sent')}, "
        f"count({ident(c.name)}) as {ident(c.name + '$typed')}, "
        f"any_value({ident(c.name + '$text')}) filter (where {ident(c.name)} is null) as {ident(c.name + '$example')}"
        for c in typed)
    changed: dict[str, str] = {}
    for row in con.execute(f"select _source_file, {counts} from {checked} group by 1 order by 1").fetchall():
        source_file, values = row[0], row[1:]
        broken = []
        for i, column in enumerate(typed):
            sent, cast, example = values[3 * i: 3 * i + 3]
            if sent >= CHANGED_TYPE_MIN_VALUES and cast == 0:
                shown = "" if column.name in table.pii else f", e.g. {example!r}"
                broken.append(f"{column.name} must be {column.type}, but none of its {sent} values is{shown}")
        if broken:
            changed[source_file] = (f"{source_file}: schema drift in {table.silver}: changed type: "
                                    + "; ".join(broken))
    return changed


def _quarantine_broken_references(con: duckdb.DuckDBPyConnection, table: Table, checked: str, column: str,
                                  other: str, other_column: str) -> None:
    """A record whose `column` names a value absent from `other` in the same landed file is
    quarantined (only in files that hold `other` at all)."""
    col = ident(column)
    con.execute(
        f"""
        update {checked} set _violations = list_append(_violations,
            'reference: {column} ' || {checked}.{col} || ' is not a {other_column} of {other.removeprefix(Temp.accepted(""))} in the same file')
        from (select distinct r._source_file, r.{col} from {checked} r
              where r.{col} is not null
                and r._source_file in (select distinct _source_file from {other})
                and not exists (select 1 from {other} o where o._source_file = r._source_file
                                and trim(o.{ident(other_column)}) = r.{col})) as missing
        where {checked}._source_file = missing._source_file and {checked}.{col} = missing.{col}
        """
    )


def _quarantine_duplicate_keys(con: duckdb.DuckDBPyConnection, table: Table, checked: str) -> None:
    """Among records that broke no other rule, the first of a primary key in a landed file
    publishes; later ones are quarantined naming the line of the first. Per file, so the outcome
    never depends on which files were loaded together. A hash aggregate, not a window."""
    keys = ", ".join(ident(k) for k in ("_source_file", *table.primary_key))
    # NULL parts of a key match each other, as GX's uniqueness check treats them (a foreign
    # worker has no IIN, a citizen no passport number).
    match = " and ".join(f"{checked}.{ident(k)} is not distinct from first.{ident(k)}"
                         for k in ("_source_file", *table.primary_key))
    con.execute(
        f"""
        update {checked} set _violations = ['primary key: duplicate of line ' || first._first_line
                                             || coalesce(' of ' || first._member, '')]
        from (select {keys}, min(_source_line) as _first_line, any_value(_source_member) as _member from {checked}
              where len(_violations) = 0 group by {keys} having count(*) > 1) as first
        where {match} and len({checked}._violations) = 0 and {checked}._source_line > first._first_line
        """
    )
