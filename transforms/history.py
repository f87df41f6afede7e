"""History checks: each landing day of a batch against the feed's own past (severity warn).

A suite's `history` section declares them for its table, beside the GX expectations:

    "history": {
      "volume": {},
      "measure": {"name": "mean kWh per cabinet-hour", "numerator": "sum(energy_kwh)",
                  "denominator": "sum(interval_minutes) / 60"},
      "freshness": {"column": "interval_start", "max_age_hours": 6}
    }

* volume: the records a landing day's files brought (published + quarantined) lie within the
  band of the trailing WINDOW_DAYS loaded days (days before it with a published file of the
  table): from half the lowest to twice the highest day, widened to three standard deviations
  of a Poisson count for small counts. No band until MIN_DAYS such days.
* measure: the day's numerator / denominator (SQL aggregates over the published records) lies in
  the same kind of band of the trailing days' values (half to twice as far from zero).
* freshness: the newest event time of the day's published records is at most max_age_hours
  before the end of the landing day (local time).

They compare a day with other days, so they may only warn (a file must give the same silver
rows loaded alone or inside a backfill): the day publishes, its ledger rows say `warn: ...`, the
results go to ops.gate_results and the scorecard's data-health badge. Each published file's
numbers are kept in ops.file_profiles (replaced when the file is loaded again), which is the
history the next days are compared with. They run here as SQL on the batch the row checks left,
not as GX expectations: a GX validation covers one batch, and a history run's batch holds up to
31 days, each with its own trailing window.

The band is deliberately wide and easy to say at 3 a.m. ("12 records; the last 28 days had
40-95"): it flags an export cut to a fraction of its usual size, a day sent twice, a unit changed
(Wh for kWh), a feed stuck on old data; not the ordinary ups and downs of a week.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import duckdb

from transforms import settings
from transforms.schema import Temp, ident
from transforms.contract import Table
from transforms.gate import WARN

WINDOW_DAYS, MIN_DAYS, FACTOR = 28, 14, 2
VOLUME, MEASURE, FRESHNESS = "history_volume", "history_measure", "history_freshness"


def declared(suite: dict, table: Table | None = None) -> dict:
    """The suite's history checks; with `table`, checked against its contract first."""
    rules = suite.get("history") or {}
    if table is not None:
        problems = [f"unknown check {k!r} (volume, measure, freshness)" for k in rules
                    if k not in ("volume", "measure", "freshness")]
        measure, freshness = rules.get("measure"), rules.get("freshness")
        if measure is not None and not {"name", "numerator", "denominator"} <= set(measure):
            problems.append("measure needs name, numerator and denominator (SQL aggregates over the published records)")
        if freshness is not None and (
                freshness.get("column") not in table.column_names
                or table.column(freshness["column"]).type not in ("DATE", "TIMESTAMP", "TIMESTAMPTZ")
                or not isinstance(freshness.get("max_age_hours"), (int, float))):
            problems.append("freshness needs a date or timestamp `column` of the table and `max_age_hours`")
        if problems:
            raise ValueError(f"suite {suite['name']}: history: " + "; ".join(problems))
    return rules


def profile(con: duckdb.DuckDBPyConnection, table: Table, suite: dict, clean: str, quarantined: str) -> str:
    """A temp table `profiles__<table>`: per landed file of the batch, the records it brought, the
    measure's numerator and denominator over its published records, its newest event time."""
    rules = declared(suite, table)
    measure = rules.get("measure")
    numerator = f"cast({measure['numerator']} as double)" if measure else "null::double"
    denominator = f"cast({measure['denominator']} as double)" if measure else "null::double"
    column = (rules.get("freshness") or {}).get("column")
    newest = f"max(cast({ident(column)} as timestamptz))" if column else "null::timestamptz"
    name = Temp.profiles(table.name)
    con.execute(f"""
        create or replace temp table {name} as
        select _source_file as source_file, _landing_date as landing_date, sum(n)::bigint as rows_in,
               sum(num) as measure_numerator, sum(den) as measure_denominator, max(newest) as newest_event
        from (select _source_file, _landing_date, count(*) as n, {numerator} as num, {denominator} as den,
                     {newest} as newest
              from {clean} group by all
              union all by name
              select _source_file, _landing_date, count(*) as n from {quarantined} group by all)
        group by all""")
    return name


def _band(values: list[float], counts: bool = False) -> tuple[float, float]:
    """Half the lowest to twice the highest (as far from zero); for counts at least three
    standard deviations of a Poisson count either side too, as a day of 5 records may well be
    one of 2 (a small feed, or a small simulation scale)."""
    low, high = min(values), max(values)
    low, high = (low / FACTOR if low >= 0 else low * FACTOR), (high * FACTOR if high >= 0 else high / FACTOR)
    if counts:
        low = max(0.0, min(low, min(values) - 3 * min(values) ** 0.5))
        high = max(high, max(values) + 3 * max(values) ** 0.5)
    return low, high


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.3g}"


