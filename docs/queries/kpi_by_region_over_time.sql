-- A KPI by region over time: every complete month of every place, oldest first, with the
-- change against the same month a year earlier and the status. Suppressed values stay null.
SET VARIABLE kpi_id = 'HLT-01';

select
    v.region_code,
    v.region_name_en                        as region,
    v.period_start                          as month,
    v.actual,
    v.baseline,
    v.change_vs_baseline,
    v.status,
    v.suppressed
from marts.kpi_values as v
where v.kpi_id = getvariable('kpi_id')
order by v.region_code = 'KZ' desc, v.region_name_en, v.period_start;
