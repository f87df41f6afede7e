"""The example queries of docs/queries (README, "Querying"), run as an analyst would on the
14-month KPI world, each checked against what its comment says it returns."""

from __future__ import annotations

from tests.conftest import query, run_doc_query


def test_kpi_by_region_over_time_gives_every_month_of_every_place(kpi_world):
    root = kpi_world.root
    rows = run_doc_query(root, "kpi_by_region_over_time.sql", {"kpi_id": "'HLT-01'"})
    expected = query(root, "select region_code, period_start, actual, status from marts.kpi_values "
                           "where kpi_id = 'HLT-01'")
    assert sorted((r["region_code"], r["month"], r["actual"], r["status"]) for r in rows) == sorted(expected)
    assert rows[0]["region_code"] == "KZ"
    places = {r["region_code"] for r in rows}
    months = sorted({r["month"] for r in rows})
    assert len(places) == 21 and len(rows) == len(places) * len(months)  # every month of every place
    for place in places:  # oldest first within a place
        mine = [r["month"] for r in rows if r["region_code"] == place]
        assert mine == sorted(mine)


def test_worst_regions_follow_the_kpis_direction(kpi_world):
    root = kpi_world.root
    for kpi, worst_first in (("HLT-01", min), ("HCS-03", max)):  # higher / lower is better
        rows = run_doc_query(root, "kpi_worst_regions.sql", {"kpi_id": f"'{kpi}'", "how_many": "3"})
        latest = query(root, "select region_code, actual from marts.kpi_scorecard "
                             "where kpi_id = ? and region_code <> 'KZ' and not suppressed", [kpi])
        assert len(rows) == 3 and len(latest) > 3
        ranked = sorted(latest, key=lambda r: r[1], reverse=worst_first is max)
        assert [r["region_code"] for r in rows] == [r[0] for r in ranked[:3]]
        assert rows[0]["actual"] == worst_first(r[1] for r in latest)


def _month_before(month):
    return month.replace(year=month.year - (month.month == 1), month=(month.month - 2) % 12 + 1)


def test_changes_since_last_month_compare_each_place_with_the_month_before(kpi_world):
    root = kpi_world.root
    rows = run_doc_query(root, "kpi_changes_since_last_month.sql", {})
    values = {(k, r, m): (a, s) for k, r, m, a, s in query(
        root, "select kpi_id, region_code, period_start, actual, suppressed from marts.kpi_values")}
    latest = query(root, "select kpi_id, region_code, period_start from marts.kpi_scorecard where not suppressed")
    comparable = [(k, r, m) for k, r, m in latest
                  if (k, r, _month_before(m)) in values and not values[(k, r, _month_before(m))][1]]
    assert len(rows) == len(comparable) > 100
    for row in rows:
        place = (row["kpi_id"], row["region_code"])
        assert row["actual"] == values[(*place, row["month"])][0]
        assert row["actual_month_before"] == values[(*place, _month_before(row["month"]))][0]
        assert row["change"] == row["actual"] - row["actual_month_before"]
    moves = [abs(r["change_share"]) for r in rows if r["change_share"] is not None]
    assert moves == sorted(moves, reverse=True)  # largest relative moves first
