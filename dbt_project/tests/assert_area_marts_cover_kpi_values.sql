-- Every row of marts.kpi_values is in exactly one area mart, unchanged in value.
with marts as (
    {%- for area in ['safety', 'housing', 'education', 'health', 'transport', 'programme'] %}
    select kpi_id, region_code, period_start, actual, status from {{ ref('kpi_' ~ area) }}
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
)
select coalesce(v.kpi_id, m.kpi_id) as kpi_id, coalesce(v.region_code, m.region_code) as region_code,
       coalesce(v.period_start, m.period_start) as period_start
from {{ ref('kpi_values') }} as v
full join marts as m using (kpi_id, region_code, period_start)
where v.kpi_id is null or m.kpi_id is null
   or v.actual is distinct from m.actual or v.status is distinct from m.status
union all
select kpi_id, region_code, period_start from marts group by all having count(*) > 1
