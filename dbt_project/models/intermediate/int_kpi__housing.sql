-- Housing KPIs in the long KPI format (see _kpi_long_format.md).
--
-- HCS-01 street-lighting energy vs pre-retrofit baseline (Almaty; counts no people):
--   cabinets in scope for month M: retrofitted (int_housing__street_lighting__cabinet_month.retrofit_day)
--   on or before M's first day, with readings in the same calendar month a year earlier (P)
--   that lies wholly before the retrofit; M and P complete months.
--   numerator = actual = kWh of those cabinets in M; own_baseline = the kWh they would have used
--   in M at their pre-retrofit energy per lamp burning hour: sum over cabinets of
--   kWh(P) / lamp burning hours(P) x lamp burning hours(M) (same lamps, same calendar month;
--   normalising by the lamp burning hours removes the difference in darkness and in readings
--   between the two months, e.g. 29 vs 28 days of February). denominator null.
--   95% interval of the change (interval_method ratio): the ratio estimator R = sum(kWh) /
--   sum(baseline kWh) over the cabinets, its variance by the delta method (change_lower/upper).
--   One row per region the cabinets are in (Almaty only) and month with cabinets in scope.
-- HCS-02 share of utility payments through automated channels (auto_debit, online) among all
--   payments received in the month (local day of paid_at), per pilot town (reference.towns:
--   Smart Aqkol). The billing covers the pilot and two comparison towns only, not a whole
--   region or the country: no region or KZ rows.
-- HCS-03 median hours to close a service request, ROLLING 12 MONTHS (catalogue window_months):
--   over the requests whose current state (latest updated_datetime) is closed, with the close
--   time (updated_datetime) in the 12 complete months to the end of the month,
--   median (DuckDB median() = quantile_cont 0.5) of updated_datetime - requested_datetime in
--   hours; per region (nearest administrative centre) and for the country (median over all).

-- HCS-01 ---------------------------------------------------------------------------------------
with lighting_months as (
    select month from {{ complete_months(ref('stg_housing__street_lighting')) }}
),

cabinet_months as (
    select c.*
    from {{ ref('int_housing__street_lighting__cabinet_month') }} as c
    join lighting_months as m on m.month = c.month
),

hcs01_pairs as (
    select
        cur.region_prefix,
        cur.month                                                             as period_start,
        cur.energy_kwh,
        pre.energy_kwh * cur.lamp_burning_hours / pre.lamp_burning_hours      as baseline_kwh,
        list_concat(cur.batch_ids, pre.batch_ids)                             as batch_ids
    from cabinet_months as cur
    join cabinet_months as pre
      on  pre.cabinet_id = cur.cabinet_id
      and pre.month = cast(cur.month - interval 12 month as date)
    where cur.retrofit_day is not null
      and cur.retrofit_day <= cur.month
      and cur.retrofit_day >= cast(pre.month + interval 1 month as date)
      and pre.lamp_burning_hours > 0
      and cur.lamp_burning_hours > 0
),

-- the ratio estimator's pieces: R = sum(y) / sum(x) over the cabinets of the region and month
hcs01_units as (
    select
        *,
        sum(energy_kwh) over g / sum(baseline_kwh) over g                    as ratio,
        count(*) over g                                                       as cabinets,
        avg(baseline_kwh) over g                                              as mean_baseline
    from hcs01_pairs
    window g as (partition by region_prefix, period_start)
),

hcs01 as (
    select
        'HCS-01'                                        as kpi_id,
        r.kato_code                                     as region_code,
        p.period_start,
        sum(p.energy_kwh)                               as numerator,
        cast(null as double)                            as denominator,
        sum(p.energy_kwh)                               as actual,
        cast(null as bigint)                            as disclosure_count,
        sum(p.baseline_kwh)                             as own_baseline,
        list_sort(list_distinct(flatten(list(p.batch_ids)))) as batch_ids,
        -- the ratio estimator's variance (delta method) over the n cabinets:
        -- V = sum((y - R x)^2) / (n (n - 1)) / mean(x)^2; change = R - 1 +- z sqrt(V)
        any_value(p.ratio)                              as ratio,
        case when any_value(p.cabinets) > 1 then
            sqrt(sum((p.energy_kwh - p.ratio * p.baseline_kwh)^2)
                 / (any_value(p.cabinets) * (any_value(p.cabinets) - 1))) / any_value(p.mean_baseline)
        end                                             as ratio_se
    from hcs01_units as p
    join {{ ref('regions') }} as r on r.kato_prefix = p.region_prefix
    group by r.kato_code, p.period_start
),

