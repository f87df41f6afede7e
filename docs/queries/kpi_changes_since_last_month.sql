-- What changed since last month: for every KPI and place, the latest complete month against the
-- month before it, with the change in value and in status. Largest relative moves first.
select
    cur.kpi_id,
    cur.region_code,
    cur.region_name_en                      as region,
    cur.period_start                        as month,
    cur.actual,
    prev.actual                             as actual_month_before,
    cur.actual - prev.actual                as change,
    cur.actual / nullif(prev.actual, 0) - 1 as change_share,
    prev.status                             as status_month_before,
    cur.status
from marts.kpi_scorecard as cur
join marts.kpi_values as prev
  on prev.kpi_id = cur.kpi_id
 and prev.region_code = cur.region_code
 and prev.period_start = cur.period_start - interval 1 month
where not cur.suppressed and not prev.suppressed
order by abs(cur.actual / nullif(prev.actual, 0) - 1) desc nulls last, cur.kpi_id, cur.region_code;
