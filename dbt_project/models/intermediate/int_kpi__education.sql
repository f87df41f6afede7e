-- Education KPIs in the long KPI format, for every region and city with cases and for the
-- country ('KZ'); only complete months of the loaded landing days.
--   EDU-01 share of first-grade applications submitted online: each application_id once
--          (it reappears with every status change), in the month of its submitted_at and the
--          region of its school's district; egov / all.
--   EDU-02 median (quantile_cont 0.5) over children without priority (priority_category none,
--          the general queue) referred in the month of the
--          calendar days from the child's registration (its latest registered event on or
--          before the referral) to its first referral of the month; region of the referral.
--   EDU-03 children enrolled by the end of the month / children registered by the end of
--          the month (cumulative over the loaded history; a child counts once, in the region
--          of its first registration; enrolled = registered children with an enrolled event
--          on or before the month's last day).
-- disclosure_count of a share: the smaller of its two parts (e.g. online / in person), or the
-- denominator when one part is 0 (0 of 7 discloses 7 children).
with regions as (
    select kato_code, kato_prefix from {{ ref('regions') }}
),

-- Complete months from the landing days LOADED (ops.load_ledger), not from the days that had
-- rows: both registers send a header-only file on a day without events, which is a loaded day.
{%- set ledger = source('ops', 'load_ledger') %}
app_months as (
    select month from {{ complete_months("(select logical_date as _landing_date from " ~ ledger
        ~ " where feed = 'education/school_applications' and status = 'published')") }}
),

queue_months as (
    select month from {{ complete_months("(select logical_date as _landing_date from " ~ ledger
        ~ " where feed = 'education/kindergarten_queue' and status = 'published')") }}
),

-- EDU-01 ------------------------------------------------------------------------------------
applications as (
    select r.kato_code as region_code, a.submitted_month as period_start, a.channel, a._batch_id
    from {{ ref('stg_education__school_applications') }} as a
    join regions as r on r.kato_prefix = a.region_prefix
    where a.submitted_month in (select month from app_months)
    qualify row_number() over (
        partition by a.application_id
        order by (a.status = 'submitted') desc, a._landing_date, a._source_line
    ) = 1
),

application_areas as (
    select region_code, period_start, count(*) filter (where channel = 'egov') as online,
           count(*) as applications, {{ batch_list() }} as batch_ids
    from applications group by region_code, period_start
    union all
    select 'KZ', period_start, count(*) filter (where channel = 'egov'), count(*), {{ batch_list() }}
    from applications group by period_start
),

-- EDU-02 ------------------------------------------------------------------------------------
queue as (
    select * from {{ ref('stg_education__kindergarten_queue') }}
),

referrals as (
    select child_iin, region_prefix, event_date, event_month, event_at, _batch_id
    from queue
    -- the general queue: priority children are referred out of turn (about half the wait)
    where event_type = 'referred' and priority_category = 'none'
      and event_month in (select month from queue_months)
    qualify row_number() over (partition by child_iin, event_month order by event_at, event_id) = 1
),

waits as (
    select
        r.kato_code as region_code,
        f.event_month as period_start,
        date_diff('day', g.event_date, f.event_date) as wait_days,
        f._batch_id as referral_batch,
        g._batch_id as registration_batch
    from referrals as f
    join queue as g
      on g.child_iin = f.child_iin and g.event_type = 'registered' and g.event_at <= f.event_at
    join regions as r on r.kato_prefix = f.region_prefix
    qualify row_number() over (partition by f.child_iin, f.event_month order by g.event_at desc, g.event_id desc) = 1
),

wait_batches as (
    select region_code, period_start, wait_days, referral_batch as _batch_id from waits
    union all
    select region_code, period_start, null, registration_batch from waits
),

wait_areas as (
    select region_code, period_start, count(wait_days) as children,
           quantile_cont(wait_days, 0.5) as median_wait,
           list_sort(list(wait_days) filter (where wait_days is not null)) as sorted_waits,
           {{ batch_list() }} as batch_ids
    from wait_batches group by region_code, period_start
    union all
    select 'KZ', period_start, count(wait_days), quantile_cont(wait_days, 0.5),
           list_sort(list(wait_days) filter (where wait_days is not null)), {{ batch_list() }}
    from wait_batches group by period_start
),

-- EDU-03 ------------------------------------------------------------------------------------
registered_children as (
    select child_iin, region_prefix, event_date as registered_date, _batch_id
    from queue
    where event_type = 'registered'
    qualify row_number() over (partition by child_iin order by event_at, event_id) = 1
),

enrolled_children as (
    select child_iin, event_date as enrolled_date, _batch_id
    from queue
    where event_type = 'enrolled'
    qualify row_number() over (partition by child_iin order by event_at, event_id) = 1
),

children_by_month as (
    select
        r.kato_code as region_code,
        m.month as period_start,
        c.child_iin,
        e.enrolled_date is not null and e.enrolled_date <= last_day(m.month) as placed,
        c._batch_id as registration_batch,
        case when e.enrolled_date <= last_day(m.month) then e._batch_id end as enrolment_batch
    from registered_children as c
    join regions as r on r.kato_prefix = c.region_prefix
    join queue_months as m on c.registered_date <= last_day(m.month)
    left join enrolled_children as e using (child_iin)
),

placed_rows as (
    select region_code, period_start, placed, registration_batch as _batch_id from children_by_month
    union all
    select region_code, period_start, null, enrolment_batch from children_by_month
    where enrolment_batch is not null
),

placed_areas as (
    select region_code, period_start, count(*) filter (where placed) as placed,
           count(placed) as registered, {{ batch_list() }} as batch_ids
    from placed_rows group by region_code, period_start
    union all
    select 'KZ', period_start, count(*) filter (where placed), count(placed), {{ batch_list() }}
    from placed_rows group by period_start
)

select
    'EDU-01' as kpi_id, region_code, period_start,
    cast(online as double) as numerator, cast(applications as double) as denominator,
    online / applications as actual,
    {{ share_disclosure('online', 'applications') }} as disclosure_count,
    cast(null as double) as own_baseline,
    batch_ids, {{ lake_snapshot_id() }} as lake_snapshot_id,
    cast(null as double) as actual_lower, cast(null as double) as actual_upper,
    cast(null as double) as change_lower, cast(null as double) as change_upper
from application_areas
where applications > 0
union all
select
    'EDU-02', region_code, period_start,
    cast(null as double), cast(children as double), median_wait,
    cast(children as bigint), cast(null as double),
    batch_ids, {{ lake_snapshot_id() }},
    {{ median_lower('sorted_waits') }}, {{ median_upper('sorted_waits') }}, null, null
from wait_areas
where children > 0
union all
select
    'EDU-03', region_code, period_start,
    cast(placed as double), cast(registered as double), placed / registered,
    {{ share_disclosure('placed', 'registered') }}, cast(null as double),
    batch_ids, {{ lake_snapshot_id() }},
    null, null, null, null
from placed_areas
where registered > 0