def check(con: duckdb.DuckDBPyConnection, table: Table, suite: dict, profiles: str) -> list[dict]:
    """The history checks of every landing day in `profiles` (this batch's files that publish),
    against ops.file_profiles (earlier loads, files of this batch excepted) and this batch's own
    earlier days. One result per day and check, with the day in `landing_date`."""
    rules = declared(suite)
    if not rules:
        return []
    today = {day: (rows, num, den, newest) for day, rows, num, den, newest in con.execute(
        f"select landing_date, sum(rows_in), sum(measure_numerator), sum(measure_denominator), max(newest_event) "
        f"from {profiles} group by 1 order by 1").fetchall()}
    if not today:
        return []
    # Earlier loads' files (of earlier days, or of these days when a day came in several batches).
    past = {day: values for day, *values in con.execute(
        f"""select landing_date, sum(rows_in), sum(measure_numerator), sum(measure_denominator), max(newest_event)
            from {settings.LAKE_ALIAS}.ops.file_profiles
            where feed = ? and table_name = ? and landing_date <= ?
              and source_file not in (select source_file from {profiles})
            group by 1 order by 1 desc limit ?""",
        [table.feed, table.name, max(today), WINDOW_DAYS + (max(today) - min(today)).days + 1]).fetchall()}
    days = dict(past)
    for day, values in today.items():
        days[day] = _combined(past.get(day), values)
    results = []
    for day in today:
        rows, num, den, newest = days[day]
        window = sorted((d for d in days if d < day), reverse=True)[:WINDOW_DAYS]
        span = f"{len(window)} loaded day(s) {min(window)}..{max(window)}" if window else "no loaded day before it"
        if "volume" in rules:
            results.append(_in_band(table, day, VOLUME, "records", rows, [days[d][0] for d in window], span,
                                    counts=True))
        measure = rules.get("measure")
        if measure:
            value = num / den if den else None
            history = [days[d][1] / days[d][2] for d in window if days[d][2]]
            results.append(_in_band(table, day, MEASURE, measure["name"], value, history, span))
        freshness = rules.get("freshness")
        if freshness:
            results.append(_fresh(table, day, freshness, newest))
    return results


def _combined(earlier: list | None, now: tuple) -> tuple:
    """A day's numbers over its files of an earlier load and of this batch."""
    if earlier is None:
        return now
    add = [None if a is None and b is None else (a or 0) + (b or 0) for a, b in zip(earlier[:3], now[:3])]
    return (*add, max((v for v in (earlier[3], now[3]) if v is not None), default=None))


def _result(table: Table, day: date, expectation: str, column: str | None, success: bool, observed: str) -> dict:
    return {"table": table.silver, "expectation": expectation, "column": column, "severity": WARN,
            "success": success, "observed": observed, "landing_date": day}


def _in_band(table: Table, day: date, expectation: str, what: str, value: float | None, history: list[float],
             span: str, counts: bool = False) -> dict:
    if value is None:
        return _result(table, day, expectation, None, True, f"{day}: {what}: no value (no published record)")
    shown = f"{day}: {_number(value)} {what}" if counts else f"{day}: {what} {_number(value)}"
    if len(history) < MIN_DAYS:
        return _result(table, day, expectation, None, True,
                       f"{shown}; no band yet: {len(history)} loaded day(s) before it, a band needs {MIN_DAYS}")
    low, high = _band(history, counts)
    return _result(table, day, expectation, None, low <= value <= high,
                   f"{shown}; band {_number(low)}..{_number(high)} from {span} "
                   f"({_number(min(history))}..{_number(max(history))})")


def _fresh(table: Table, day: date, rule: dict, newest: datetime | None) -> dict:
    column, limit = rule["column"], rule["max_age_hours"]
    if newest is None:
        return _result(table, day, FRESHNESS, column, True, f"{day}: no published record with a {column}")
    # The landing day ends at local midnight; `newest` comes from DuckDB in the load's local time zone.
    end = datetime.combine(day + timedelta(days=1), time(), ZoneInfo(settings.LOCAL_TZ))
    age = (end - newest).total_seconds() / 3600
    return _result(table, day, FRESHNESS, column, age <= limit,
                   f"{day}: newest {column} {newest:%Y-%m-%d %H:%M}, {age:.1f} h before the end of the landing day "
                   f"(at most {limit} h)")
