-- Immunization resources as exported, with the local month of the occurrence (occurrence_date:
-- the local date as written). HLT-04 counts status completed.
select
    immunization_id,
    last_updated,
    status,
    status_reason_code,
    vaccine_code,
    patient_id,
    occurrence_at,
    occurrence_date,
    cast(date_trunc('month', occurrence_date) as date)  as occurrence_month,
    recorded_at,
    primary_source,
    dose_number,
    _batch_id,
    _landing_date,
    _source_file,
    _source_member,
    _source_line
from {{ source('silver', 'health__fhir_bulk__immunization') }}
