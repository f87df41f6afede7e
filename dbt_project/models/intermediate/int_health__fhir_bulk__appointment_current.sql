-- The current state of every appointment: its latest version (highest versionId, then
-- last_updated, then landing day) from the _since exports, with the region of its patient
-- (the patient's current kato_code; null when the patient was never exported, e.g. booked
-- before the first loaded export). One row per appointment_id.
with latest as (
    select *
    from {{ ref('stg_health__fhir_bulk__appointment') }}
    qualify row_number() over (
        partition by appointment_id
        order by version_number desc nulls last, last_updated desc nulls last, _landing_date desc
    ) = 1
)

select
    a.appointment_id,
    a.version_id,
    a.status,
    a.channel,
    a.created_date,
    a.created_month,
    a.start_date,
    a.start_month,
    a.lead_days,
    a.patient_id,
    p.region_prefix,
    a._batch_id
from latest as a
left join {{ ref('int_health__fhir_bulk__patient_current') }} as p using (patient_id)
