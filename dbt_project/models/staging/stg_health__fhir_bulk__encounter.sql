-- Encounter resources (ambulatory visits) as exported. No KPI reads it.
select
    encounter_id,
    last_updated,
    status,
    class_code,
    patient_id,
    appointment_id,
    period_start,
    period_end,
    service_provider_id,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'health__fhir_bulk__encounter') }}
