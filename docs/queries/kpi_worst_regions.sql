-- The worst regions for a KPI in its latest complete month: by the KPI's direction (highest
-- first when lower is better, lowest first when higher is better). Suppressed values and the
-- country row are left out.
SET VARIABLE kpi_id = 'HLT-01';
SET VARIABLE how_many = 5;

select
    s.region_code,
    s.region_name_en                        as region,
    s.period_start                          as month,
    s.actual,
    s.actual_lower,
    s.actual_upper,
    s.change_vs_baseline,
    s.status
from marts.kpi_scorecard as s
where s.kpi_id = getvariable('kpi_id')
  and s.region_code <> 'KZ'
  and not s.suppressed
  and s.direction in ('lower_is_better', 'higher_is_better')
order by case when s.direction = 'lower_is_better' then -s.actual else s.actual end, s.region_name_en
limit getvariable('how_many');
