{#- An area KPI model keeps the long KPI format (docs: kpi_long_format): one row per KPI,
    place and month; a known KPI and place; a month's first day; a value (inside its interval,
    where the model gives one); counts not negative. -#}
{% test kpi_long_format(model) %}
with rows as (select * from {{ model }}),
places as (
    select kato_code from {{ ref('regions') }}
    union all select kato_code from {{ ref('towns') }}
    union all select 'KZ'
)
select kpi_id, region_code, period_start, 'duplicate row' as problem
from rows group by all having count(*) > 1
union all
select kpi_id, region_code, period_start, 'unknown KPI'
from rows where kpi_id not in (select kpi_id from {{ ref('kpi_catalogue') }})
union all
select kpi_id, region_code, period_start, 'unknown place'
from rows where region_code is null or region_code not in (select kato_code from places)
union all
select kpi_id, region_code, period_start, 'period_start is not the first day of a month'
from rows where period_start is null or day(period_start) != 1
union all
select kpi_id, region_code, period_start, 'no value'
from rows where actual is null or isnan(actual) or isinf(actual)
union all
select kpi_id, region_code, period_start, 'negative count'
from rows where disclosure_count < 0 or denominator < 0
union all
select kpi_id, region_code, period_start, 'value outside its own interval'
from rows where actual < actual_lower or actual > actual_upper or actual_lower > actual_upper
union all
select kpi_id, region_code, period_start, 'no lineage'
from rows where batch_ids is null or lake_snapshot_id is null
{% endtest %}
