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
--   One row per region the cabinets are in (Almaty only) and month with cabinets in scope.
-- HCS-02 share of utility payments through automated channels (auto_debit, online) among all
--   payments received in the month (local day of paid_at), per pilot town (reference.towns:
--   Smart Aqkol). The billing covers the pilot and two comparison towns only, not a whole
--   region or the country: no region or KZ rows.
-- HCS-03 median hours to close a service request: over the requests whose current state
--   (latest updated_datetime) is closed, with the close time (updated_datetime) in the month,
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
        list_sort(list_distinct(flatten(list(p.batch_ids)))) as batch_ids
    from hcs01_pairs as p
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

hcs03_places as (
    select r.kato_code as region_code, c.month, median(c.hours) as median_hours, count(*) as cases,
           {{ batch_list('c._batch_id') }} as batch_ids
    from closed_requests as c
    join {{ ref('regions') }} as r on r.kato_prefix = c.region_prefix
    group by r.kato_code, c.month
    union all
    select 'KZ', month, median(hours), count(*), {{ batch_list('_batch_id') }}
    from closed_requests
    group by month
),

hcs03 as (
    select
        'HCS-03'                                        as kpi_id,
        region_code,
        month                                           as period_start,
        cast(null as double)                            as numerator,
        cast(cases as double)                           as denominator,
        median_hours                                    as actual,
        cast(cases as bigint)                           as disclosure_count,
        cast(null as double)                            as own_baseline,
        batch_ids
    from hcs03_places
    where cases > 0
)

select *, {{ lake_snapshot_id() }} as lake_snapshot_id from hcs01
union all
select *, {{ lake_snapshot_id() }} from hcs02
union all
select *, {{ lake_snapshot_id() }} from hcs03