-- HCS-02 ---------------------------------------------------------------------------------------
payment_months as (
    select month from {{ complete_months(ref('stg_housing__utility_payments')) }}
),

hcs02 as (
    select
        'HCS-02'                                        as kpi_id,
        t.kato_code                                     as region_code,
        p.month                                         as period_start,
        cast(count(*) filter (where p.is_automated) as double) as numerator,
        cast(count(*) as double)                        as denominator,
        count(*) filter (where p.is_automated) / count(*) as actual,
        {{ share_disclosure('count(*) filter (where p.is_automated)', 'count(*)') }} as disclosure_count,
        cast(null as double)                            as own_baseline,
        {{ batch_list('p._batch_id') }}                 as batch_ids
    from {{ ref('stg_housing__utility_payments') }} as p
    join payment_months as m on m.month = p.month
    join {{ ref('towns') }} as t on t.kato_code = p.kato_code
    group by t.kato_code, p.month
),

-- HCS-03 ---------------------------------------------------------------------------------------
request_months as (
    select month from {{ complete_months(ref('stg_housing__open311_requests')) }}
),

closed_requests as (
    select q.region_prefix, q.updated_month as month, q.hours_to_update as hours, q._batch_id
    from {{ ref('stg_housing__open311_requests') }} as q
    join request_months as m on m.month = q.updated_month
    where q.is_current_state and q.status = 'closed'
),

-- rolling 12 months (catalogue window_months = 12): the requests closed in the 12 complete
-- months to the end of each month; no row until 12 months are complete
request_windows as (
    select m.month as period_start, c.*
    from request_months as m
    join request_months as first on first.month = cast(m.month - interval 11 month as date)
    join closed_requests as c on c.month between first.month and m.month
),

hcs03_places as (
    select r.kato_code as region_code, c.period_start, median(c.hours) as median_hours,
           count(*) as cases, list_sort(list(c.hours)) as sorted_hours,
           {{ batch_list('c._batch_id') }} as batch_ids
    from request_windows as c
    join {{ ref('regions') }} as r on r.kato_prefix = c.region_prefix
    group by r.kato_code, c.period_start
    union all
    select 'KZ', period_start, median(hours), count(*), list_sort(list(hours)), {{ batch_list('_batch_id') }}
    from request_windows
    group by period_start
),

hcs03 as (
    select
        'HCS-03'                                        as kpi_id,
        region_code,
        period_start,
        cast(null as double)                            as numerator,
        cast(cases as double)                           as denominator,
        median_hours                                    as actual,
        cast(cases as bigint)                           as disclosure_count,
        cast(null as double)                            as own_baseline,
        batch_ids,
        {{ median_lower('sorted_hours') }}              as actual_lower,
        {{ median_upper('sorted_hours') }}              as actual_upper
    from hcs03_places
    where cases > 0
)

select * exclude (ratio, ratio_se), {{ lake_snapshot_id() }} as lake_snapshot_id,
       cast(null as double) as actual_lower, cast(null as double) as actual_upper,
       ratio - 1 - {{ z95() }} * ratio_se as change_lower, ratio - 1 + {{ z95() }} * ratio_se as change_upper
from hcs01
union all
select *, {{ lake_snapshot_id() }}, null, null, null, null from hcs02
union all
select * exclude (actual_lower, actual_upper), {{ lake_snapshot_id() }}, actual_lower, actual_upper, null, null from hcs03
