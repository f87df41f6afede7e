-- Privacy guard: no published (unsuppressed) row of a KPI that counts people carries a count
-- from 1 to min_cell_count - 1 as its numerator, or as the rest of its denominator
-- (denominator - numerator: e.g. the in-person applications beside the online ones),
-- whatever the area models' logic does. Median KPIs (no numerator) are guarded by their
-- number of cases, the denominator.
{%- set small = 'between 1 and ' ~ (var('min_cell_count', 10) | int - 1) %}
select v.kpi_id, v.region_code, v.period_start
from {{ ref('kpi_values') }} as v
join {{ ref('kpi_catalogue') }} as c using (kpi_id)
where c.counts_people
  and not v.suppressed
  and (v.numerator {{ small }}
       or (c.unit like 'share%' and v.denominator - v.numerator {{ small }})
       or (v.numerator is null and v.denominator {{ small }}))
