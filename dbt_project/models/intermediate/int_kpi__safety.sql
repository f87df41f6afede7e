-- Safety KPIs in the long KPI format (see _kpi_long_format.md):
--   SAF-01 road accidents and SAF-02 road deaths per 100,000 population in ROLLING 12 MONTHS
--   (catalogue window_months = 12): the row of month M counts the 12 complete months M-11 .. M,
--   for every region and city (zero-filled) and for the country; no row until 12 months are
--   complete. A city has about 100 accidents a month: one month against the same month a year
--   earlier is consistent with -24% .. +32% by chance alone, 12 months against 12 with -8% .. +8%.
--   Population: reference.regions times the world's scale
--   of the accident register (1 for a real warehouse; macro world_scale);
--   SAF-03 Sergek violations per active camera per day: violation events detected in the month
--   (by local day of detected_at) over camera-days, the sum over the month's days of the
--   cameras whose status is 'active' in that day's register snapshot; for the regions with
--   camera-days in the month and for the country.
with region_months as (
    select
        r.kato_code                              as region_code,
        r.population * {{ world_scale('safety/road_accidents') }} as population,
        i.month                                  as period_start,
        i.accidents,
        i.deaths,
        i.batch_ids,
        i.lake_snapshot_id
    from {{ ref('int_safety__road_accidents__region_month') }} as i
    join {{ ref('regions') }} as r on r.kato_prefix = i.region_prefix
),

month_areas as (
    select * from region_months
    union all
    select
        'KZ', sum(population), period_start, sum(accidents), sum(deaths),
        list_sort(list_distinct(flatten(list(batch_ids)))), max(lake_snapshot_id)
    from region_months
    group by period_start
),

-- the 12 months to the end of each month (the complete months are contiguous and zero-filled)
windows as (
    select
        region_code, population, period_start,
        sum(accidents) over w                                  as accidents,
        sum(deaths) over w                                     as deaths,
        list_sort(list_distinct(flatten(list(batch_ids) over w))) as batch_ids,
        lake_snapshot_id,
        min(period_start) over w                               as window_start
    from month_areas
    window w as (partition by region_code order by period_start rows between 11 preceding and current row)
),

areas as (
    select * exclude (window_start)
    from windows
    where window_start = cast(period_start - interval 11 month as date)
),

-- SAF-03: months complete in both feeds
violation_months as (
    select month from {{ complete_months(ref('stg_safety__sergek_violations')) }}
    intersect
    select month from {{ complete_months(ref('stg_safety__camera_registry')) }}
),

violations as (
    select v.region_prefix, v.month, v._batch_id
    from {{ ref('stg_safety__sergek_violations') }} as v
    join violation_months as m on m.month = v.month
),

camera_days as (
    -- every (camera, snapshot day) row with status active is one camera-day
    select c.region_prefix, c.month, c._batch_id
    from {{ ref('stg_safety__camera_registry') }} as c
    join violation_months as m on m.month = c.month
    where c.is_active
),

saf03_rows as (
    select region_prefix, month, 1 as violation, 0 as camera_day, _batch_id from violations
    union all
    select region_prefix, month, 0, 1, _batch_id from camera_days
),

saf03_places as (
    select
        r.kato_code                  as region_code,
        s.month                      as period_start,
        sum(s.violation)             as violations,
        sum(s.camera_day)            as camera_days,
        {{ batch_list('s._batch_id') }} as batch_ids
    from saf03_rows as s
    join {{ ref('regions') }} as r on r.kato_prefix = s.region_prefix
    group by r.kato_code, s.month
    union all
    select
        'KZ', month, sum(violation), sum(camera_day), {{ batch_list('_batch_id') }}
    from saf03_rows
    group by month
)

select
    'SAF-01' as kpi_id, region_code, period_start,
    cast(accidents as double) as numerator, cast(population as double) as denominator,
    accidents * 100000.0 / population as actual,
    cast(accidents as bigint) as disclosure_count,
    cast(null as double) as own_baseline,
    batch_ids, lake_snapshot_id,
    cast(null as double) as actual_lower, cast(null as double) as actual_upper,
    cast(null as double) as change_lower, cast(null as double) as change_upper
from areas
union all
select
    'SAF-02', region_code, period_start,
    cast(deaths as double), cast(population as double),
    deaths * 100000.0 / population,
    cast(deaths as bigint),
    cast(null as double),
    batch_ids, lake_snapshot_id,
    null, null, null, null
from areas
union all
select
    'SAF-03', region_code, period_start,
    cast(violations as double), cast(camera_days as double),
    violations * 1.0 / camera_days,
    cast(violations as bigint),
    cast(null as double),
    batch_ids, {{ lake_snapshot_id() }},
    null, null, null, null
from saf03_places
where camera_days > 0
