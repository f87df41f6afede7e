-- Health KPIs in the long KPI format (FHIR R4 Bulk Data exports, silver.health__fhir_bulk__*),
-- for every region and city with cases and for the country ('KZ'); only complete months of the
-- loaded exports. An appointment counts in its current state (latest version) and in the region
-- of its patient (Patient address KATO code, current version).
--   HLT-01 share booked online: appointments by created month, channel 'online' / all.
--   HLT-02 median days booking -> visit: fulfilled appointments by start month, median
--          (quantile_cont 0.5) of start_date - created_date (local calendar days).
--   HLT-03 no-show rate: by start month, noshow / (fulfilled + noshow).
--   HLT-04 completed immunisations per 1,000 population by occurrence month, zero-filled.
-- disclosure_count of a share: the smaller of its two parts, or the denominator when one part
-- is 0 (0 of 7 discloses 7 appointments).
with months as (
    select month from {{ complete_months(ref('stg_health__fhir_bulk__appointment')) }}
),

regions as (
    select kato_code, kato_prefix, population from {{ ref('regions') }}
),

appointments as (
    select a.*, r.kato_code as region_code
    from {{ ref('int_health__fhir_bulk__appointment_current') }} as a
    join regions as r on r.kato_prefix = a.region_prefix
),

-- HLT-01: each booking once, in its region and in the country
booked as (
    select region_code, created_month as period_start, channel, _batch_id
    from appointments where created_month in (select month from months)
),

booked_areas as (
    select region_code, period_start, count(*) filter (where channel = 'online') as online,
           count(*) as bookings, {{ batch_list() }} as batch_ids
    from booked group by region_code, period_start
    union all
    select 'KZ', period_start, count(*) filter (where channel = 'online'), count(*), {{ batch_list() }}
    from booked group by period_start
),

-- HLT-02, HLT-03: appointments by start month
due as (
    select region_code, start_month as period_start, status, lead_days, _batch_id
    from appointments
    where start_month in (select month from months) and status in ('fulfilled', 'noshow')
),

due_areas as (
    select region_code, period_start,
           count(*) filter (where status = 'noshow') as noshows,
           count(*) as due,
           count(*) filter (where status = 'fulfilled') as held,
           quantile_cont(lead_days, 0.5) filter (where status = 'fulfilled') as median_lead_days,
           list_sort(list(lead_days) filter (where status = 'fulfilled' and lead_days is not null)) as sorted_lead_days,
           {{ batch_list() }} as batch_ids,
           coalesce(list(distinct _batch_id order by _batch_id) filter (where status = 'fulfilled'),
                    cast([] as varchar[])) as held_batch_ids
    from due group by region_code, period_start
    union all
    select 'KZ', period_start,
           count(*) filter (where status = 'noshow'), count(*),
           count(*) filter (where status = 'fulfilled'),
           quantile_cont(lead_days, 0.5) filter (where status = 'fulfilled'),
           list_sort(list(lead_days) filter (where status = 'fulfilled' and lead_days is not null)),
           {{ batch_list() }},
           coalesce(list(distinct _batch_id order by _batch_id) filter (where status = 'fulfilled'),
                    cast([] as varchar[]))
    from due group by period_start
),

-- HLT-04: completed immunisations (current version of each), region of the patient
imm_current as (
    select *
    from {{ ref('stg_health__fhir_bulk__immunization') }}
    qualify row_number() over (
        partition by immunization_id order by last_updated desc nulls last, _landing_date desc
    ) = 1
),

immunizations as (
    select r.kato_code as region_code, i.occurrence_month as period_start, i._batch_id
    from imm_current as i
    join {{ ref('int_health__fhir_bulk__patient_current') }} as p using (patient_id)
    join regions as r on r.kato_prefix = p.region_prefix
    where i.status = 'completed'
      and i.occurrence_month in (select month from months)
),

imm_spine as (
    -- population times the world's scale of the FHIR export (1 for a real warehouse)
    select r.kato_code as region_code, r.population * {{ world_scale('health/fhir_bulk') }} as population,
           m.month as period_start
    from regions as r cross join months as m
    union all
    select 'KZ', (select sum(population) from regions) * {{ world_scale('health/fhir_bulk') }}, m.month
    from months as m
),

imm_counts as (
    select region_code, period_start, count(*) as immunizations, {{ batch_list() }} as batch_ids
    from immunizations group by region_code, period_start
    union all
    select 'KZ', period_start, count(*), {{ batch_list() }}
    from immunizations group by period_start
)

select
    'HLT-01' as kpi_id, region_code, period_start,
    cast(online as double) as numerator, cast(bookings as double) as denominator,
    online / bookings as actual,
    {{ share_disclosure('online', 'bookings') }} as disclosure_count,
    cast(null as double) as own_baseline,
    batch_ids, {{ lake_snapshot_id() }} as lake_snapshot_id,
    cast(null as double) as actual_lower, cast(null as double) as actual_upper,
    cast(null as double) as change_lower, cast(null as double) as change_upper
from booked_areas
where bookings > 0
union all
select
    'HLT-02', region_code, period_start,
    cast(null as double), cast(held as double), median_lead_days,
    cast(held as bigint), cast(null as double),
    held_batch_ids, {{ lake_snapshot_id() }},
    {{ median_lower('sorted_lead_days') }}, {{ median_upper('sorted_lead_days') }}, null, null
from due_areas
where held > 0
union all
select
    'HLT-03', region_code, period_start,
    cast(noshows as double), cast(due as double), noshows / due,
    {{ share_disclosure('noshows', 'due') }}, cast(null as double),
    batch_ids, {{ lake_snapshot_id() }},
    null, null, null, null
from due_areas
where due > 0
union all
select
    'HLT-04', s.region_code, s.period_start,
    cast(coalesce(c.immunizations, 0) as double), cast(s.population as double),
    coalesce(c.immunizations, 0) * 1000.0 / s.population,
    cast(coalesce(c.immunizations, 0) as bigint), cast(null as double),
    coalesce(c.batch_ids, cast([] as varchar[])), {{ lake_snapshot_id() }},
    null, null, null, null
from imm_spine as s
left join imm_counts as c using (region_code, period_start)
