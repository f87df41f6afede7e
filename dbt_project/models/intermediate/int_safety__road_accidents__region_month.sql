-- Road accidents, deaths and injured per region (KATO prefix) and month: one row for every
-- region of reference.regions and every COMPLETE month of the loaded landing days, zero-filled,
-- so a month without accidents is a 0 and not a gap. A month is complete when the landing days
-- loaded into silver cover it from its first to its last day: a half-loaded month compared
-- with a whole month a year earlier would show a fall that never happened.
-- lake_snapshot_id is the DuckLake snapshot this build read silver at (same statement).
with accidents as (
    select * from {{ ref('stg_safety__road_accidents') }}
),

bounds as (
    select
        case when day(min(_landing_date)) = 1 then date_trunc('month', min(_landing_date))
             else date_trunc('month', min(_landing_date)) + interval 1 month end as first_month,
        case when max(_landing_date) = last_day(max(_landing_date)) then date_trunc('month', max(_landing_date))
             else date_trunc('month', max(_landing_date)) - interval 1 month end as last_month
    from accidents
),

months as (
    select cast(m as date) as month
    from bounds,
         range(bounds.first_month, bounds.last_month + interval 1 month, interval 1 month) as t(m)
),

spine as (
    select r.kato_prefix as region_prefix, months.month
    from {{ ref('regions') }} as r
    cross join months
),

counted as (
    select
        region_prefix,
        month,
        count(*)                                     as accidents,
        sum(killed)                                  as deaths,
        sum(injured)                                 as injured,
        list(distinct _batch_id order by _batch_id)  as batch_ids
    from accidents
    group by region_prefix, month
)

select
    spine.region_prefix,
    spine.month,
    cast(coalesce(counted.accidents, 0) as bigint)         as accidents,
    cast(coalesce(counted.deaths, 0) as bigint)            as deaths,
    cast(coalesce(counted.injured, 0) as bigint)           as injured,
    coalesce(counted.batch_ids, cast([] as varchar[]))     as batch_ids,
    (select id from {{ target.database }}.current_snapshot()) as lake_snapshot_id
from spine
left join counted using (region_prefix, month)
order by spine.region_prefix, spine.month
