-- A KPI by region over time: every complete month of every place, oldest first, with the
-- change against the same month a year earlier (for a rolling 12-month KPI: the 12 months before),
-- both with their 95% intervals, and the status. Suppressed values stay null.
SET VARIABLE kpi_id = 'HLT-01';

select
    v.region_code,
    v.region_name_en                        as region,
    v.period_start                          as month,
    v.period_grain,
    v.actual,
    v.actual_lower,
    v.actual_upper,
    v.baseline,
    v.change_vs_baseline,
    v.change_lower,
    v.change_upper,
    v.status,
    v.suppressed
from marts.kpi_values as v
where v.kpi_id = getvariable('kpi_id')
order by v.region_code = 'KZ' desc, v.region_name_en, v.period_start;
