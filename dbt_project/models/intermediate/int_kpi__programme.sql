-- Programme KPIs in the long KPI format (docs: kpi_long_format).
-- Registers delivered as a daily full snapshot (public services, events, Alatau projects) are
-- read at the snapshot that stands for each complete month's end (macro snapshot_days: the
-- last landing day on or before the month's last day).
-- GOV-01 (KZ): numerator = services with automated = true in the month-end snapshot;
--   denominator = services in that snapshot; counts no people.
-- PRG-01 (KZ): in the month-end snapshot, denominator = events with planned_end on or before
--   the month's last day; numerator = those of them with actual_end on or before planned_end
--   (an event past its planned end and not yet completed is not on schedule); counts no people.
-- ALA-01 (Alatau City, 195020100): the monthly staff report landed on the 1st stands for the
--   month before (report_month; the latest export when one month was delivered twice). Staff
--   employed at the end of that month (left_on empty) in highly_qualified or managerial
--   positions: numerator = citizens of Kazakhstan (citizenship 'KZ'), denominator = all of
--   them; disclosure_count = the smaller NON-ZERO of citizens and others (least(citizens,
--   others), except that when one part is 0 the other is what the row discloses: "3 of 3 are
--   citizens" names 3 people; the marts guard assert_kpi_values_publish_no_small_cells checks
--   both parts). Every month a report stands for.
-- ALA-02 (Alatau City): month-end snapshot of the project register: numerator =
--   sum(disbursed_kzt), denominator = sum(planned_to_date_kzt) (both cumulative to the
--   snapshot day); counts no people.
-- No row where the denominator is 0.
with service_days as {{ snapshot_days(ref('stg_programme__public_services')) }},

gov_01 as (
    select
        d.month,
        count(distinct s.service_code) filter (where s.automated) as numerator,
        count(distinct s.service_code)                            as denominator,
        {{ batch_list('s._batch_id') }}          as batch_ids
    from service_days as d
    join {{ ref('stg_programme__public_services') }} as s on s._landing_date = d.snapshot_day
    group by d.month
),

event_days as {{ snapshot_days(ref('stg_programme__events')) }},

prg_01 as (
    select
        d.month,
        count(distinct e.event_id) filter (where e.completed_on_schedule) as numerator,
        count(distinct e.event_id)                                        as denominator,
        {{ batch_list('e._batch_id') }}                  as batch_ids
    from event_days as d
    join {{ ref('stg_programme__events') }} as e
      on e._landing_date = d.snapshot_day
     and e.planned_end <= last_day(d.month)
    group by d.month
),

reports as (
    select report_month, max(_landing_date) as landing_date
    from {{ ref('stg_programme__alatau_workforce') }}
    group by report_month
),

ala_01 as (
    select
        w.report_month                            as month,
        count(*) filter (where w.is_citizen)      as numerator,
        count(*)                                  as denominator,
        {{ batch_list('w._batch_id') }}           as batch_ids
    from reports as r
    join {{ ref('stg_programme__alatau_workforce') }} as w
      on w.report_month = r.report_month
     and w._landing_date = r.landing_date
    where w.employed_at_month_end
      and w.is_top_position
    group by w.report_month
),

project_days as {{ snapshot_days(ref('stg_programme__alatau_projects')) }},

ala_02 as (
    select
        d.month,
        sum(p.disbursed_kzt)                      as numerator,
        sum(p.planned_to_date_kzt)                as denominator,
        {{ batch_list('p._batch_id') }}           as batch_ids
    from project_days as d
    join {{ ref('stg_programme__alatau_projects') }} as p on p._landing_date = d.snapshot_day
    group by d.month
),

kpis as (
    select 'GOV-01' as kpi_id, 'KZ' as region_code, month, numerator, denominator,
           cast(null as bigint) as disclosure_count, batch_ids
    from gov_01
    union all
    select 'PRG-01', 'KZ', month, numerator, denominator, cast(null as bigint), batch_ids
    from prg_01
    union all
    select 'ALA-01', '195020100', month, numerator, denominator,
           -- the smaller non-zero part: "all 3 are citizens" discloses 3 people
           cast(case when numerator = 0 then denominator
                     when numerator = denominator then numerator
                     else least(numerator, denominator - numerator) end as bigint),
           batch_ids
    from ala_01
    union all
    select 'ALA-02', '195020100', month, numerator, denominator, cast(null as bigint), batch_ids
    from ala_02
)

select
    kpi_id,
    region_code,
    month                                         as period_start,
    cast(numerator as double)                     as numerator,
    cast(denominator as double)                   as denominator,
    cast(numerator as double) / denominator       as actual,
    disclosure_count,
    cast(null as double)                          as own_baseline,
    batch_ids,
    {{ lake_snapshot_id() }}                      as lake_snapshot_id,
    cast(null as double)                          as actual_lower,
    cast(null as double)                          as actual_upper,
    cast(null as double)                          as change_lower,
    cast(null as double)                          as change_upper
from kpis
where denominator > 0
