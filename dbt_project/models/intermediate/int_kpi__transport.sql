-- Transport KPIs in the long KPI format (docs: kpi_long_format), for the operators' cities and
-- the country ('KZ').
-- TRN-01 on-time performance: numerator = observed arrivals of the month with arrival.delay
--   within [-60, +300] s, denominator = observed arrivals of the month (last report of each
--   stop arrival; see int_transport__gtfs_rt_trip_updates__region_month). Places: the cities with observed arrivals
--   in the month; KZ pools every arrival (not an average of cities). A share of vehicle
--   arrivals: counts no people (disclosure_count null).
-- TRN-02 boardings per capita per month: numerator = smart-card validations (one tap = one
--   boarding) with validated_at in the month, denominator = population (reference.regions) of
--   the operator's city. The cities covered are those whose operators have validations in the
--   loaded data (operator = GTFS agency_id -> city of its feed, int_transport__gtfs_static__operator_region);
--   each is zero-filled for every complete month. KZ: all validations over the population of
--   the cities served (the riders live there; the rest of the country has no e-ticketing feed, and
--   dividing by the whole country's population would mix coverage with ridership).
--   disclosure_count = boardings. Complete months of the validations' landing days: a tap
--   uploaded late counts in the month it happened when its file landed in a loaded day.
with rt as (
    select * from {{ ref('int_transport__gtfs_rt_trip_updates__region_month') }}
),

rt_areas as (
    select r.kato_code as region_code, rt.month, rt.arrivals, rt.on_time_arrivals, rt.batch_ids,
           rt.lake_snapshot_id, rt.trip_runs, rt.sum_arrivals_sq, rt.sum_arrivals_on_time, rt.sum_on_time_sq
    from rt
    join {{ ref('regions') }} as r on r.kato_prefix = rt.region_prefix
    union all
    select 'KZ', month, sum(arrivals), sum(on_time_arrivals),
           list_sort(list_distinct(flatten(list(batch_ids)))), max(lake_snapshot_id),
           sum(trip_runs), sum(sum_arrivals_sq), sum(sum_arrivals_on_time), sum(sum_on_time_sq)
    from rt
    group by month
),

-- TRN-01's 95% interval (interval_method cluster): arrivals of one trip run share its delays,
-- so the runs are the clusters: ratio estimator R = sum(on time) / sum(arrivals) over the n runs,
-- V = sum((y - R x)^2) / (n (n - 1)) / mean(x)^2 from the runs' sums of squares
rt_intervals as (
    select
        *,
        on_time_arrivals / arrivals                                   as share,
        case when trip_runs > 1 then
            sqrt(greatest(sum_on_time_sq - 2 * (on_time_arrivals / arrivals) * sum_arrivals_on_time
                          + (on_time_arrivals / arrivals)^2 * sum_arrivals_sq, 0)
                 / (trip_runs * (trip_runs - 1.0)))
            / (arrivals / trip_runs)
        end                                                           as share_se
    from rt_areas
    where arrivals > 0
),

operators as (
    select id as operator, region_prefix
    from {{ ref('int_transport__gtfs_static__operator_region') }}
    where kind = 'agency'
),

taps as (
    select o.region_prefix, f.month, f._batch_id, f.card_id
    from {{ ref('stg_transport__fare_validations') }} as f
    join operators as o on o.operator = f.operator
),

fare_months as {{ complete_months(ref('stg_transport__fare_validations')) }},

served as (
    -- population times the world's scale of the fare system (1 for a real warehouse)
    select r.kato_prefix as region_prefix, r.kato_code,
           r.population * {{ world_scale('transport/fare_validations') }} as population
    from {{ ref('regions') }} as r
    where r.kato_prefix in (select region_prefix from taps)
),

-- a card taps several times a month, so boardings are over-dispersed against a Poisson count:
-- TRN-02's 95% interval (interval_method cluster) takes the cards as the clusters, Var(N) =
-- sum over cards of taps^2 (a compound Poisson count), N -+ z sqrt(that)
cards as (
    select region_prefix, month, card_id, count(*) as taps, {{ batch_list() }} as batch_ids
    from taps
    group by region_prefix, month, card_id
),

counted as (
    select region_prefix, month, sum(taps) as boardings, sum(taps * taps) as sum_taps_sq,
           list_sort(list_distinct(flatten(list(batch_ids)))) as batch_ids
    from cards
    group by region_prefix, month
),

city_boardings as (
    select
        s.kato_code                                        as region_code,
        s.population,
        m.month,
        coalesce(c.boardings, 0)                           as boardings,
        coalesce(c.sum_taps_sq, 0)                         as sum_taps_sq,
        coalesce(c.batch_ids, cast([] as varchar[]))       as batch_ids
    from served as s
    cross join fare_months as m
    left join counted as c on c.region_prefix = s.region_prefix and c.month = m.month
),

boarding_areas as (
    select region_code, population, month, boardings, sum_taps_sq, batch_ids from city_boardings
    union all
    select 'KZ', sum(population), month, sum(boardings), sum(sum_taps_sq),
           list_sort(list_distinct(flatten(list(batch_ids))))
    from city_boardings
    group by month
)

select
    'TRN-01'                                      as kpi_id,
    region_code,
    month                                         as period_start,
    cast(on_time_arrivals as double)              as numerator,
    cast(arrivals as double)                      as denominator,
    on_time_arrivals / arrivals                   as actual,
    cast(null as bigint)                          as disclosure_count,
    cast(null as double)                          as own_baseline,
    batch_ids,
    lake_snapshot_id,
    greatest(share - {{ z95() }} * share_se, 0)   as actual_lower,
    least(share + {{ z95() }} * share_se, 1)      as actual_upper,
    cast(null as double)                          as change_lower,
    cast(null as double)                          as change_upper
from rt_intervals
union all
select
    'TRN-02',
    region_code,
    month,
    cast(boardings as double),
    cast(population as double),
    boardings / population,
    cast(boardings as bigint),
    cast(null as double),
    batch_ids,
    {{ lake_snapshot_id() }},
    greatest(boardings - {{ z95() }} * sqrt(sum_taps_sq), 0) / population,
    (boardings + {{ z95() }} * sqrt(sum_taps_sq)) / population,
    null, null
from boarding_areas
where population > 0
